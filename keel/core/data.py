"""Layered host data with provenance, and its validation against each role's schema.

"Data" is the layered input; a role's "settings" are its validated view of it.

Layers, lowest first: each role's defaults (its settings' fields), group_data/all.py,
group_data/<env>.py, group_data/<group>.py for each of the host's groups (inventory order),
the host's own data in the inventory, then any extra data files (tests use these). A later
layer replaces a key whole, except a key whose schema marks it `DeepMerge`: there a mapping
merges into the earlier one, key by key at every depth (lists and other values replace).
`keel.DELETE` removes a sub-key of such a key, or resets any role's key to its default.
Every value remembers the file that set it; in a merged key, every sub-key a layer set does.
"""

from __future__ import annotations

import copy
import difflib
import functools
import ipaddress
import re
import runpy
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import pydantic

from keel import DELETE, ROOT
from keel.core.roles import SITE, role, role_of_key, roles_of
from keel.core.schema import DeepMerge, SecretMarker, field_annotation, walk

# Keys that belong to keel or to pyinfra rather than to a role.
KEEL_KEYS = {"keel_env", "keel_address", "keel_groups", "keel_roles"}
CONNECTOR_PREFIXES = ("ssh_", "_")


@dataclass
class HostData:
    name: str
    env: str
    groups: list[str]
    values: dict[str, Any] = field(default_factory=dict)
    # The file that last set each key ...
    sources: dict[str, str] = field(default_factory=dict)
    # ... and in a merged key, the file that set each sub-key: {key: {path in key: file}}.
    paths: dict[str, dict[tuple, str]] = field(default_factory=dict)
    inventory: str = ""  # the inventory file that lists the host
    # Layers that could not be applied (a list where a mapping merges, a misplaced DELETE).
    problems: list[Problem] = field(default_factory=list)

    def set_layer(self, source: str, layer: dict[str, Any], whole: bool = False) -> None:
        """Layer values over the host's; `whole`: each key replaced whole, merged or not."""
        for key, value in layer.items():
            if whole:
                self.values[key] = copy.deepcopy(value)
                self.sources[key] = source
                if key in self.paths:
                    self.paths[key] = {(): source}
            elif value is DELETE:
                self._reset(source, key)
            elif key in merged_keys():
                self._merge(source, key, (), self.values, key, value)
            elif (where := _delete_in(value)) is not None:
                self._problem(source, key, where, "keel.DELETE works only in keys that merge "
                              f"across layers ({', '.join(sorted(merged_keys()))}); "
                              f"{key} is replaced whole by the layer that sets it")
            else:
                self.values[key] = value
                self.sources[key] = source

    def _reset(self, source: str, key: str) -> None:
        owner = role_of_key(key)
        if owner is None or key not in role(owner).settings.model_fields:
            self._problem(source, key, (), "keel.DELETE resets a role's key to its default; "
                          "this is no role's key")
            return
        self.values[key] = copy.deepcopy(role(owner).defaults[key])
        self.sources[key] = role(owner).source + " (default)"
        if key in self.paths:
            self.paths[key] = {(): self.sources[key]}

    def _merge(self, source: str, key: str, sub: tuple, target: dict, name: Any,
               new: Any) -> None:
        """Layer `new` over target[name], the value at path `sub` in `key`."""
        old = target.get(name, _MISSING)
        paths = self.paths.setdefault(key, {})
        if new is DELETE:
            if old is _MISSING:
                self._problem(source, key, sub, "keel.DELETE: no earlier layer sets it")
                return
            del target[name]
        elif isinstance(old, dict) and isinstance(new, dict):
            for child, value in new.items():
                self._merge(source, key, (*sub, child), old, child, value)
            self.sources[key] = source
            return
        elif isinstance(old, dict) and new is not None:
            self._problem(source, key, sub, f"expected a mapping, to merge into the one set "
                          f"in {self.source_at((key, *sub))}; got {type(new).__name__} "
                          "(keel.DELETE removes a sub-key)")
            return
        elif (where := _delete_in(new)) is not None:
            in_list = any(isinstance(part, int) for part in where)
            self._problem(source, key, (*sub, *where), "keel.DELETE removes a key of a mapping; "
                          "a list is replaced whole" if in_list else
                          "keel.DELETE: no earlier layer sets it")
            return
        else:
            target[name] = copy.deepcopy(new)  # merged in place later: layers are shared
        for path in [p for p in paths if p[:len(sub)] == sub]:
            del paths[path]
        if new is not DELETE:
            paths[sub] = source
        self.sources[key] = source

    def _problem(self, source: str, key: str, sub: tuple, message: str) -> None:
        self.problems.append(Problem(self.name, _loc((key, *sub)), source, message))

    def source_at(self, loc: tuple | str) -> str:
        """The file that set the value at loc (a path such as ('app_services', 'web') or its
        text 'app_services.web.ports[0]'): in a merged key, the deepest sub-key a layer set."""
        if isinstance(loc, str):
            loc = _parse_loc(loc)
        key, sub = str(loc[0]), tuple(loc[1:])
        paths = self.paths.get(key, {})
        for end in range(len(sub), -1, -1):
            if sub[:end] in paths:
                return paths[sub[:end]]
        return self.sources.get(key, "?")

    def split_sources(self, key: str, value: Any) -> list[tuple[tuple, Any, str]]:
        """(path, value, file) covering key's value: one row, or in a merged key that several
        files set, one row for each largest part that a single file set."""
        paths = self.paths.get(key, {})

        def split(sub: tuple, value: Any, inherited: str) -> list[tuple[tuple, Any, str]]:
            here = paths.get(sub, inherited)
            below = {file for path, file in paths.items()
                     if len(path) > len(sub) and path[:len(sub)] == sub}
            if not isinstance(value, dict) or below <= {here}:
                return [(sub, value, here)]
            return [row for child in sorted(value, key=str)
                    for row in split((*sub, child), value[child], here)]

        return split((), value, self.sources[key])

    @property
    def roles(self) -> list[str]:
        return roles_of(self.groups)

    def settings(self, name: str):
        """A role's settings from this host's data (validate_host has passed)."""
        return role(name).validate(self.values)


