"""What a CUDA benchmark's rounds were exposed to: the GPU's clocks, its throttle reasons and
the other processes on it, read through NVML (``nvidia-ml-py``, imported as ``pynvml``)
before and after each benchmark. A CPU benchmark has its own probe
(`harness.benchmark.timing.RoundProbe`); without NVML (no GPU, no package) the state says
why it was not read and nothing is judged.

`exposure_reason` is the rule (`suites/harness/test_gpu_state.py`): a benchmark is
unstable when, between the two readings, the SM clock dropped by more than
``max_clock_drop``, a throttle reason that slows the chip (power cap, thermal or hardware
slowdown, power brake) became active, or another compute process used the GPU. An idle
chip clocks down (345 MHz was seen on the H200 image), so the reading before is taken
after the warm-up, when the clock has risen to what the work holds it at.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

# NVML's clocks-event (throttle) reason bits that slow the chip down; idle, the
# applications-clock setting, sync boost and the display clock do not.
SLOWING = {0x4: "software power cap", 0x8: "hardware slowdown", 0x20: "software thermal slowdown",
           0x40: "hardware thermal slowdown", 0x80: "hardware power brake"}
MAX_CLOCK_DROP = 0.10


@dataclass(frozen=True)
class GpuState:
    """One reading. ``reason`` says why nothing was read (then every other field is None)."""

    reason: str | None = None
    sm_mhz: int | None = None
    max_sm_mhz: int | None = None
    mem_mhz: int | None = None
    throttle: int | None = None              # NVML's reason bit mask
    processes: tuple[int, ...] = field(default_factory=tuple)  # compute processes' pids
    temperature_c: int | None = None
    power_w: float | None = None

    @property
    def read(self) -> bool:
        return self.reason is None

    def slowing(self) -> list[str]:
        mask = self.throttle or 0
        return [name for bit, name in SLOWING.items() if mask & bit]

    def as_dict(self) -> dict:
        out = asdict(self)
        out["processes"] = list(self.processes)
        return out


def gpu_state(index: int = 0, nvml=None) -> GpuState:
    """Read GPU ``index`` through ``nvml`` (default: the ``pynvml`` module)."""
    if nvml is None:
        try:
            import pynvml as nvml
        except ImportError:
            return GpuState(reason="no NVML: nvidia-ml-py is not installed")
    try:
        nvml.nvmlInit()
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        sm = nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM)
        return GpuState(
            sm_mhz=sm, max_sm_mhz=nvml.nvmlDeviceGetMaxClockInfo(handle, nvml.NVML_CLOCK_SM),
            mem_mhz=nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_MEM),
            throttle=int(nvml.nvmlDeviceGetCurrentClocksThrottleReasons(handle)),
            processes=tuple(p.pid for p in nvml.nvmlDeviceGetComputeRunningProcesses(handle)),
            temperature_c=nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU),
            power_w=nvml.nvmlDeviceGetPowerUsage(handle) / 1e3)
    except Exception as exc:  # NVMLError_*: no driver, no device, not supported here
        return GpuState(reason=f"NVML: {type(exc).__name__}: {exc}")


def exposure_reason(before: GpuState, after: GpuState, own_pid: int | None = None,
                    max_clock_drop: float = MAX_CLOCK_DROP) -> str | None:
    """Why the rounds between ``before`` and ``after`` cannot be trusted, or None (module
    docstring). Another process is one whose pid is not ``own_pid``; where this process
    cannot be found among them (a pid namespace), all but one count."""
    if not (before.read and after.read):
        return None
    reasons = []
    if before.sm_mhz and after.sm_mhz is not None and after.sm_mhz < (1 - max_clock_drop) * before.sm_mhz:
        reasons.append(f"SM clock dropped from {before.sm_mhz} to {after.sm_mhz} MHz")
    if slowed := sorted(set(after.slowing()) | set(before.slowing())):
        reasons.append(f"throttled ({', '.join(slowed)})")
    pid = os.getpid() if own_pid is None else own_pid
    seen = set(before.processes) | set(after.processes)
    others = seen - {pid} if pid in seen else set(sorted(seen)[1:])
    if others:
        reasons.append(f"another process used the GPU (pid {', '.join(map(str, sorted(others)))})")
    return "gpu: " + "; ".join(reasons) if reasons else None
