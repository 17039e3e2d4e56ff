"""`harness.benchmark.gpu_state`: the GPU's exposure rule on synthetic readings, and the
NVML reader on a fake NVML (the real one needs a GPU: it is read on the first lease)."""

from __future__ import annotations

from types import SimpleNamespace

from harness.benchmark.gpu_state import GpuState, exposure_reason, gpu_state

QUIET = GpuState(sm_mhz=1980, max_sm_mhz=1980, mem_mhz=3201, throttle=0, processes=(100,))


def _with(**changes) -> GpuState:
    return GpuState(**{**QUIET.as_dict(), "processes": QUIET.processes, **changes})


def test_a_steady_chip_alone_is_not_flagged():
    assert exposure_reason(QUIET, QUIET, own_pid=100) is None
    # idle and sync-boost bits are not slowdowns; a 5 % clock move is within the rule
    assert exposure_reason(QUIET, _with(throttle=0x1 | 0x10, sm_mhz=1890), own_pid=100) is None


def test_a_clock_drop_is_flagged():
    reason = exposure_reason(QUIET, _with(sm_mhz=1400), own_pid=100)
    assert reason == "gpu: SM clock dropped from 1980 to 1400 MHz"


def test_a_slowing_throttle_reason_is_flagged_by_name():
    reason = exposure_reason(QUIET, _with(throttle=0x20 | 0x4), own_pid=100)
    assert reason == "gpu: throttled (software power cap, software thermal slowdown)"


def test_another_process_on_the_gpu_is_flagged():
    assert "another process used the GPU (pid 7)" in exposure_reason(
        QUIET, _with(processes=(100, 7)), own_pid=100)
    # in a pid namespace this process is not found among them: all but one count
    assert exposure_reason(_with(processes=(5,)), _with(processes=(5,)), own_pid=100) is None
    assert "pid 9" in exposure_reason(_with(processes=(5, 9)), _with(processes=(5, 9)), own_pid=100)


def test_nothing_is_judged_without_a_reading():
    unread = GpuState(reason="no NVML: nvidia-ml-py is not installed")
    assert exposure_reason(unread, _with(sm_mhz=100), own_pid=100) is None
    assert not unread.read and unread.as_dict()["sm_mhz"] is None


def _fake_nvml(fail: Exception | None = None):
    def init():
        if fail:
            raise fail

    return SimpleNamespace(
        nvmlInit=init, nvmlDeviceGetHandleByIndex=lambda i: ("gpu", i),
        NVML_CLOCK_SM=0, NVML_CLOCK_MEM=2, NVML_TEMPERATURE_GPU=0,
        nvmlDeviceGetClockInfo=lambda h, kind: {0: 1755, 2: 3201}[kind],
        nvmlDeviceGetMaxClockInfo=lambda h, kind: 1980,
        nvmlDeviceGetCurrentClocksThrottleReasons=lambda h: 0x4,
        nvmlDeviceGetComputeRunningProcesses=lambda h: [SimpleNamespace(pid=42)],
        nvmlDeviceGetTemperature=lambda h, kind: 51,
        nvmlDeviceGetPowerUsage=lambda h: 312_000)


def test_the_reader_takes_every_field_from_nvml():
    state = gpu_state(nvml=_fake_nvml())
    assert state == GpuState(sm_mhz=1755, max_sm_mhz=1980, mem_mhz=3201, throttle=0x4,
                             processes=(42,), temperature_c=51, power_w=312.0)
    assert state.slowing() == ["software power cap"]


def test_an_nvml_error_is_a_reason_not_a_crash():
    state = gpu_state(nvml=_fake_nvml(RuntimeError("Driver Not Loaded")))
    assert state.reason == "NVML: RuntimeError: Driver Not Loaded" and not state.read
