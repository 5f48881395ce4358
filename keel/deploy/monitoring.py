"""What Prometheus derives from the roles: scrape targets and alert rules.

Roles declare metrics endpoints and alert rules through their `metrics` and `alerts` hooks.
Prometheus reads them from inventory data (never by connecting to other hosts), so its scrape
config and rules follow role membership.
"""

from __future__ import annotations

from pyinfra import inventory

from keel.core.roles import role, roles
from keel.deploy.site import settings


def scrape_jobs() -> dict[str, list[dict]]:
    """job -> [{target, labels}] over every inventory host, sorted for stable configs."""
    jobs: dict[str, list[dict]] = {}
    for other in inventory:
        address = other.data.get("keel_address")
        if not address:
            continue
        groups = list(other.data.get("keel_groups") or [])
        labels = {"host": other.name, "env": other.data.get("keel_env"),
                  "group": groups[0] if groups else "", "groups": ",".join(groups)}
        for name in other.data.get("keel_roles") or []:
            for endpoint in role(name).metrics(settings(name, other)):
                jobs.setdefault(endpoint.job, []).append({
                    "target": f"{address}:{endpoint.port}", "path": endpoint.path,
                    "labels": labels})
    return {job: sorted(targets, key=lambda t: t["labels"]["host"])
            for job, targets in sorted(jobs.items())}


def rule_groups() -> list[dict]:
    """The alert rule groups of every role some inventory host has, in site order."""
    present = {name for other in inventory for name in other.data.get("keel_roles") or []}
    return [group for each in roles() if each.name in present for group in each.alerts()]


def alertmanagers() -> list[str]:
    """address:port of every inventory host with the alertmanager role (Prometheus sends
    its alerts to each), read from inventory data."""
    found = []
    for other in inventory:
        address = other.data.get("keel_address")
        if address and "alertmanager" in (other.data.get("keel_roles") or []):
            found.append(f"{address}:{settings('alertmanager', other).alertmanager_port}")
    return sorted(found)
