"""Checks across hosts, run after each host's data validated against its roles' schemas.

keel's own checks cover what every role shares: the ports roles declare (`ports` hook),
firewall sources that name groups, values marked `HostName(group)` in a schema, declarations
to roles a host lacks, and the secrets roles need (`secrets` hook). Roles add their own with
their `cross_check` hook.
"""

from __future__ import annotations

import re
from typing import Any

from keel.core import store
from keel.core.data import (
    HostData,
    Problem,
    _loc,
    _suggest,
    unknown_group,
    validate_host,
)
from keel.core.roles import Declaration, declarations, prepended, role, roles
from keel.core.schema import HostRef, field_annotation, walk
from keel.errors import KeelError


class Fleet:
    """An environment's hosts with each role's settings, declarations included, computed once."""

    def __init__(self, hosts: list[HostData]):
        self.hosts = hosts
        self.received = declarations((h.name, h.values, h.roles) for h in hosts)
        self._settings: dict[tuple[str, str], Any] = {}

    def data_key(self, host: HostData, name: str, key: str) -> tuple[str, str | None]:
        """A role's key as the data has it: "redis_users[2].x" counts the declared items
        that go before the data's own, so it may be "redis_users[0].x", or, for a declared
        item, the role that declared it (second value)."""
        match = re.match(r"^(\w+)\[(\d+)\](.*)$", key)
        received = self.received.get((host.name, name), ())
        declared = prepended(host.values, received).get(match.group(1), []) if match else []
        if not declared:
            return key, None
        index = int(match.group(2))
        if index < len(declared):
            return match.group(1), declared[index].by
        return f"{match.group(1)}[{index - len(declared)}]{match.group(3)}", None

    def settings(self, host: HostData, name: str):
        if (host.name, name) not in self._settings:
            self._settings[host.name, name] = role(name).validate(
                host.values, self.received.get((host.name, name), ()))
        return self._settings[host.name, name]


def check(hosts: list[HostData], decrypt: bool = True) -> list[Problem]:
    """Every problem in an environment's data: each host's own first; once those are fixed,
    the checks across hosts, then the secrets roles need (present, and with decrypt, readable
    by the operator)."""
    problems = [problem for host in hosts for problem in validate_host(host)]
    if problems:
        return problems
    fleet = Fleet(hosts)
    for keel_check in (port_claims, group_sources, host_refs, declared_to):
        problems.extend(keel_check(fleet))
    for each in roles():
        problems.extend(each.cross_check(hosts))
    if problems:
        return list(dict.fromkeys(problems))  # secrets are looked up for valid data only
    return secrets_present(fleet, decrypt)


def _contains(value: Any, needle: Any) -> bool:
    if isinstance(value, dict):
        return any(_contains(v, needle) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_contains(v, needle) for v in value)
    return type(value) is type(needle) and value == needle


def key_holding(host: HostData, name: str, needle: Any) -> str:
    """The role's key whose value holds needle, preferring keys set by data over defaults."""
    keys = sorted(role(name).keys,
                  key=lambda key: host.sources[key].endswith("(default)"))
    return next((key for key in keys if _contains(host.values[key], needle)), name)


def _problem(host: HostData, key: str, message: str) -> Problem:
    source = host.sources.get(key) or role(key).source
    return Problem(host.name, key, source, message)


def _port_rules(fleet: Fleet, host: HostData) -> list[tuple[str, Any]]:
    """(role, PortRule) for every port the host's roles declare."""
    return [(name, rule) for name in host.roles
            for rule in role(name).ports(fleet.settings(host, name))]


def port_claims(fleet: Fleet) -> list[Problem]:
    """No two rules on a host claim the same port and protocol."""
    def by_default(host: HostData, key: str) -> bool:
        return host.sources.get(key, "(default)").endswith("(default)")

    problems = []
    for host in fleet.hosts:
        claims: dict[tuple[int, str], tuple[str, str, str]] = {}
        for name, rule in _port_rules(fleet, host):
            key = key_holding(host, name, rule.port)
            claim = (name, key, rule.comment or key)
            first = claims.setdefault((rule.port, rule.proto), claim)
            if first is claim:
                continue
            # Reported where data set it: a port only a role's defaults declare is no typo.
            here, other = (first, claim) if by_default(host, key) \
                and not by_default(host, first[1]) else (claim, first)
            problems.append(_problem(host, here[1], f"port {rule.port}/{rule.proto} is also "
                                                    f"claimed by {other[0]} ({other[2]})"))
    return problems


