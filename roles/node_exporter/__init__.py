"""node_exporter: host metrics (Debian's prometheus-node-exporter) on the private address.

Also reads the textfile collector directory, where other roles drop `*.prom` files (backup
results), and on hosts that run app services the systemd collector (unit state and restarts).
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import apt, files, systemd

from keel.data import settings
from keel.monitoring import Endpoint
from keel.ops import config_file, service
from keel.schema import PortRule
from roles.node_exporter.schema import Schema  # noqa: F401  (read by keel.data)

DEFAULTS = {
    # Port the exporter listens on (on keel_address).
    "node_exporter_port": 9100,
    # Who may scrape it: CIDRs or "group:<name>".
    "node_exporter_sources": ["group:mon"],
    # Directory of the textfile collector (*.prom files written by other roles).
    "node_exporter_textfile_dir": "/var/lib/prometheus/node-exporter",
    # Regexp of systemd units to report (state, restarts); None disables the systemd collector.
    "node_exporter_systemd_units": None,
    # Write app service containers' health checks as textfile metrics (keel_service_healthy).
    "node_exporter_service_health": False,
    # How often that health is read (systemd time span).
    "node_exporter_service_health_interval": "30s",
    # More exporter flags, e.g. ["--no-collector.wifi"].
    "node_exporter_extra_args": [],
}

SERVICE = "prometheus-node-exporter"


def ports(data: Schema) -> list[PortRule]:
    return [PortRule(port=data.node_exporter_port, sources=data.node_exporter_sources,
                     comment="node exporter")]


def metrics(data: Schema) -> list[Endpoint]:
    return [Endpoint(job="node", port=data.node_exporter_port)]


def args(data: Schema) -> list[str]:
    out = [f"--web.listen-address={host.data.keel_address}:{data.node_exporter_port}",
           f"--collector.textfile.directory={data.node_exporter_textfile_dir}"]
    if data.node_exporter_systemd_units:
        out += ["--collector.systemd", "--collector.systemd.enable-restarts-metrics",
                f"--collector.systemd.unit-include={data.node_exporter_systemd_units}"]
    else:
        # Debian enables it by default; without D-Bus (minimal hosts) every scrape logs errors.
        out.append("--no-collector.systemd")
    return out + list(data.node_exporter_extra_args)


@deploy("node_exporter")
def apply() -> None:
    data = settings("node_exporter")
    # Recommends pull nvme-cli, whose autoconnect unit fails in containers.
    packages = ["prometheus-node-exporter"]
    if data.node_exporter_systemd_units:
        packages.append("dbus")  # the systemd collector asks systemd over the system bus
    apt.packages(name="Install node exporter", packages=packages, no_recommends=True)
    files.directory(name="Textfile collector directory", path=data.node_exporter_textfile_dir,
                    user="root", group="root", mode="0755")
    env = config_file("node_exporter", "default", f"/etc/default/{SERVICE}",
                      name="Configure node exporter", args=args(data))
    service(name="Run node exporter", service=SERVICE, running=True, enabled=True)
    systemd.service(name="Restart node exporter", service=SERVICE, restarted=True,
                    _if=env.did_change)
    _service_health(data)


def _service_health(data) -> None:
    """A timer that reads the container runtime's health states (Debian has no cadvisor)."""
    if not data.node_exporter_service_health:
        return
    config_file("node_exporter", "keel-service-health.sh", "/usr/local/sbin/keel-service-health",
                mode="0755", name="Install service health collector")
    units = [config_file("node_exporter", f"keel-service-health.{kind}",
                         f"/etc/systemd/system/keel-service-health.{kind}",
                         name=f"Install keel-service-health.{kind}")
             for kind in ("service", "timer")]
    service(name="Run service health timer", service="keel-service-health.timer",
            running=True, enabled=True,
            daemon_reload=any(unit.will_change for unit in units))
