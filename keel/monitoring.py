"""Metrics endpoints: what roles expose, and the scrape targets Prometheus derives from them.

A role that serves metrics defines `metrics(settings) -> [Endpoint]`, as it defines `ports()`
for the firewall. Prometheus reads every host's endpoints from inventory data (never by
connecting to other hosts), so its scrape config follows role membership.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyinfra import inventory

from keel.data import settings
from keel.roles import role_module


@dataclass(frozen=True)
class Endpoint:
    job: str
    port: int
    path: str = "/metrics"


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
        for role in other.data.get("keel_roles") or []:
            declare = getattr(role_module(role), "metrics", None)
            if declare is None:
                continue
            for endpoint in declare(settings(role, other.data)):
                jobs.setdefault(endpoint.job, []).append({
                    "target": f"{address}:{endpoint.port}", "path": endpoint.path,
                    "labels": labels})
    return {job: sorted(targets, key=lambda t: t["labels"]["host"])
            for job, targets in sorted(jobs.items())}


def service_after_secrets(service: str):
    """A drop-in ordering a packaged exporter after keel-secrets (it reads its password there)."""
    from pyinfra.operations import files

    from keel.ops import text

    return files.put(
        name=f"Order {service} after keel-secrets",
        src=text("# managed by keel\n[Unit]\nAfter=keel-secrets.service\n"
                 "Wants=keel-secrets.service\n"),
        dest=f"/etc/systemd/system/{service}.service.d/keel.conf", create_remote_dir=True)
