"""Builds pyinfra inventory groups with keel's merged, validated data.

An inventory file calls `groups(...)` and puts the result in its module namespace. Data is
merged and validated here, while pyinfra loads the inventory: before it connects to any host,
so bad data stops the run with nothing touched.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path
from typing import Any

from keel import ROOT
from keel.data import HostData, check, format_problems, merge, relative

GROUP_DATA = ROOT / "group_data"

HostSpec = str | tuple[str, dict[str, Any]]


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


_captured: list[HostData] | None = None


def groups(env: str, groups: dict[str, list[HostSpec]], *, source: str,
           extra_files: list[Path] = ()) -> dict[str, list]:
    """pyinfra groups ({group: [(host, data)]}) for an environment, validated."""
    hosts = hosts_data(env, groups, relative(source), extra_files)
    if _captured is not None:
        _captured.extend(hosts)
    else:
        # --debug-inventory only prints data: it needs no secret decrypted.
        problems = check(hosts, decrypt="--debug-inventory" not in sys.argv)
        if problems:
            print(format_problems(problems), file=sys.stderr)
            raise SystemExit(2)
    by_name = {host.name: host for host in hosts}
    return {
        group: [(name, dict(by_name[name].values))
                for name in (m if isinstance(m, str) else m[0] for m in members)]
        for group, members in groups.items()
    }


def load(path: Path | str) -> list[HostData]:
    """The hosts an inventory file defines, merged but not validated (for keel's own tools)."""
    global _captured
    _captured = []
    try:
        runpy.run_path(str(path))
        return _captured
    finally:
        _captured = None
