"""Root conftest: the harness's pytest layer lives in a plugin module."""

pytest_plugins = ["harness.pytest_plugin"]
