"""Test data for app: the agent reference stack (examples/app/agent.py)."""

import runpy
from pathlib import Path

_EXAMPLE = runpy.run_path(str(Path(__file__).parents[3] / "examples/app/agent.py"))
app_services = _EXAMPLE["app_services"]
app_networks = _EXAMPLE["app_networks"]
app_volumes = _EXAMPLE["app_volumes"]
