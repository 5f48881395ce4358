"""Rolling updates and status of the app role's services, across an inventory's app hosts.

pyinfra runs each operation on all hosts before the next one, and `--serial` only orders
hosts within an operation, so neither stops a release at the first bad host. `rollout` runs
the app deploy on one batch of hosts at a time (`--limit`), checks every service on those
hosts is running and healthy, and stops at the first batch that fails: later hosts keep the
version they run. `--rollback` does the same with deploys/app_rollback.py, which returns the
services that run the data's current definition to the one they replaced.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from keel import ROOT
from keel.errors import KeelError

BIN = Path(sys.executable).parent
STATUS_FACT = "roles.app.facts.Status"


def inventory_path(name: str) -> Path:
    """An environment name (inventories/<name>.py) or an inventory file's path."""
    path = Path(name)
    if not path.suffix:
        path = ROOT / "inventories" / f"{name}.py"
    if not path.exists():
        raise KeelError(f"no inventory {name} ({path})")
    return path.resolve()


def group_hosts(inventory: Path, group: str) -> list[str]:
    """Host names of one group, in inventory order."""
    from keel.core.inventory import load

    hosts = [h.name for h in load(inventory).hosts if group in h.groups]
    if not hosts:
        raise KeelError(f"{inventory.name}: group '{group}' has no hosts")
    return hosts


def _pyinfra(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "pyinfra"), *args], cwd=ROOT, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL)


def status(inventory: Path, limit: list[str] = ()) -> dict[str, dict]:
    """{host: {service: {image, state, unit, health, restarts, ...}}}, read only."""
    args = ["--json", str(inventory), "fact", STATUS_FACT]
    for name in limit:
        args[1:1] = ["--limit", name]
    proc = _pyinfra(*args)
    if proc.returncode != 0 or not proc.stdout.strip().startswith("{"):
        raise KeelError(f"reading service status failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout).get(STATUS_FACT, {})


def status_table(facts: dict[str, dict]) -> str:
    rows = [["HOST", "SERVICE", "IMAGE", "STATE", "HEALTH", "RESTARTS"]]
    for hostname, services in sorted(facts.items()):
        if not services:
            rows.append([hostname, "-", "-", "-", "-", "-"])
        for name, s in sorted((services or {}).items()):
            rows.append([hostname, name, s["image"], f"{s['state']} ({s['unit']})",
                         s["health"], str(s["restarts"])])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)


def unhealthy(services: dict) -> list[str]:
    return sorted(name for name, s in (services or {}).items()
                  if s["state"] != "running" or s["health"] not in ("healthy", "-"))


@dataclass
class Result:
    done: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    untouched: list[str] = field(default_factory=list)
    reason: str = ""

    @property
    def ok(self) -> bool:
        return not self.failed


def rollout(inventory: Path, *, group: str = "app", batch: int = 1, rollback: bool = False,
            log=print) -> Result:
    deploy = "deploys/app_rollback.py" if rollback else "deploys/app.py"
    hosts = group_hosts(inventory, group)
    result = Result()
    batches = [hosts[i:i + batch] for i in range(0, len(hosts), batch)]
    for number, members in enumerate(batches, 1):
        log(f"batch {number}/{len(batches)}: {', '.join(members)}")
        args = ["-y", "--json"]
        for name in members:
            args += ["--limit", name]
        proc = _pyinfra(*args, str(inventory), deploy)
        failed = _failed_hosts(proc, members)
        reason = proc.stderr[-3000:] if failed else ""
        if not failed:
            for name, services in status(inventory, members).items():
                bad = unhealthy(services)
                if bad:
                    failed.append(name)
                    reason += f"{name}: not healthy: {', '.join(bad)}\n"
        if failed:
            result.failed = failed
            result.done += [m for m in members if m not in failed]
            result.untouched = [h for b in batches[number:] for h in b]
            result.reason = reason
            log(f"stopped: {', '.join(failed)} failed; not updated: "
                f"{', '.join(result.untouched) or 'none'}")
            return result
        result.done += members
    return result


def _failed_hosts(proc: subprocess.CompletedProcess, members: list[str]) -> list[str]:
    try:
        document = json.loads(proc.stdout)
        failed = list(document["results"]["failed_hosts"])
    except (ValueError, KeyError, TypeError):
        failed = []
    if proc.returncode != 0 and not failed:
        failed = list(members)
    return failed
