"""alertmanager: Debian's Alertmanager 0.25, where Prometheus sends its alerts.

Receivers, routes by severity, grouping and inhibition come from data; the SMTP password is a
secret file (`smtp_auth_password_file`), so alertmanager.yml holds no secret. The config is
rendered into a staging directory, checked there with `amtool check-config`, and only then
copied into place and reloaded (SIGHUP): a bad config fails the converge while the running
Alertmanager keeps its old one. Silences: `amtool silence ...` on the host
(/etc/prometheus/amtool.yml).
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import apt, files, systemd
from pyinfra.operations.util import any_changed

from keel.core.render import yaml_document
from keel.core.roles import Endpoint, Role
from keel.core.schema import PortRule
from keel.core.secrets import SecretFile
from keel.deploy.ops import checked_install, config_file, service, start_after
from keel.deploy.secrets import deliver
from roles.alertmanager.schema import Settings

ETC = "/etc/prometheus"
STAGED = f"{ETC}/keel-staged-alertmanager"
UNIT = "prometheus-alertmanager"


def ports(settings: Settings) -> list[PortRule]:
    return [PortRule(port=settings.alertmanager_port, sources=settings.alertmanager_sources,
                     comment="alertmanager")]


def metrics(settings: Settings) -> list[Endpoint]:
    return [Endpoint(job="alertmanager", port=settings.alertmanager_port)]


def secrets(settings: Settings) -> list[SecretFile]:
    smtp = settings.alertmanager_smtp
    if not smtp or not smtp.password_secret:
        return []
    return [SecretFile(dest="alertmanager/smtp_password", secret=smtp.password_secret,
                       owner="prometheus", group="prometheus", mode="0400",
                       named_by={smtp.password_secret: "alertmanager_smtp"})]


def config(settings: Settings) -> str:
    """alertmanager.yml: no secret in it (the SMTP password is a file under /run/keel)."""
    glob: dict = {"resolve_timeout": settings.alertmanager_resolve_timeout}
    smtp = settings.alertmanager_smtp
    if smtp:
        glob.update({"smtp_smarthost": smtp.smarthost, "smtp_from": smtp.sender,
                     "smtp_require_tls": smtp.require_tls})
        if smtp.username:
            glob.update({"smtp_auth_username": smtp.username,
                         "smtp_auth_password_file": secrets(settings)[0].path})
    receivers = []
    for each in settings.alertmanager_receivers:
        receiver: dict = {"name": each.name}
        if each.webhook_urls:
            receiver["webhook_configs"] = [{"url": url, "send_resolved": each.send_resolved}
                                           for url in each.webhook_urls]
        if each.email_to:
            receiver["email_configs"] = [{"to": to, "send_resolved": each.send_resolved}
                                         for to in each.email_to]
        receivers.append(receiver)
    routes = []
    for each in settings.alertmanager_routes:
        route: dict = {"receiver": each.receiver, "matchers": [f'severity="{each.severity}"']}
        if each.group_by is not None:
            route["group_by"] = each.group_by
        if each.repeat_interval:
            route["repeat_interval"] = each.repeat_interval
        if each.continue_:
            route["continue"] = True
        routes.append(route)
    body = {
        "global": glob,
        "route": {"receiver": settings.alertmanager_receiver,
                  "group_by": settings.alertmanager_group_by,
                  "group_wait": settings.alertmanager_group_wait,
                  "group_interval": settings.alertmanager_group_interval,
                  "repeat_interval": settings.alertmanager_repeat_interval,
                  "routes": routes},
        "inhibit_rules": [{"source_matchers": [f'severity="{each.source_severity}"'],
                           "target_matchers": [f'severity="{each.target_severity}"'],
                           "equal": each.equal} for each in settings.alertmanager_inhibit_rules],
        "receivers": receivers,
    }
    return yaml_document(body)


def url(settings: Settings) -> str:
    return f"http://{host.data.keel_address}:{settings.alertmanager_port}"


def args(settings: Settings) -> list[str]:
    # One instance per environment: no gossip cluster (its port would need a private address).
    return [f"--web.listen-address={host.data.keel_address}:{settings.alertmanager_port}",
            f"--web.external-url={url(settings)}",
            f"--config.file={ETC}/alertmanager.yml",
            f"--data.retention={settings.alertmanager_retention}",
            "--cluster.listen-address="]


@deploy("alertmanager")
def apply(settings: Settings) -> None:
    # Flags and drop-in first: the package starts Alertmanager on install, and Debian's
    # defaults (a gossip cluster on 0.0.0.0) fail in a host without a private address.
    env = config_file("alertmanager", "default", f"/etc/default/{UNIT}",
                      name="Set Alertmanager flags (listen, retention)", args=args(settings))
    unit = start_after(f"{UNIT}.service", "alertmanager", ["keel-secrets.service"],
                       name="Order Alertmanager after keel-secrets")
    systemd.daemon_reload(name="Reload systemd units", _if=unit.did_change)
    apt.packages(name="Install Alertmanager", packages=["prometheus-alertmanager"],
                 no_recommends=True)
    delivered = [deliver(name="Deliver SMTP password", file=each) for each in secrets(settings)]
    config_file("alertmanager", "amtool.yml", "/etc/prometheus/amtool.yml",
                name="Point amtool at Alertmanager", url=url(settings))
    files.directory(name="Staging directory for checked config", path=STAGED, mode="0755")
    staged = config_file("alertmanager", "alertmanager.yml", f"{STAGED}/alertmanager.yml",
                         name="Stage Alertmanager config (receivers, routes)",
                         body=config(settings))
    # A failed check stops here: nothing is copied, nothing reloaded.
    checked_install(name="Check config (amtool), install, reload", staged=[staged],
                    pairs=[(f"{STAGED}/alertmanager.yml", f"{ETC}/alertmanager.yml")],
                    check=f"amtool check-config {STAGED}/alertmanager.yml",
                    reload=None if env.will_change else f"systemctl reload {UNIT}")
    service(name="Run Alertmanager", service=UNIT, running=True, enabled=True)
    # Flags and the unit need a restart; a new SMTP password only a reload. Never both: a
    # SIGHUP before the restarted process handles it would end Alertmanager.
    restart = any_changed(env, unit)
    systemd.service(name="Restart Alertmanager (flags changed)", service=UNIT, restarted=True,
                    _if=restart)
    if delivered:
        rotated = any_changed(*delivered)
        systemd.service(name="Reload Alertmanager (SMTP password)", service=UNIT, reloaded=True,
                        _if=lambda: rotated() and not restart())


ROLE = Role(name="alertmanager", settings=Settings, apply=apply, groups=("mon",), ports=ports,
            metrics=metrics, secrets=secrets)
