"""Applying roles to the current host according to its inventory groups."""

from __future__ import annotations

from pyinfra import host

from keel.roles import ROLES, role_module


def apply_role(name: str) -> None:
    """Apply one role if the current host is in one of its groups (deploys/<role>.py)."""
    if name not in ROLES:
        raise KeyError(f"unknown role {name!r}")
    if name in host.data.keel_roles:
        role_module(name).apply()


def apply_site() -> None:
    """Every role of the current host, in site order (deploys/site.py).

    pyinfra identifies an operation by the line numbers of its call stack, not the files, so
    two roles with an operation on the same line would share an identity and the fleet's
    operation order could form a cycle. host.loop adds the role's place in ROLES (the same on
    every host) to that identity.
    """
    for name in host.loop(list(ROLES)):
        if name in host.data.keel_roles:
            role_module(name).apply()
