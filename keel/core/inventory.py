"""Builds pyinfra inventory groups with keel's merged, validated data.

An inventory file calls `groups(...)` and puts the result in its module namespace. Data is
merged and validated here, while pyinfra loads the inventory: before it connects to any host,
so bad data stops the run with nothing touched. keel's own commands read the same files
through `load`, which collects the data instead of stopping.
"""

from __future__ import annotations

import runpy
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from keel import ROOT
from keel.core.checks import check
from keel.core.data import HostData, Problem, format_problems, merge, relative
from keel.errors import KeelError

GROUP_DATA = ROOT / "group_data"
INVENTORIES = ROOT / "inventories"

HostSpec = str | tuple[str, dict[str, Any]]

# Set by `load` while it runs an inventory file: groups() records its hosts here.
_collecting: list[tuple[str, list[HostData]]] | None = None


def hosts_data(env: str, groups: dict[str, list[HostSpec]], source: str,
               extra_files: list[Path] = ()) -> list[HostData]:
    membership: dict[str, list[str]] = {}
    own: dict[str, dict[str, Any]] = {}
    for group, members in groups.items():
        for spec in members:
            name, data = (spec, {}) if isinstance(spec, str) else spec
            membership.setdefault(name, []).append(group)
            own.setdefault(name, {}).update(data)
    cache: dict = {}
    return [
        merge(name, env, member_of, (source, own[name]), GROUP_DATA, extra_files, cache)
        for name, member_of in membership.items()
    ]


def cli_overrides(argv: list[str]) -> dict[str, Any]:
    """pyinfra's `--data key=value` values, parsed as pyinfra parses them.

    pyinfra applies them over every host after the inventory loads; keel layers them here
    too, so they are validated with the rest of the data before any host is contacted.
    """
    from pyinfra_cli.util import parse_cli_arg

    found = {}
    for i, arg in enumerate(argv):
        if arg == "--data" and i + 1 < len(argv):
            item = argv[i + 1]
        elif arg.startswith("--data="):
            item = arg.removeprefix("--data=")
        else:
            continue
        if "=" in item:
            key, value = item.split("=", 1)
            found[key] = parse_cli_arg(value)
    return found


def groups(env: str, groups: dict[str, list[HostSpec]], *, source: str,
           extra_files: list[Path] = ()) -> dict[str, list]:
    """pyinfra groups ({group: [(host, data)]}) for an environment, validated."""
    hosts = hosts_data(env, groups, relative(source), extra_files)
    if _collecting is not None:
        _collecting.append((env, hosts))
    else:
        overrides = cli_overrides(sys.argv)
        for host in hosts:
            # pyinfra puts --data over the host's data whole: validate what it will use.
            host.set_layer("--data (command line)", overrides, whole=True)
        # debug-inventory only prints data: it needs no secret decrypted.
        problems = check(hosts, decrypt="debug-inventory" not in sys.argv)
        if problems:
            print(format_problems(problems), file=sys.stderr)
            raise SystemExit(2)
    by_name = {host.name: host for host in hosts}
    return {
        group: [(name, dict(by_name[name].values))
                for name in (m if isinstance(m, str) else m[0] for m in members)]
        for group, members in groups.items()
    }


@dataclass
class Environment:
    """An inventory file's hosts with their merged data, as keel's commands see them."""

    env: str
    path: Path
    hosts: list[HostData]

    @cached_property
    def problems(self) -> list[Problem]:
        """Problems in the data; secrets must exist but are not decrypted."""
        return check(self.hosts, decrypt=False)

    def host(self, name: str) -> HostData:
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeelError(f"no host {name!r} in {relative(self.path)} "
                        f"(hosts: {', '.join(h.name for h in self.hosts) or 'none'})")


def envs() -> list[str]:
    return sorted(path.stem for path in INVENTORIES.glob("*.py"))


def inventory_path(target: str | Path) -> Path:
    """An environment's inventory file: `prod` is inventories/prod.py; a path is itself."""
    path = Path(target)
    if path.suffix == ".py" or len(path.parts) > 1:
        if not path.is_file():
            raise KeelError(f"no inventory file {target}")
        return path.resolve()
    path = INVENTORIES / f"{target}.py"
    if not path.is_file():
        raise KeelError(f"no environment {target!r} (known: {', '.join(envs())}; "
                        "or give an inventory file path)")
    return path


def load(target: str | Path) -> Environment:
    """Run an inventory file the way pyinfra does, and collect its hosts' data."""
    global _collecting
    path = inventory_path(target)
    _collecting = []
    try:
        runpy.run_path(str(path))
        collected = _collecting
    finally:
        _collecting = None
    if len(collected) != 1:
        raise KeelError(f"{relative(path)} must call keel.core.inventory.groups() once "
                        f"(it called it {len(collected)} times)")
    env, hosts = collected[0]
    return Environment(env, path, hosts)
