"""Layered host data with provenance, and its validation against each role's schema.

Layers, lowest first: each role's DEFAULTS, group_data/all.py, group_data/<env>.py,
group_data/<group>.py for each of the host's groups (inventory order), the host's own data
in the inventory, then any extra data files (tests use these). A later layer replaces a key
whole; every value remembers the file that set it.
"""

from __future__ import annotations

import difflib
import runpy
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic

from keel import ROOT
from keel.roles import ROLES, role_module, role_of_key

# Keys that belong to keel or to pyinfra rather than to a role.
KEEL_KEYS = {"keel_env", "keel_address", "keel_groups", "keel_roles"}
CONNECTOR_PREFIXES = ("ssh_", "_")


@dataclass
class HostData:
    name: str
    env: str
    groups: list[str]
    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def set_layer(self, source: str, layer: dict[str, Any]) -> None:
        for key, value in layer.items():
            self.values[key] = value
            self.sources[key] = source

    @property
    def roles(self) -> list[str]:
        return [name for name, groups in ROLES.items()
                if "all" in groups or set(groups) & set(self.groups)]


def relative(path: Path | str) -> str:
    path = Path(path).resolve()
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def read_data_file(path: Path) -> dict[str, Any]:
    """A data file's public names, as pyinfra reads group_data files."""
    if not path.exists():
        return {}
    names = runpy.run_path(str(path))
    return {
        key: value for key, value in names.items()
        if not key.startswith("_")
        and not isinstance(value, types.ModuleType | types.FunctionType | type)
    }


def defaults() -> list[tuple[str, dict[str, Any]]]:
    return [(relative(role_module(name).__file__) + " (default)", role_module(name).DEFAULTS)
            for name in ROLES]


def merge(name: str, env: str, groups: list[str], host_layer: tuple[str, dict],
          group_data_dir: Path, extra_files: list[Path] = (),
          _cache: dict | None = None) -> HostData:
    cache = _cache if _cache is not None else {}

    def layer(path: Path) -> tuple[str, dict]:
        if path not in cache:
            cache[path] = (relative(path), read_data_file(path))
        return cache[path]

    host = HostData(name=name, env=env, groups=groups)
    for source, values in defaults():
        host.set_layer(source, values)
    for group in ["all", env, *[g for g in groups if g not in ("all", env)]]:
        host.set_layer(*layer(group_data_dir / f"{group}.py"))
    host.set_layer(*host_layer)
    for path in extra_files:
        host.set_layer(*layer(Path(path)))
    host.set_layer("inventory (keel)", {
        "keel_env": env, "keel_groups": groups, "keel_roles": host.roles,
    })
    return host


# --- validation -------------------------------------------------------------------------

@dataclass(frozen=True)
class Problem:
    host: str
    key: str
    source: str
    message: str

    def __str__(self) -> str:
        return f"{self.host}: {self.key} (set in {self.source}): {self.message}"


def _all_known_keys() -> list[str]:
    keys = set(KEEL_KEYS)
    for name in ROLES:
        keys.update(role_module(name).DEFAULTS)
    return sorted(keys)


def _suggest(key: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _describe(error: dict, schema: type[pydantic.BaseModel]) -> str:
    kind = error["type"]
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        return "unknown key"
    got = error.get("input")
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    if kind.endswith("_type") or kind.endswith("_parsing"):
        expected = message.removeprefix("Input should be ")
        return f"expected {expected}, got {type(got).__name__} {got!r}"
    return f"{message} (got {got!r})"


def _nested_fields(schema: type[pydantic.BaseModel], loc: tuple) -> list[str]:
    """Field names of the model at loc's parent, for did-you-mean on nested keys."""
    model: Any = schema
    for part in loc[:-1]:
        if isinstance(part, int) or model is None:
            continue
        info = getattr(model, "model_fields", {}).get(part)
        if info is None:
            return []
        model = _model_in(info.annotation)
    return list(getattr(model, "model_fields", {}))


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def validate_host(host: HostData) -> list[Problem]:
    problems: list[Problem] = []
    known = _all_known_keys()
    for key in host.values:
        if key in KEEL_KEYS or key.startswith(CONNECTOR_PREFIXES):
            continue
        role = role_of_key(key)
        if role is None or key not in role_module(role).DEFAULTS:
            problems.append(Problem(host.name, key, host.sources[key],
                                    "unknown key" + _suggest(key, known)))
    for role in host.roles:
        schema = role_module(role).Schema
        # Defaults are merged in, so every key of the role is present.
        mine = {key: host.values[key] for key in role_module(role).DEFAULTS}
        try:
            schema.model_validate(mine, context={"host": host})
        except pydantic.ValidationError as exc:
            problems.extend(_problems(host, schema, exc.errors()))
    return problems


def _problems(host: HostData, schema, errors: list[dict]) -> list[Problem]:
    # A typo'd key is one problem, not "unknown key" plus "missing key": the missing twin
    # that did-you-mean points at is dropped.
    suggested = set()
    for error in errors:
        if error["type"] == "extra_forbidden":
            close = difflib.get_close_matches(str(error["loc"][-1]),
                                              _nested_fields(schema, error["loc"]), n=1)
            if close:
                suggested.add((*error["loc"][:-1], close[0]))
    problems = []
    for error in errors:
        loc = error["loc"]
        if error["type"] == "missing" and tuple(loc) in suggested:
            continue
        message = _describe(error, schema)
        if error["type"] == "extra_forbidden":
            message += _suggest(str(loc[-1]), _nested_fields(schema, loc))
        problems.append(Problem(host.name, _loc(loc), host.sources.get(str(loc[0]), "?"),
                                message))
    return problems


def group_source_problems(hosts: list[HostData], role: str, key: str,
                          sources: Callable[[Any], list]) -> list[Problem]:
    """'group:<name>' sources (sources(value) lists them from a key's raw value) that name a
    group with no hosts. Only where data sets the key: a default such as group:app may be empty."""
    groups = {group for host in hosts for group in host.groups}
    problems = []
    for host in hosts:
        if role not in host.roles or host.sources[key].endswith("(default)"):
            continue
        for source in sources(host.values[key]):
            if isinstance(source, str) and source.startswith("group:") \
                    and source[6:] not in groups:
                problems.append(Problem(host.name, key, host.sources[key],
                                        f"'{source}' names a group with no hosts"))
    return problems


def check(hosts: list[HostData], decrypt: bool = True) -> list[Problem]:
    """Schema problems per host, then cross-host checks and secrets (on valid data only)."""
    problems = []
    for host in hosts:
        problems.extend(validate_host(host))
    if problems:
        return problems
    for name in ROLES:
        cross_check = getattr(role_module(name), "cross_check", None)
        if cross_check is not None:
            problems.extend(cross_check(hosts))
    if problems:
        return problems  # secrets are looked up for valid data only
    from keel.secrets import check_hosts

    return check_hosts(hosts, decrypt)


def format_problems(problems: list[Problem]) -> str:
    lines = [f"keel: invalid data ({len(problems)} problem{'s' * (len(problems) != 1)}); "
             "no host was contacted:"]
    lines += [f"  {problem}" for problem in problems]
    return "\n".join(lines)


def settings(role: str, data=None):
    """The current host's data for a role, validated and with nested defaults filled in."""
    from pyinfra import host

    data = host.data if data is None else data
    module = role_module(role)
    return module.Schema.model_validate({key: data.get(key) for key in module.DEFAULTS})
