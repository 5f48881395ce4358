"""Inbound firewall rules for the current host, from the ports its roles declare.

Each role declares its ports with its `ports` hook; base renders the
union into nftables. Sources are CIDRs or "group:<name>", resolved from inventory data
(never by connecting to other hosts), so --limit runs produce the same rules.
"""

from __future__ import annotations

import ipaddress

from pyinfra import host, inventory

from keel.core.roles import role
from keel.deploy.site import settings
from roles.container_runtime import container_subnets


def source_addresses(source: str) -> list[str]:
    """A source's addresses: a CIDR as is, "group:<name>" as its hosts' keel_address. When the
    current host is in that group and runs containers, its containers' networks too: a
    container reaching a service on its own host (all-in-one) comes from its bridge address."""
    if not source.startswith("group:"):
        return [source]
    group = source[6:]
    found = sorted(other.data.keel_address for other in inventory.get_group(group, [])
                   if other.data.get("keel_address"))
    if group in host.groups and "container_runtime" in host.data.keel_roles:
        found += container_subnets(settings("container_runtime"))
    return found


def firewall_rules() -> list[dict]:
    """[{port, proto, v4: [..] | None, v6: [..] | None, comment}]; None source list = any."""
    declared = [port for name in host.data.keel_roles
                for port in role(name).ports(settings(name))]
    rules = []
    for port in declared:
        rule = {"port": port.port, "proto": port.proto, "comment": port.comment,
                "v4": None, "v6": None}
        if port.sources:
            nets = [ipaddress.ip_network(a, strict=False)
                    for s in port.sources for a in source_addresses(s)]
            rule["v4"] = sorted(str(n) for n in nets if n.version == 4)
            rule["v6"] = sorted(str(n) for n in nets if n.version == 6)
        rules.append(rule)
    return sorted(rules, key=lambda r: (r["port"], r["proto"], r["comment"]))