def group_sources(fleet: Fleet) -> list[Problem]:
    """Firewall sources `group:<name>` that data sets name a group that has hosts (a role's
    default such as group:mon may name a group this inventory leaves empty)."""
    groups = {group for host in fleet.hosts for group in host.groups}
    problems = []
    for host in fleet.hosts:
        for name, rule in _port_rules(fleet, host):
            for source in rule.sources:
                key = key_holding(host, name, source)
                message = unknown_group(source, groups)
                if message and not host.sources.get(key, "(default)").endswith("(default)"):
                    problems.append(_problem(host, key, message))
    return problems


def host_refs(fleet: Fleet) -> list[Problem]:
    """Values a schema marks `HostName(group)` name an inventory host in that group."""
    by_name = {host.name: host for host in fleet.hosts}
    problems = []
    for host in fleet.hosts:
        for name in host.roles:
            fields = role(name).settings.model_fields
            for key in role(name).keys:
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


def declared_to(fleet: Fleet) -> list[Problem]:
    """A declaration reaches a host that has the role it is made to."""
    by_name = {host.name: host for host in fleet.hosts}
    problems = []
    for (target, name), items in fleet.received.items():
        if target.startswith("group:"):
            continue  # a group with no hosts: the declaring role's own check names it
        receiver = by_name.get(target)
        if receiver is None or name not in receiver.roles:
            problems.extend(_undelivered(fleet, item, target, name) for item in items)
    return problems


def _undelivered(fleet: Fleet, item: Declaration, target: str, name: str) -> Problem:
    declarer = next(h for h in fleet.hosts if h.name == item.origin)
    return Problem(declarer.name, item.key, role(item.by).source,
                   f"role {item.by} declares {item.key} entry {item.name!r} to host {target}, "
                   f"which does not have role {name}")


def secret_files(fleet: Fleet, host: HostData) -> list[tuple[str, Any]]:
    """(role, SecretFile) for every secret file the host's roles need."""
    return [(name, file) for name in host.roles
            for file in role(name).secrets(fleet.settings(host, name))]


def secrets_present(fleet: Fleet, decrypt: bool) -> list[Problem]:
    """Every secret the hosts' roles need exists in secrets/<env>.yaml and (if decrypt) opens
    with the operator's identity: checked before any host is touched."""
    problems, readable = [], {}
    for host_data in fleet.hosts:
        env = host_data.env
        source = f"secrets/{env}.yaml"
        missing: dict[str, Problem] = {}
        for name, file in secret_files(fleet, host_data):
            for secret in file.names:
                # Which data key chose it: the file says, or a top-level key of the role has
                # it as its value.
                key = file.named_by.get(secret) or next(
                    (k for k in role(name).keys if host_data.values.get(k) == secret), secret)
                key, declarer = fleet.data_key(host_data, name, key)
                if secret in store.names(env):
                    # Secrets the data chose are opened before those roles declared.
                    readable.setdefault((env, secret), (declarer is not None, host_data.name))
                    continue
                problem = Problem(
                    host_data.name, key,
                    role(declarer).source + " (declared)" if declarer else
                    host_data.sources.get(re.split(r"[\[.]", key)[0], source),
                    f"secret {secret} (needed by role {name}) is not set in {source}; "
                    f"set it with `keel secrets set {env} {secret}`")
                # One line per secret, at the key that chose it: set by data over a default,
                # a role's own key over an entry of a list (a login another role declared
                # names its secret in its own key too).
                if secret not in missing or _rank(problem) < _rank(missing[secret]):
                    missing[secret] = problem
        problems.extend(missing.values())
    if not decrypt:
        return problems
    for (env, secret), (_, host_name) in sorted(readable.items(), key=lambda i: i[1][0]):
        try:
            store.value(env, secret)
        except KeelError as exc:
            problems.append(Problem(host_name, secret, f"secrets/{env}.yaml", str(exc)))
            if "identity" in str(exc):
                return problems  # one identity problem says it all
    return problems


def _rank(problem: Problem) -> tuple[bool, bool]:
    return problem.source.endswith(("(default)", "(declared)")), any(c in problem.key for c in "[.")


def secret_names(fleet: Fleet, host: HostData) -> set[str]:
    """The names of the secrets the host's roles need (the data must be valid)."""
    return {name for _, file in secret_files(fleet, host) for name in file.names}
