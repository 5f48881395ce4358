"""node_exporter: host metrics (Debian's prometheus-node-exporter) on the private address.

Also reads the textfile collector directory, where other roles drop `*.prom` files (backup
results), and on hosts that run app services the systemd collector (unit state and restarts).
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import apt, files, systemd

from keel.core.roles import Role
from keel.deploy.exporter import Exporter
from keel.deploy.ops import config_file, service, unit_files
from roles.node_exporter.schema import Settings

SERVICE = "prometheus-node-exporter"
EXPORTER = Exporter(role="node_exporter", label="node exporter", job="node", service=SERVICE)


def args(settings: Settings) -> list[str]:
    out = [f"--web.listen-address={host.data.keel_address}:{settings.node_exporter_port}",
           f"--collector.textfile.directory={settings.node_exporter_textfile_dir}"]
    if settings.node_exporter_systemd_units:
        out += ["--collector.systemd", "--collector.systemd.enable-restarts-metrics",
                f"--collector.systemd.unit-include={settings.node_exporter_systemd_units}"]
    else:
        # Debian enables it by default; without D-Bus (minimal hosts) every scrape logs errors.
        out.append("--no-collector.systemd")
    return out + list(settings.node_exporter_extra_args)


@deploy("node_exporter")
def apply(settings: Settings) -> None:
    # Recommends pull nvme-cli, whose autoconnect unit fails in containers.
    packages = ["prometheus-node-exporter"]
    if settings.node_exporter_systemd_units:
        packages.append("dbus")  # the systemd collector asks systemd over the system bus
    apt.packages(name="Install node exporter", packages=packages, no_recommends=True)
    files.directory(name="Textfile collector directory", path=settings.node_exporter_textfile_dir,
                    user="root", group="root", mode="0755")
    env = config_file("node_exporter", "default", f"/etc/default/{SERVICE}",
                      name="Configure node exporter", args=args(settings))
    service(name="Run node exporter", service=SERVICE, running=True, enabled=True)
    systemd.service(name="Restart node exporter", service=SERVICE, restarted=True,
                    _if=env.did_change)
    _service_health(settings)


def _service_health(settings) -> None:
    """A timer that reads the container runtime's health states (Debian has no cadvisor)."""
    if not settings.node_exporter_service_health:
        return
    config_file("node_exporter", "keel-service-health.sh", "/usr/local/sbin/keel-service-health",
                mode="0755", name="Install service health collector", settings=settings)
    unit_files("node_exporter", ["keel-service-health.service", "keel-service-health.timer"],
               label="service health", settings=settings)
    service(name="Run service health timer", service="keel-service-health.timer",
            running=True, enabled=True)


ROLE = Role(name="node_exporter", settings=Settings, apply=apply, groups=("all",),
            ports=EXPORTER.ports, metrics=EXPORTER.metrics)
