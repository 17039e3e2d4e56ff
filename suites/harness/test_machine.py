"""`harness.machine`: the machine's and the versions' facts, written once (issue 31, item
6), and each output built from them keeps the keys its readers use: the GPU check's
``env.json``, the plugin's ``machine_info`` of a run's JSON, and ab's sides (whose worker
loads the module from beside its own file, as the side's ``harness`` may predate it)."""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import torch

from harness import gpu_check, machine
from harness.benchmark import worker
from harness.pytest_plugin import session

ROOT = Path(__file__).resolve().parents[2]
CUDA = torch.cuda.is_available()
RUN_KEYS = {"torch", "python_implementation", "cpu_count"} | (
    {"gpu_name", "gpu_memory_bytes", "gpu_count", "cuda", "driver"} if CUDA else set())


def test_the_module_is_a_leaf_of_the_standard_library():
    tree = ast.parse((ROOT / "harness" / "machine.py").read_text())
    imported = {(n.module if isinstance(n, ast.ImportFrom) else a.name).split(".")[0]
                for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                for a in n.names}
    assert imported - {"torch", "__future__"} <= set(sys.stdlib_module_names), imported


def test_the_facts_have_their_keys():
    found = machine.versions(("torch", "no-such-distribution-xb"))
    assert found["python"] == ".".join(map(str, sys.version_info[:3]))
    assert found["torch"] and found["no-such-distribution-xb"] is None
    gpu = machine.gpu(torch)
    if CUDA:
        assert set(gpu) == {"name", "capability", "memory_bytes", "l2_bytes", "sms", "count", "cuda"}
    else:
        assert gpu is None
    info = machine.run_info(torch)
    assert set(info) == RUN_KEYS and info["torch"] == torch.__version__


def test_the_gpu_checks_env_json_keeps_its_keys(tmp_path):
    assert set(gpu_check.versions()) == {"python", *gpu_check.PACKAGES}
    device = gpu_check.device_facts()
    assert set(device) == {"cuda_available", "torch_cuda", "clocks", "driver"} | (
        {"name", "capability", "memory_gib", "l2_bytes", "sms"} if CUDA else set())
    # and its summary reads them
    report = {"commit": None, "versions": gpu_check.versions(), "imports": {}, "device": device}
    (tmp_path / "env.json").write_text(json.dumps(report, default=str))
    lines = gpu_check.env_lines(tmp_path)
    assert any(line.startswith("python ") for line in lines)
    assert (device.get("name") or "no CUDA device") in "\n".join(lines)


def test_the_runs_machine_info_keeps_its_keys():
    info = {"node": "vm"}
    session.add_machine_info(info)
    assert set(info) == {"node"} | RUN_KEYS


def test_abs_side_gets_the_same_keys_from_the_module_beside_the_worker():
    info = worker._machine_info(torch)
    assert RUN_KEYS | {"node", "cpu", "python_version"} <= set(info)
    loaded = sys.modules["_xentbench_machine"]
    assert Path(loaded.__file__) == ROOT / "harness" / "machine.py" and loaded is not machine
