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
    """Every role of the current host, in site order (deploys/site.py)."""
    for name in host.data.keel_roles:
        role_module(name).apply()
