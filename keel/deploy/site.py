"""Applying roles to the current host according to its inventory groups."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from pyinfra import host, inventory

from keel.core.roles import SITE, declarations, role
from keel.deploy.ops import host_failed, report_lost


@cache
def _received(inventory_id: int) -> dict:
    # Declarations are read from every host's data, once per run (never by connecting).
    return declarations((other.name, other.data, other.data.get("keel_roles") or [])
                        for other in inventory)


def settings(name: str, of=None):
    """A role's validated settings on the current host, or on inventory host `of`."""
    target = of or host
    received = _received(id(inventory)).get((target.name, name), ())
    return role(name).validate(target.data, received)


def apply_role(name: str, deploy: Callable | None = None) -> None:
    """Apply one role (or one of its other deploys, given its settings) if the current host
    is in one of its groups (deploys/<role>.py)."""
    if name not in SITE:
        raise KeyError(f"unknown role {name!r}")
    if name in host.data.keel_roles and not host_failed():
        _apply(name, deploy or role(name).apply)


def _apply(name: str, deploy: Callable) -> None:
    """A role's deploy on the current host. If the host fails meanwhile (lost, or a fact's
    command failed), the error it causes stays with that host: pyinfra has already taken it
    out of the run, and the other hosts carry on.

    pyinfra identifies an operation by the line numbers of its call stack, not the files, so
    two roles applied from one line (a loop, apply_site) with an operation on the same line
    of their own files would share an identity, and the fleet's operation order could form a
    cycle. The role's place in SITE (the same on every host) is added to that identity.
    """
    host.loop_position.append(SITE.index(name))
    try:
        deploy(settings(name))
    except Exception as exc:
        if not host_failed(exc):
            raise
        report_lost(f"role {name}", exc)
    finally:
        host.loop_position.pop()


def apply_site() -> None:
    """Every role of the current host, in site order (deploys/site.py)."""
    for name in SITE:
        if name in host.data.keel_roles and not host_failed():
            _apply(name, role(name).apply)
