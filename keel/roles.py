"""Which roles exist, and which inventory groups each one applies to (in site order)."""

from __future__ import annotations

import importlib
from functools import cache
from types import ModuleType

# role -> groups; "all" means every host. deploys/site.py applies them in this order.
ROLES: dict[str, tuple[str, ...]] = {
    "base": ("all",),
    "secrets": ("all",),
    "postgres": ("db",),
    "redis": ("cache",),
    "edge": ("edge",),
    "storage": ("app",),
    "claude_cli": ("app",),
    "container_runtime": ("app",),
    "app": ("app",),
    # Exporters come after the servers they watch.
    "node_exporter": ("all",),
    "postgres_exporter": ("db",),
    "redis_exporter": ("cache",),
    "prometheus": ("mon",),
}


@cache
def role_module(name: str) -> ModuleType:
    return importlib.import_module(f"roles.{name}")


def role_of_key(key: str) -> str | None:
    """The role a data key belongs to, by its longest matching prefix."""
    owners = [name for name in ROLES if key.startswith(name + "_")]
    return max(owners, key=len) if owners else None
