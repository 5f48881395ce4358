"""Test data for the container tests: the reference stacks of examples/app, made quick.

Health checks run every 2 seconds (the examples use 5s), so converges and failures are fast.
"""

from __future__ import annotations

import copy
import importlib.util
import runpy

from keel import ROOT

EXAMPLES = ROOT / "examples/app"
HAVE_SECRETS = importlib.util.find_spec("keel.secrets") is not None


def stack(*names: str) -> dict:
    """app_services/app_networks/app_volumes of the named examples, merged."""
    data = {"app_services": {}, "app_networks": {}, "app_volumes": {}}
    for name in names:
        example = runpy.run_path(str(EXAMPLES / f"{name}.py"))
        for key in data:
            data[key].update(copy.deepcopy(example.get(key, {})))
    for svc in data["app_services"].values():
        if svc.get("health"):
            svc["health"].update(interval="2s", timeout="5s")
        if not HAVE_SECRETS:
            # Until keel.secrets is in main, the stacks run without their secret files.
            svc.pop("secrets", None)
            svc["environment"].pop("STANDIN_SECRETS", None)
    return data
