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
    "container_runtime", "app", "agent", "node_exporter", "postgres_exporter", "redis_exporter",
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
    """An item one role adds to another role's list or mapping setting, as base receives
    ports.

    The exporters declare the logins they need (`postgres_roles`, `redis_users`) and the
    servers create them with their own; the agent declares its service to app
    (`app_services`, a mapping: the item's `name` is its key). Declared items come before the
    data's own; an item the data has under the same name wins. An item is a mapping with a
    `name`, or a plain string (its own name). `host` is the receiving host: None for the
    declaring host itself, an inventory host's name, or "group:<name>" for the first host of
    that group (a role that declares to a group checks, in its cross_check, that it has hosts).
    """

    role: str
    key: str
    item: dict[str, Any] | str
    host: str | None = None
    by: str = ""  # the declaring role and host (set by `declarations`)
    origin: str = ""

    @property
    def name(self) -> Any:
        return self.item.get("name") if isinstance(self.item, dict) else self.item


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
    # What the role needs from other roles: (settings, offers) -> [Declaration], where offers
    # maps each role on the same host to what its `offers` hook returns, and "host" to the
    # host's name and keel_address.
    declares: Callable[[Any, dict], list] = _nothing
    # Values other roles on the same host may build on (paths, ids): settings -> {name: value}.
    offers: Callable[[Any], dict] = dict

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
            if isinstance(mine[key], dict):
                items = {d.name: {k: v for k, v in d.item.items() if k != "name"}
                         for d in declared}
                mine[key] = {**items, **mine[key]}
            else:
                mine[key] = [*(d.item for d in declared), *(mine[key] or [])]
        return self.settings.model_validate(mine)


def _names(value: Any) -> set:
    if isinstance(value, dict):
        return set(value)
    return {i.get("name") if isinstance(i, dict) else i for i in value or []}


def prepended(values: Mapping[str, Any], received: Iterable[Declaration]
              ) -> dict[str, list[Declaration]]:
    """key -> the declarations that go before the data's own items (an item the data has
    under the same name wins)."""
    out: dict[str, list[Declaration]] = {}
    for declaration in received:
        taken = _names(values.get(declaration.key)) | {d.name for d in out.get(declaration.key, [])}
        if declaration.name not in taken:  # several hosts may declare the same login
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


def offers(values: Mapping[str, Any], host_roles: Iterable[str]) -> dict[str, dict]:
    """role -> what it offers, for the roles of one host."""
    return {name: role(name).offers(role(name).validate(values)) for name in host_roles
            if role(name).offers is not dict}


def declarations(fleet: Iterable[tuple[str, Mapping[str, Any], list[str]]]
                 ) -> dict[tuple[str, str], list[Declaration]]:
    """(receiving host, role) -> declarations made to it, over a fleet of
    (host name, merged data, roles); read from data only, so --limit runs see the same."""
    fleet = list(fleet)
    first = {}  # group -> its first host, in inventory order
    for name, values, _ in fleet:
        for group in values.get("keel_groups") or []:
            first.setdefault(group, name)
    received: dict[tuple[str, str], list[Declaration]] = {}
    for name, values, host_roles in fleet:
        offered = None
        for declarer in host_roles:
            if role(declarer).declares is _nothing:
                continue
            if offered is None:  # with the host's own inventory facts
                offered = {"host": {"name": name, "address": values.get("keel_address")},
                           **offers(values, host_roles)}
            for item in role(declarer).declares(role(declarer).validate(values), offered):
                target = item.host or name
                if target.startswith("group:"):
                    target = first.get(target[6:], target)
                received.setdefault((target, item.role), []).append(
                    replace(item, by=declarer, origin=name))
    return received
