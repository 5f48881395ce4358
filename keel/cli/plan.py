"""Plans and drift: a pyinfra dry run (`--dry --diff --json`), summarised per host and role.

pyinfra's JSON lists each operation with the hosts it would change; its log (stderr) holds
the hosts it connected to and the file diffs (masked for files that carry secrets, see
keel.deploy.ops.secret_file). A host that cannot be reached fails the plan (--fail-percent 0):
an unreachable host is not a converged one.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from keel import ROOT
from keel.core.data import relative
from keel.core.roles import SITE
from keel.errors import KeelError

PYINFRA = Path(sys.executable).parent / "pyinfra"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
CONNECTED = re.compile(r"^\s*\[(?P<host>[^\]]+)\]\s+Connected")
WILL = re.compile(r"^\s*\[(?P<host>[^\]]+)\]\s+Will (?P<action>create|modify|"
                  r"[Rr]emove lines in|replace lines in) (?P<path>\S+)")


@dataclass
class Change:
    role: str
    operation: str


@dataclass
class FileDiff:
    path: str
    action: str
    diff: list[str]


@dataclass
class HostPlan:
    changes: list[Change] = field(default_factory=list)
    # Operations that may then run, if what triggers them changes (a restart, a reload).
    conditional: list[Change] = field(default_factory=list)
    files: list[FileDiff] = field(default_factory=list)

    @property
    def roles(self) -> list[str]:
        return list(dict.fromkeys(change.role for change in self.changes))


@dataclass
class Plan:
    inventory: str
    deploys: list[str]
    limit: str | None
    hosts: dict[str, HostPlan]

    @property
    def drifted(self) -> dict[str, HostPlan]:
        return {name: plan for name, plan in self.hosts.items() if plan.changes}

    def to_json(self) -> dict:
        return {
            "inventory": self.inventory, "deploys": self.deploys, "limit": self.limit,
            "summary": {"hosts": len(self.hosts), "hosts_with_changes": len(self.drifted),
                        "changes": sum(len(p.changes) for p in self.hosts.values())},
            "hosts": {name: {**asdict(plan), "roles": plan.roles}
                      for name, plan in self.hosts.items()},
        }

    def to_markdown(self) -> str:
        drifted = self.drifted
        total = sum(len(p.changes) for p in drifted.values())
        lines = [f"# Plan: {self.inventory}", "",
                 f"Deploys: {', '.join(self.deploys)}"
                 + (f"; limit: {self.limit}" if self.limit else ""), "",
                 f"{len(self.hosts)} host{'s' * (len(self.hosts) != 1)} checked; "
                 f"{len(drifted)} would change ({total} operation{'s' * (total != 1)}).", "",
                 "| Host | Operations that would change | Roles |", "|---|---|---|"]
        lines += [f"| {name} | {len(plan.changes)} | {', '.join(plan.roles)} |"
                  for name, plan in self.hosts.items()]
        for name, plan in drifted.items():
            lines += ["", f"## {name}"]
            for role in plan.roles:
                lines += ["", f"### {role}", ""]
                lines += [f"- {c.operation}" for c in plan.changes if c.role == role]
                maybe = [c.operation for c in plan.conditional if c.role == role]
                if maybe:
                    lines.append(f"- and if what triggers them changes: {', '.join(maybe)}")
            if plan.files:
                lines += ["", "### Files"]
            for diff in plan.files:
                lines += ["", f"{diff.action} `{diff.path}`:", "", "```diff",
                          *diff.diff, "```"]
        return "\n".join(lines) + "\n"


def _role_and_name(name: str) -> Change:
    role, sep, rest = name.partition(" | ")
    if sep and role in SITE:
        return Change(role, rest)
    return Change(role if sep else "-", rest if sep else name)


def _diffs(stderr: str) -> dict[str, list[FileDiff]]:
    """Per host, the file diffs pyinfra logged under --diff."""
    out: dict[str, list[FileDiff]] = {}
    current: FileDiff | None = None
    for raw in stderr.splitlines():
        line = ANSI.sub("", raw)
        match = WILL.match(line)
        if match:
            current = FileDiff(match["path"], match["action"].lower(), [])
            out.setdefault(match["host"], []).append(current)
        elif current is not None and line.startswith("      "):
            current.diff.append(line[6:])
        else:
            current = None
    return out


def parse(document: dict, stderr: str) -> dict[str, HostPlan]:
    hosts = {m["host"]: HostPlan() for m in map(CONNECTED.match, stderr.splitlines()) if m}
    changed: set[tuple[str, str]] = set()  # (host, role) with a change so far
    for op in document.get("plan", []):
        change = _role_and_name(op["name"])
        for name in op["hosts_with_change"]:
            hosts.setdefault(name, HostPlan()).changes.append(change)
            changed.add((name, change.role))
        # pyinfra does not say what a conditional operation follows: a role's restarts and
        # reloads that come after one of its changes may run.
        for name in op["hosts_with_conditional_change"]:
            if (name, change.role) in changed:
                hosts[name].conditional.append(change)
    for name, diffs in _diffs(stderr).items():
        hosts.setdefault(name, HostPlan()).files.extend(diffs)
    return dict(sorted(hosts.items()))


def run(inventory: Path, deploys: list[str], limit: str | None = None,
        timeout: int = 1800) -> Plan:
    """Run the dry run and summarise it. Raises KeelError when pyinfra fails."""
    argv = [str(PYINFRA), "--dry", "--diff", "--json", "--fail-percent", "0"]
    if limit:
        argv += ["--limit", limit]
    argv += [str(inventory), *deploys]
    proc = subprocess.run(argv, cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)
    if proc.returncode != 0 or not proc.stdout.lstrip().startswith("{"):
        tail = "\n".join(proc.stderr.strip().splitlines()[-25:])
        raise KeelError(f"the dry run failed (pyinfra exit {proc.returncode}):\n{tail}")
    return Plan(relative(inventory), list(deploys), limit,
                parse(json.loads(proc.stdout), proc.stderr))


def write(plan: Plan, out: Path, stem: str) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    markdown, document = out / f"{stem}.md", out / f"{stem}.json"
    markdown.write_text(plan.to_markdown())
    document.write_text(json.dumps(plan.to_json(), indent=2) + "\n")
    return markdown, document