_MISSING = object()


@functools.cache
def merged_keys() -> frozenset[str]:
    """Keys whose layers merge: their schema field is marked DeepMerge."""
    return frozenset(key for name in SITE
                     for key, info in role(name).settings.model_fields.items()
                     if any(isinstance(marker, DeepMerge) for marker in info.metadata))


def _delete_in(value: Any, sub: tuple = ()) -> tuple | None:
    """The path of a keel.DELETE inside value, if any."""
    if value is DELETE:
        return sub
    items = value.items() if isinstance(value, dict) else \
        enumerate(value) if isinstance(value, list | tuple) else ()
    for child, item in items:
        found = _delete_in(item, (*sub, child))
        if found is not None:
            return found
    return None


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
        and not (key == "DELETE" and value is DELETE)  # from keel import DELETE
    }


def defaults() -> list[tuple[str, dict[str, Any]]]:
    return [(role(name).source + " (default)", role(name).defaults) for name in SITE]


def merge(name: str, env: str, groups: list[str], host_layer: tuple[str, dict],
          group_data_dir: Path, extra_files: list[Path] = (),
          _cache: dict | None = None) -> HostData:
    cache = _cache if _cache is not None else {}

    def layer(path: Path) -> tuple[str, dict]:
        if path not in cache:
            cache[path] = (relative(path), read_data_file(path))
        return cache[path]

    host = HostData(name=name, env=env, groups=groups, inventory=host_layer[0])
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
    for name in SITE:
        keys.update(role(name).keys)
    return sorted(keys)


