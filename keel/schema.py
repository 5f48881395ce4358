"""Building blocks for role schemas (pydantic): strict types and shared value checks."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

MEMORY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*(B|[kKMGT]B?|[KMGT]iB)?$")
# Size units are binary (1K = 1024), as in PostgreSQL, systemd and journald.
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class Model(BaseModel):
    """Strict: no coercion ("22" is not a port) and no unknown keys."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class RoleData(Model):
    pass


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


Port = Annotated[int, Field(ge=1, le=65535)]
Memory = Annotated[str, AfterValidator(_memory)]
Source = Annotated[str, AfterValidator(_source)]
Name = Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_-]{0,31}$")]


class PortRule(Model):
    port: Port
    proto: Literal["tcp", "udp"] = "tcp"
    sources: list[Source] = []
    comment: str = ""
