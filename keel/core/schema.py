"""Building blocks for role schemas (pydantic): strict types and shared value checks."""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.fields import FieldInfo
from pydantic_core import core_schema

from keel.core import store

MEMORY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*(B|[kKMGT]B?|[KMGT]iB)?$")
# Size units are binary (1K = 1024), as in PostgreSQL, systemd and journald.
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


# Control characters (C0, DEL, C1) and Unicode line/paragraph separators: none may reach a
# rendered line from data, or a value could add directives to a config file or a unit.
_CONTROL = frozenset(("Cc", "Zl", "Zp"))
_MULTILINE = "keel_multiline"


def one_line(value: str) -> str:
    """A string with no control character (newline, NUL, tab, ESC, DEL, ...)."""
    for char in value:
        if unicodedata.category(char) in _CONTROL:
            name = unicodedata.name(char, "") or _C0_NAMES.get(ord(char), "control character")
            raise ValueError(f"expected one line of text: a control character "
                             f"(U+{ord(char):04X} {name.lower()}) is not allowed here")
    return value


_C0_NAMES = {0: "NUL", 9: "tab", 10: "newline", 13: "carriage return", 27: "escape",
             127: "delete"}


class _MultiLine:
    """Marks a str as multi-line text (a PEM block, a prompt): the one-line check skips it."""

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        schema = handler(source)
        schema.setdefault("metadata", {})[_MULTILINE] = True
        return schema


def _no_nul(value: str) -> str:
    if "\0" in value:
        raise ValueError("expected text: a NUL character (U+0000) is not allowed")
    return value


# Multi-line text; NUL is still refused (no file format keel renders carries one).
MultiLine = Annotated[str, _MultiLine(), AfterValidator(_no_nul)]


def _one_line_strings(schema: Any) -> Any:
    """The core schema with every `str` (except MultiLine) checked by one_line: so a role's
    every string field, nested or a dict key, refuses control characters."""
    if isinstance(schema, list):
        return [_one_line_strings(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if schema.get("type") == "str" and not schema.get("metadata", {}).get(_MULTILINE):
        return core_schema.no_info_after_validator_function(one_line, schema)
    return {key: _one_line_strings(value) for key, value in schema.items()}


class Model(BaseModel):
    """Strict: no coercion ("22" is not a port), no unknown keys, and no string with a control
    character unless its field is `MultiLine`."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        return _one_line_strings(handler(source))


class RoleSettings(Model):
    """A role's settings: one field per data key, each with its default and description
    (`Field(default, description=...)`). The role's defaults and README table derive from it."""


def _memory(value: str) -> str:
    if not MEMORY.match(value):
        raise ValueError("expected a size such as '512M', '2G' or '200MB'")
    return value


def size_bytes(value: str) -> int:
    """'512M', '2GB', '1.5GiB', '200kB' -> bytes (binary units)."""
    match = MEMORY.match(value)
    if not match:
        raise ValueError(f"not a size: {value!r}")
    unit = (match.group(2) or "").upper().removesuffix("IB").removesuffix("B")
    return int(float(match.group(1)) * _UNITS[unit or ""])


def _source(value: str) -> str:
    if value.startswith("group:"):
        if not value[6:]:
            raise ValueError("expected 'group:<name>'")
        return value
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"expected a CIDR, an address or 'group:<name>', got {value!r}") from None
    return value


def _address(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"expected an IP address such as '127.0.0.1', got {value!r}") from None
    return value


def _cidr(value: str) -> str:
    try:
        ipaddress.ip_network(value)
    except ValueError:
        raise ValueError(f"expected a network such as '10.89.0.0/16', got {value!r}") from None
    return value


Port = Annotated[int, Field(ge=1, le=65535)]
Memory = Annotated[str, AfterValidator(_memory)]
Source = Annotated[str, AfterValidator(_source)]
Address = Annotated[str, AfterValidator(_address)]
Cidr = Annotated[str, AfterValidator(_cidr)]
Name = Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_-]{0,31}$")]
# The name of a secret in secrets/<env>.yaml, as the store accepts it.
SecretName = Annotated[str, Field(pattern=store.NAME.pattern)]


class PortRule(Model):
    port: Port
    proto: Literal["tcp", "udp"] = "tcp"
    sources: list[Source] = []
    comment: str = ""


# --- markers read by keel's checks across hosts and by `keel data` -----------------------

@dataclass(frozen=True)
class HostRef:
    """Marks a value as the name of an inventory host (in `group`, when given)."""

    group: str | None = None


@dataclass(frozen=True)
class SecretMarker:
    """Marks a value as secret: `keel data` masks it."""


@dataclass(frozen=True)
class DeepMerge:
    """Marks a role's key whose data layers merge rather than replace it (keel.core.data):
    `app_services: Annotated[dict[str, Service], DeepMerge()]`."""


def HostName(group: str | None = None):  # a function used like a type
    """A host of the inventory, e.g. `app_db_host: HostName("db")`; checked across hosts."""
    return Annotated[str, HostRef(group)]


Secret = Annotated[str, SecretMarker()]


def walk(annotation: Any, value: Any, path: tuple = ()) -> Iterator[tuple[tuple, Any, Any]]:
    """(path, marker, value) for every keel marker that annotates a part of value.

    Works on plain data (dicts, lists) against a schema's annotations, so it serves both raw
    layered data (`keel data`) and validated settings.
    """
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *metadata = get_args(annotation)
        for marker in metadata:
            if isinstance(marker, HostRef | SecretMarker):
                yield path, marker, value
        yield from walk(base, value, path)
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if isinstance(value, BaseModel):
            value = dict(value)
        if isinstance(value, dict):
            for name, info in annotation.model_fields.items():
                if name in value:
                    yield from walk(field_annotation(info), value[name], (*path, name))
    elif origin in (UnionType, Union):
        if value is not None:
            for arg in get_args(annotation):
                if arg is not type(None):
                    yield from walk(arg, value, path)
    elif origin in (list, tuple, set, frozenset) and isinstance(value, list | tuple | set):
        (item, *_) = get_args(annotation) or (Any,)
        for index, element in enumerate(value):
            yield from walk(item, element, (*path, index))
    elif origin is dict and isinstance(value, dict):
        _, item = get_args(annotation) or (Any, Any)
        for key, element in value.items():
            yield from walk(item, element, (*path, key))


def field_annotation(info: FieldInfo) -> Any:
    """A field's annotation with its metadata (pydantic splits Annotated[...] apart)."""
    return Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