def _suggest(key: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif out and not str(part).isidentifier():
            out += f"[{part!r}]"  # a dict key such as 'vm.swappiness'
        else:
            out += f".{part}" if out else str(part)
    return out


def _parse_loc(text: str) -> tuple:
    """_loc's text back into a path: 'a.b[0]' and "a['x.y']" -> ('a', 'b', 0), ('a', 'x.y')."""
    return tuple(int(index) if index else quoted if quoted else name
                 for index, quoted, name in re.findall(r"\[(\d+)\]|\['([^']*)'\]|([^.\[\]]+)",
                                                       text))


def _describe(error: dict, schema: type[pydantic.BaseModel]) -> str:
    kind = error["type"]
    if kind == "union":
        return error["msg"]
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
            continue  # a dict key (e.g. a service name): the model stays that of its values
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
    problems: list[Problem] = list(host.problems)
    known = _all_known_keys()
    for key in host.values:
        if key in KEEL_KEYS or key.startswith(CONNECTOR_PREFIXES):
            continue
        owner = role_of_key(key)
        if owner is None or key not in role(owner).settings.model_fields:
            problems.append(Problem(host.name, key, host.sources[key],
                                    "unknown key" + _suggest(key, known)))
    problems.extend(_check_address(host))
    for name in host.roles:
        schema = role(name).settings
        # Defaults are merged in, so every key of the role is present.
        mine = {key: host.values[key] for key in role(name).keys}
        try:
            schema.model_validate(mine, context={"host": host})
        except pydantic.ValidationError as exc:
            problems.extend(_problems(host, schema, exc.errors()))
    return problems


def _check_address(host: HostData) -> list[Problem]:
    """keel_address: the host's private address, which other hosts' configuration uses."""
    address = host.values.get("keel_address")
    if address is None:
        return [Problem(host.name, "keel_address", host.inventory,
                        "required key is missing: the host's private IP address")]
    try:
        ipaddress.ip_address(address if isinstance(address, str) else None)
    except ValueError:
        return [Problem(host.name, "keel_address", host.sources["keel_address"],
                        f"expected an IP address such as '10.0.0.5', got {address!r}")]
    return []


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
    errors = _merge_union_errors(schema, errors)
    for error in errors:
        loc = error["loc"]
        if error["type"] == "missing" and tuple(loc) in suggested:
            continue
        message = _describe(error, schema)
        if error.get("input", ...) is None and len(loc) == 1 and error["type"].endswith("_type") \
                and host.sources.get(str(loc[0]), "").endswith("(default)"):
            # A None default is how a role marks a key that each environment must set.
            message = ("required key is missing: the role has no default; set it in "
                       f"group_data or the inventory ({message})")
        if error["type"] == "extra_forbidden":
            message += _suggest(str(loc[-1]), _nested_fields(schema, loc))
        problems.append(Problem(host.name, _loc(loc), host.source_at(tuple(loc)), message))
    return problems


def _union_tag(schema: Any, loc: tuple) -> int | None:
    """Where loc passes through a union, pydantic adds the member's tag: its index in loc."""
    annotation = schema
    for index, part in enumerate(loc):
        while get_origin(annotation) is Annotated:
            annotation = get_args(annotation)[0]
        if get_origin(annotation) in (Union, UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) > 1:
                return index
            annotation = members[0]
            while get_origin(annotation) is Annotated:
                annotation = get_args(annotation)[0]
        if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
            info = annotation.model_fields.get(part)
            if info is None:
                return None
            annotation = field_annotation(info)
        elif get_origin(annotation) is dict:
            annotation = get_args(annotation)[1]
        elif get_origin(annotation) in (list, tuple, set, frozenset):
            annotation = get_args(annotation)[0]
        else:
            return None
    return None


def _merge_union_errors(schema, errors: list[dict]) -> list[dict]:
    """One error per value that matches no member of a union: 'expected A or B, got ...'."""
    merged: dict[tuple, dict] = {}
    out = []
    for error in errors:
        index = _union_tag(schema, error["loc"])
        if index is None:
            out.append(error)
            continue
        loc = tuple(error["loc"][:index])
        expected = _describe(error, schema).split(", got ")[0].removeprefix("expected ")
        if loc in merged:
            merged[loc]["msg"] += f" or {expected}"
        else:
            merged[loc] = {"type": "union", "loc": loc, "msg": expected,
                           "input": error.get("input")}
            out.append(merged[loc])
    for error in merged.values():
        error["msg"] = (f"expected {error['msg']}, got {type(error['input']).__name__} "
                        f"{error['input']!r}")
    return out


def group_source_problems(hosts: list[HostData], name: str, key: str,
                          sources: Callable[[Any], list]) -> list[Problem]:
    """'group:<name>' sources (sources(value) lists them from a key's raw value) that name a
    group with no hosts. Only where data sets the key: a default such as group:app may be empty."""
    groups = {group for host in hosts for group in host.groups}
    problems = []
    for host in hosts:
        if name not in host.roles or host.sources[key].endswith("(default)"):
            continue
        for source in sources(host.values[key]):
            message = unknown_group(source, groups)
            if message:
                problems.append(Problem(host.name, key, host.sources[key], message))
    return problems


def unknown_group(source: Any, groups: set[str]) -> str | None:
    """The problem with a 'group:<name>' source that names a group with no hosts, if any."""
    if isinstance(source, str) and source.startswith("group:") and source[6:] not in groups:
        return f"'{source}' names a group with no hosts" + _suggest(source[6:], sorted(groups))
    return None


def format_problems(problems: list[Problem]) -> str:
    # The same problem on several hosts (set in a shared file) is one line naming them all.
    hosts: dict[tuple[str, str, str], list[str]] = {}
    for problem in problems:
        hosts.setdefault((problem.key, problem.source, problem.message), []).append(problem.host)
    lines = [f"keel: invalid data ({len(hosts)} problem{'s' * (len(hosts) != 1)}); "
             "no host was contacted:"]
    lines += [f"  {Problem(', '.join(names), *problem)}" for problem, names in hosts.items()]
    return "\n".join(lines)


# --- display ----------------------------------------------------------------------------

MASK = "********"
# Keys whose values are masked even when no schema marks them (connector passwords, typos).
SECRET_WORDS = re.compile(r"password|passwd|passphrase|secret|token|api_?key|private_?key|"
                          r"credential", re.IGNORECASE)


def masked(host: HostData, secret_names: set[str] = frozenset()) -> dict[str, Any]:
    """The host's values with secrets masked: values a schema marks `Secret`, and values of
    keys named like secrets, except names of secrets (`*_secret` keys, secret_names)."""
    out = {}
    for key, value in host.values.items():
        value = _mask_named(key, copy.deepcopy(value), secret_names)
        owner = role_of_key(key)
        if owner is not None and key in role(owner).settings.model_fields:
            info = role(owner).settings.model_fields[key]
            paths = [path for path, marker, _ in walk(field_annotation(info), value)
                     if isinstance(marker, SecretMarker)]
            for path in paths:
                value = _replace(value, path)
        out[key] = value
    return out


def _mask_named(key: Any, value: Any, names: set[str]) -> Any:
    if isinstance(value, dict):
        return {k: _mask_named(k, v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_named(key, v, names) for v in value]
    # A key ending in _secret names a secret in secrets/<env>.yaml: a name, not a value.
    if isinstance(key, str) and SECRET_WORDS.search(key) and not key.endswith("_secret") \
            and isinstance(value, str) and value and value not in names:
        return MASK
    return value


def _replace(value: Any, path: tuple) -> Any:
    if not path:
        return MASK if value is not None else None
    value[path[0]] = _replace(value[path[0]], path[1:])
    return value
