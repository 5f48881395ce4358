"""Test harness: converge real sandbox hosts with the pyinfra CLI and read its JSON results.

Tests use it through the pytest plugin (keel.lab.testing.plugin): start hosts, write an inventory
for them with test data, run a deploy, and assert on what changed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keel import ROOT
from keel.lab import sandbox

BIN = Path(sys.executable).parent


@dataclass
class Run:
    """One pyinfra run: exit code, output and the parsed --json document."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    document: dict | None

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def changed(self) -> dict[str, list[str]]:
        """host -> names of operations that changed (or, for a plan, would change)."""
        out: dict[str, list[str]] = {}
        if not self.document:
            return out
        if self.document.get("results"):
            for op in self.document["results"]["operations"]:
                for name in op["success"]:
                    out.setdefault(name, []).append(op["name"])
        else:
            for op in self.document["plan"]:
                for name in op["hosts_with_change"]:
                    out.setdefault(name, []).append(op["name"])
        return out

    def failed_hosts(self) -> list[str]:
        if self.document and self.document.get("results"):
            return self.document["results"]["failed_hosts"]
        return []

    def check(self) -> Run:
        if self.returncode != 0 or self.failed_hosts():
            raise AssertionError(
                f"{' '.join(self.argv)} failed ({self.returncode}):\n{self.stderr[-4000:]}")
        return self


class Harness:
    """Writes inventories for sandbox hosts and runs pyinfra against them."""

    def __init__(self, workdir: Path, env: str = "sandbox"):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.env = env

    def inventory(self, groups: dict[str, list[sandbox.Host]], *,
                  data: dict[str, Any] | None = None,
                  data_files: list[Path] = (),
                  host_data: dict[str, dict[str, Any]] | None = None,
                  name: str = "inventory") -> Path:
        """An inventory file for these hosts; `data` goes to every host via a data file."""
        extra = [Path(p).resolve() for p in data_files]
        if data:
            data_file = self.workdir / f"{name}_data.py"
            data_file.write_text("".join(f"{k} = {v!r}\n" for k, v in data.items()))
            extra.append(data_file)
        host_data = host_data or {}
        spec = {
            group: [(h.name, {**sandbox.ssh_data(h), **host_data.get(h.name, {})})
                    for h in members]
            for group, members in groups.items()
        }
        path = self.workdir / f"{name}.py"
        path.write_text(
            "from pathlib import Path\n"
            "from keel.core.inventory import groups\n\n"
            f"globals().update(groups({self.env!r}, {spec!r}, source=__file__,\n"
            f"    extra_files=[Path(p) for p in {[str(p) for p in extra]!r}]))\n"
        )
        return path

    def run(self, inventory: Path, deploy: str | list[str], *, dry: bool = False,
            diff: bool = False, as_json: bool = True, args: list[str] = (),
            env: dict[str, str] | None = None, timeout: int = 900) -> Run:
        """Run `pyinfra` as a user would: -y to apply; a plan is --dry without -y, stdin closed.

        `deploy` is a deploy file or several, run in order.
        """
        argv = [str(BIN / "pyinfra")]
        argv += ["--dry"] if dry else ["-y"]
        if diff:
            argv.append("--diff")
        if as_json:
            argv.append("--json")
        argv += [*args, str(inventory), *([deploy] if isinstance(deploy, str) else deploy)]
        proc = subprocess.run(
            argv, cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=timeout, env={**os.environ, **(env or {})},
        )
        document = None
        if as_json and proc.stdout.strip().startswith("{"):
            document = json.loads(proc.stdout)
        stderr = proc.stderr
        debug_log = ROOT / "pyinfra-debug.log"
        if "pyinfra-debug.log" in stderr and debug_log.exists():
            # pyinfra writes it to its working directory on an internal exception: kept with
            # the test's files, not left in the working tree.
            count = len(list(self.workdir.glob("pyinfra-debug-*")))
            kept = self.workdir / f"pyinfra-debug-{count}.log"
            debug_log.replace(kept)
            stderr += f"\n(keel tests: pyinfra-debug.log moved to {kept})\n"
        return Run(argv, proc.returncode, proc.stdout, stderr, document)

    def converge(self, inventory: Path, deploy: str, **kwargs) -> Run:
        return self.run(inventory, deploy, **kwargs).check()

    def assert_idempotent(self, inventory: Path, deploy: str, env: dict[str, str] | None = None,
                          timeout: int = 900) -> tuple[Run, Run, Run]:
        """Converge (within timeout), converge again (zero changes), then plan (zero changes)."""
        first = self.converge(inventory, deploy, env=env, timeout=timeout)
        second = self.converge(inventory, deploy, env=env)
        assert second.changed() == {}, f"second run changed: {second.changed()}"
        plan = self.run(inventory, deploy, dry=True, diff=True, env=env).check()
        assert plan.changed() == {}, f"plan on a converged host shows: {plan.changed()}"
        return first, second, plan


def run_testinfra(hosts: list[sandbox.Host], *paths: str | Path, extra: list[str] = (),
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run a role's testinfra tests (roles/<name>/tests) against sandbox hosts over SSH."""
    argv = [
        str(BIN / "pytest"), "-q", "-p", "no:cacheprovider", "-p", "no:keel.lab.testing.plugin",
        "--rootdir", str(ROOT), "-o", "addopts=",
        "--hosts", ",".join(f"ssh://{h.address}" for h in hosts),
        "--ssh-config", str(sandbox.ssh_config()),
        *extra, *[str(p) for p in paths],
    ]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def ssh(host: sandbox.Host, command: str, timeout: int = 60) -> subprocess.CompletedProcess:
    """Run a shell command on a sandbox host as root."""
    return subprocess.run(host.ssh_argv(command), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
