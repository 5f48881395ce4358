"""The role contract, and the registry that walks it for every consumer.

A role is one folder, `roles/<name>/`, whose `__init__.py` ends with one `ROLE = Role(...)`.
That object names the role's settings (a `RoleSettings` class whose fields carry each key's
type, default and description), its `apply`, the inventory groups it serves and the hooks it
implements. Nothing else in keel looks a role up: firewall rules, checks, secrets, scrape
targets, alert rules and declarations to other roles all come through `role(name)`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from functools import cache, cached_property
from typing import Any

# Site order: deploys/site.py applies a host's roles in this order. Exporters come after the
# servers they watch; Alertmanager before the Prometheus that sends to it.
SITE: list[str] = [
    "base", "secrets", "postgres", "redis", "edge", "storage", "claude_cli",
    "container_runtime", "app", "node_exporter", "postgres_exporter", "redis_exporter",
    "alertmanager", "prometheus",
]


def _nothing(*_: Any) -> list:
    return []


@dataclass(frozen=True)
class Endpoint:
    """A metrics endpoint a role serves on the host's keel_address (Prometheus scrapes it)."""

    job: str
    port: int
    path: str = "/metrics"


@dataclass(frozen=True)
class Declaration:
    """An item one role adds to another role's list setting, as base receives ports.

    The exporters declare the logins they need (`postgres_roles`, `redis_users`) and the
    servers create them with their own. Declared items come before the data's own; an item
    the data lists under the same `name` wins. `host` is the receiving host (None: the
    declaring host itself).
    """

    role: str
    key: str
    item: dict[str, Any]
    host: str | None = None
    by: str = ""  # the declaring role (set by `declarations`)


@dataclass(frozen=True)
class Role:
    """What a role is, declared once. Hooks take the role's validated settings."""

    name: str
    settings: type  # a keel.core.schema.RoleSettings subclass
    apply: Callable[[Any], None]
    groups: tuple[str, ...]
    # Inbound ports the firewall opens: settings -> [PortRule].
    ports: Callable[[Any], list] = _nothing
    # Files under /run/keel/secrets: settings -> [SecretFile].
    secrets: Callable[[Any], list] = _nothing
    # Metrics endpoints Prometheus scrapes: settings -> [Endpoint].
    metrics: Callable[[Any], list] = _nothing
    # Alert rule groups (prometheus_rules' shape), loaded where some host has the role.
    alerts: Callable[[], list] = _nothing
    # Checks across hosts: [HostData] -> [Problem].
    cross_check: Callable[[list], list] = _nothing
    # What the role needs from other roles: settings -> [Declaration].
    declares: Callable[[Any], list] = _nothing

    @cached_property
    def defaults(self) -> dict[str, Any]:
        """Each key's default, from the settings' fields (a fresh copy of mutable ones)."""
        return {name: info.get_default(call_default_factory=True)
                for name, info in self.settings.model_fields.items()}

    @property
    def keys(self) -> list[str]:
        return list(self.settings.model_fields)

    @property
    def source(self) -> str:
        """Where the role's defaults are declared, as `keel data` names it."""
        return f"roles/{self.name}/schema.py"

    def validate(self, values: Mapping[str, Any], received: Iterable[Declaration] = ()):
        """The role's settings from a host's merged data plus what other roles declared to it."""
        mine = {key: values.get(key) for key in self.keys}
        for key, declared in prepended(mine, received).items():
            mine[key] = [*(d.item for d in declared), *(mine[key] or [])]
        return self.settings.model_validate(mine)


def prepended(values: Mapping[str, Any], received: Iterable[Declaration]
              ) -> dict[str, list[Declaration]]:
    """key -> the declarations that go before the data's own items (an item the data lists
    under the same name wins)."""
    out: dict[str, list[Declaration]] = {}
    for declaration in received:
        own = values.get(declaration.key) or []
        if declaration.item.get("name") not in {i.get("name") for i in own if isinstance(i, dict)}:
            out.setdefault(declaration.key, []).append(declaration)
    return out


@cache
def role(name: str) -> Role:
    found = importlib.import_module(f"roles.{name}").ROLE
    if found.name != name:
        raise ValueError(f"roles/{name}/__init__.py declares ROLE named {found.name!r}")
    return found


def roles() -> list[Role]:
    """Every role, in site order."""
    return [role(name) for name in SITE]


def roles_of(groups: Iterable[str]) -> list[str]:
    """The roles a host in these groups gets, in site order."""
    groups = set(groups)
    return [r.name for r in roles() if "all" in r.groups or groups & set(r.groups)]


def all_groups() -> set[str]:
    """Every group some role serves (not "all")."""
    return {g for r in roles() for g in r.groups} - {"all"}


def role_of_key(key: str) -> str | None:
    """The role a data key belongs to, by its longest matching prefix."""
    owners = [name for name in SITE if key.startswith(name + "_")]
    return max(owners, key=len) if owners else None


def declarations(fleet: Iterable[tuple[str, Mapping[str, Any], list[str]]]
                 ) -> dict[tuple[str, str], list[Declaration]]:
    """(receiving host, role) -> declarations made to it, over a fleet of
    (host name, merged data, roles); read from data only, so --limit runs see the same."""
    received: dict[tuple[str, str], list[Declaration]] = {}
    for name, values, host_roles in fleet:
        for declarer in host_roles:
            if role(declarer).declares is _nothing:
                continue
            for item in role(declarer).declares(role(declarer).validate(values)):
                received.setdefault((item.host or name, item.role), []).append(
                    replace(item, by=declarer))
    return received
