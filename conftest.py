"""Root conftest: the harness's pytest layer lives in a plugin module. Where xentbench is
not installed, this file loads it, too late for the plugin's own early hook: so Triton's
interpreter (no CUDA) is turned on here, before any test module imports Triton."""

from harness.kernels import interpret_without_cuda

interpret_without_cuda()

pytest_plugins = ["harness.pytest_plugin"]
