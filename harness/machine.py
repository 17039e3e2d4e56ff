"""Facts of the machine and its versions, written once: Python's and the packages'
versions, the CPU count, and the CUDA device's name, capability, memory, count, L2, SMs
and driver.

Read by the GPU check's first stage (``env.json``: `harness.gpu_check.versions`,
`~harness.gpu_check.device_facts`), the plugin's ``machine_info`` of a run's JSON
(`harness.pytest_plugin.session.add_machine_info`) and ab's sides
(`harness.benchmark.worker`, which loads this file from beside its own: the side's
``harness`` may predate it). So it is a leaf: the standard library, and torch only where a
caller asks for the GPU (passed in, or imported then).
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from importlib import metadata


def versions(packages: tuple[str, ...] | list[str]) -> dict[str, str | None]:
    """Python's version, then each installed distribution's (``None`` where missing)."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in packages:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def gpu(torch=None) -> dict | None:
    """The first CUDA device's facts, or ``None`` without one."""
    if torch is None:
        import torch
    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    return {"name": props.name, "capability": f"{props.major}.{props.minor}",
            "memory_bytes": props.total_memory, "l2_bytes": getattr(props, "L2_cache_size", None),
            "sms": props.multi_processor_count, "count": torch.cuda.device_count(),
            "cuda": torch.version.cuda}


def driver() -> str | None:
    """The NVIDIA driver: the kernel module's version line, else nvidia-smi's, else None."""
    try:
        with open("/proc/driver/nvidia/version") as f:
            return f.readline().strip() or None
    except OSError:
        pass
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip().splitlines()[0] if done.stdout.strip() else None


def run_info(torch=None) -> dict:
    """What a run's JSON adds to pytest-benchmark's ``machine_info`` (the plugin's runs and
    ab's sides alike): torch, the CPU count, and on CUDA the GPU and driver."""
    if torch is None:
        import torch
    info = {"torch": torch.__version__, "python_implementation": platform.python_implementation(),
            "cpu_count": os.cpu_count()}
    found = gpu(torch)
    if found is not None:
        info.update(gpu_name=found["name"], gpu_memory_bytes=found["memory_bytes"],
                    gpu_count=found["count"], cuda=found["cuda"], driver=driver())
    return info
