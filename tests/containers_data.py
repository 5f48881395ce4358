"""Test data for the container tests: the reference stacks of examples/app, made quick.

Health checks run every 2 seconds (the examples use 5s), so converges and failures are fast.
"""

from __future__ import annotations

import copy
import runpy
import secrets

from keel import ROOT

EXAMPLES = ROOT / "examples/app"


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
    return data


def secret_values(data: dict) -> dict[str, str]:
    """A fresh value for every secret the services name (set them with secrets_env)."""
    return {item["secret"]: "keel-canary-" + secrets.token_hex(12)
            for svc in data["app_services"].values() for item in svc.get("secrets", [])}
