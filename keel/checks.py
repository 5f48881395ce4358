"""Checks across hosts, run after each host's data validated against its roles' schemas.

keel's own checks cover what every role shares: the ports roles declare (`ports(settings)`),
firewall sources that name groups, values marked `HostName(group)` in a schema, and the secrets
roles need (`secrets(settings)`, checked by keel.secrets). Roles add their own with
`cross_check(hosts)` in schema.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from keel.data import (
    HostData,
    Problem,
    _loc,
    _suggest,
    relative,
    settings,
    unknown_group,
    validate_host,
)
from keel.roles import ROLES, role_module
from keel.schema import HostRef, field_annotation, walk
from keel.secrets import check_hosts, declared


def check(hosts: list[HostData], decrypt: bool = True) -> list[Problem]:
    """Every problem in an environment's data: each host's own first; once those are fixed,
    the checks across hosts, then the secrets roles need (keel.secrets: present, and with
    decrypt, readable by the operator)."""
    problems = [problem for host in hosts for problem in validate_host(host)]
    if problems:
        return problems
    for keel_check in (port_claims, group_sources, host_refs):
        problems.extend(keel_check(hosts))
    for name in ROLES:
        cross_check = getattr(role_module(name), "cross_check", None)
        if cross_check is not None:
            problems.extend(cross_check(hosts))
    if problems:
        return list(dict.fromkeys(problems))  # secrets are looked up for valid data only
    return check_hosts(hosts, decrypt)


def _contains(value: Any, needle: Any) -> bool:
    if isinstance(value, dict):
        return any(_contains(v, needle) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_contains(v, needle) for v in value)
    return type(value) is type(needle) and value == needle


def key_holding(host: HostData, role: str, needle: Any) -> str:
    """The role's key whose value holds needle, preferring keys set by data over defaults."""
    keys = sorted(role_module(role).DEFAULTS,
                  key=lambda key: host.sources[key].endswith("(default)"))
    return next((key for key in keys if _contains(host.values[key], needle)), role)


def _problem(host: HostData, key: str, message: str) -> Problem:
    source = host.sources.get(key) or relative(role_module(key).__file__)
    return Problem(host.name, key, source, message)


def _port_rules(host: HostData) -> list[tuple[str, Any]]:
    """(role, PortRule) for every port the host's roles declare."""
    rules = []
    for role in host.roles:
        ports: Callable | None = getattr(role_module(role), "ports", None)
        if ports is not None:
            rules.extend((role, rule) for rule in ports(settings(role, host.values)))
    return rules


def port_claims(hosts: list[HostData]) -> list[Problem]:
    """No two rules on a host claim the same port and protocol."""
    def by_default(host: HostData, key: str) -> bool:
        return host.sources.get(key, "(default)").endswith("(default)")

    problems = []
    for host in hosts:
        claims: dict[tuple[int, str], tuple[str, str, str]] = {}
        for role, rule in _port_rules(host):
            key = key_holding(host, role, rule.port)
            claim = (role, key, rule.comment or key)
            first = claims.setdefault((rule.port, rule.proto), claim)
            if first is claim:
                continue
            # Reported where data set it: a port only a role's defaults declare is no typo.
            here, other = (first, claim) if by_default(host, key) \
                and not by_default(host, first[1]) else (claim, first)
            problems.append(_problem(host, here[1], f"port {rule.port}/{rule.proto} is also "
                                                    f"claimed by {other[0]} ({other[2]})"))
    return problems


def group_sources(hosts: list[HostData]) -> list[Problem]:
    """Firewall sources `group:<name>` that data sets name a group that has hosts (a role's
    default such as group:mon may name a group this inventory leaves empty)."""
    groups = {group for host in hosts for group in host.groups}
    problems = []
    for host in hosts:
        for role, rule in _port_rules(host):
            for source in rule.sources:
                key = key_holding(host, role, source)
                message = unknown_group(source, groups)
                if message and not host.sources.get(key, "(default)").endswith("(default)"):
                    problems.append(_problem(host, key, message))
    return problems


def host_refs(hosts: list[HostData]) -> list[Problem]:
    """Values a schema marks `HostName(group)` name an inventory host in that group."""
    by_name = {host.name: host for host in hosts}
    problems = []
    for host in hosts:
        for role in host.roles:
            fields = role_module(role).Schema.model_fields
            for key in role_module(role).DEFAULTS:
                for path, marker, value in walk(field_annotation(fields[key]),
                                                host.values[key], (key,)):
                    if not isinstance(marker, HostRef):
                        continue
                    target = by_name.get(value)
                    if target is None:
                        message = (f"names host {value!r}, which is not in the inventory"
                                   + _suggest(value, sorted(by_name)))
                    elif marker.group and marker.group not in target.groups:
                        message = (f"names host {value!r}, which is not in group "
                                   f"'{marker.group}' (its groups: {', '.join(target.groups)})")
                    else:
                        continue
                    problems.append(Problem(host.name, _loc(path), host.sources[key], message))
    return problems


def secret_names(host: HostData) -> set[str]:
    """The names of the secrets the host's roles need (its data must be valid)."""
    return {name for file in declared(lambda role: settings(role, host.values), host.roles)
            for name in file.names}
