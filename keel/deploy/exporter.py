"""What the packaged Prometheus exporters share, as prometheus-community's `_common` role.

Each exporter role keeps its settings as `<role>_port` and `<role>_sources`, and its Debian
package reads `/etc/default/<service>` (the role's `default` template).
"""

from __future__ import annotations

from dataclasses import dataclass

from pyinfra import host
from pyinfra.operations import apt, systemd
from pyinfra.operations.util import any_changed

from keel.core.roles import Endpoint
from keel.core.schema import PortRule
from keel.core.secrets import SecretFile
from keel.deploy.ops import config_file, service, start_after
from keel.deploy.secrets import deliver


@dataclass(frozen=True)
class Exporter:
    role: str  # the role, and the prefix of its keys
    label: str  # how operations name it: "postgres exporter"
    job: str  # Prometheus' job for it
    service: str  # Debian's package and unit

    def port(self, settings) -> int:
        return getattr(settings, f"{self.role}_port")

    def ports(self, settings) -> list[PortRule]:
        sources = getattr(settings, f"{self.role}_sources")
        return [PortRule(port=self.port(settings), sources=sources, comment=self.label)]

    def metrics(self, settings) -> list[Endpoint]:
        return [Endpoint(job=self.job, port=self.port(settings))]

    def install(self, settings, secret: SecretFile) -> None:
        """Package, password (a tmpfs secret file), environment file, and the running unit,
        restarted when any of them changed."""
        apt.packages(name=f"Install {self.label}", packages=[self.service], no_recommends=True)
        delivered = deliver(name=f"Deliver {self.label} password", file=secret)
        env = config_file(
            self.role, "default", f"/etc/default/{self.service}", mode="0644",
            name=f"Configure {self.label}", settings=settings, password_file=secret.path,
            listen=f"{host.data.keel_address}:{self.port(settings)}")
        unit = start_after(f"{self.service}.service", self.role, ["keel-secrets.service"],
                           name=f"Order {self.service} after keel-secrets")
        systemd.daemon_reload(name="Reload systemd units", _if=unit.did_change)
        service(name=f"Run {self.label}", service=self.service, running=True, enabled=True)
        systemd.service(name=f"Restart {self.label}", service=self.service, restarted=True,
                        _if=any_changed(env, delivered, unit))
