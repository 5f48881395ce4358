"""prometheus: Debian's Prometheus 2.42, scraping every exporter the inventory declares.

The scrape config comes from the roles' `metrics()` endpoints on every inventory host (see
keel.deploy.monitoring); alert rules from templates/prometheus/keel.rules.yml.j2, the `alerts()` of
the roles the inventory's hosts have (e.g. edge), plus rules in data.
Config and rules are rendered into a staging directory, checked there with promtool, and only
then copied into /etc/prometheus and reloaded (SIGHUP, not a restart): a bad rule fails the
converge while the running Prometheus keeps its old config.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.operations import apt, files, systemd

from keel.core.render import yaml_document
from keel.core.roles import Endpoint, Role
from keel.core.schema import PortRule
from keel.deploy.monitoring import alertmanagers, rule_groups, scrape_jobs
from keel.deploy.ops import checked_install, config_file, service
from roles.prometheus.schema import ALERTS, RuleGroup, Settings

ETC = "/etc/prometheus"
STAGED = f"{ETC}/keel-staged"


def ports(settings: Settings) -> list[PortRule]:
    return [PortRule(port=settings.prometheus_port, sources=settings.prometheus_sources,
                     comment="prometheus")]


def metrics(settings: Settings) -> list[Endpoint]:
    return [Endpoint(job="prometheus", port=settings.prometheus_port)]


def scrape_config(settings: Settings) -> str:
    jobs = []
    for job, targets in scrape_jobs().items():
        jobs.append({
            "job_name": job,
            "metrics_path": targets[0]["path"],
            "static_configs": [{"targets": [t["target"]], "labels": t["labels"]}
                               for t in targets],
        })
    config = {
        "global": {"scrape_interval": settings.prometheus_scrape_interval,
                   "evaluation_interval": settings.prometheus_evaluation_interval},
        # Relative to this file, so the staged copy checks the staged rules.
        "rule_files": ["rules/*.yml"],
        "scrape_configs": jobs,
    }
    if alertmanagers():
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": alertmanagers()}]}]}
    return yaml_document(config)


def keel_rules(settings: Settings) -> dict:
    """What templates/prometheus/keel.rules.yml.j2 sees."""
    return {"thresholds": settings.prometheus_alert_thresholds.model_dump(),
            "durations": {**ALERTS, **settings.prometheus_alert_for}}


def rules_yaml(groups: list[RuleGroup]) -> str:
    out = [group.model_dump(by_alias=True, exclude_none=True) for group in groups]
    return yaml_document({"groups": out})


def args(settings: Settings) -> list[str]:
    out = [f"--web.listen-address={host.data.keel_address}:{settings.prometheus_port}",
           f"--config.file={ETC}/prometheus.yml",
           f"--storage.tsdb.retention.time={settings.prometheus_retention_time}"]
    if settings.prometheus_retention_size:
        out.append(f"--storage.tsdb.retention.size={settings.prometheus_retention_size}")
    return out


@deploy("prometheus")
def apply(settings: Settings) -> None:
    # Recommends pull the node exporter (a role of its own) and its nvme-cli.
    apt.packages(name="Install Prometheus", packages=["prometheus"], no_recommends=True)
    env = config_file("prometheus", "default", "/etc/default/prometheus",
                      name="Set Prometheus flags (listen, retention)", args=args(settings))
    files.directory(name="Staging directory for checked config", path=f"{STAGED}/rules",
                    mode="0755")
    staged = [
        config_file("prometheus", "prometheus.yml", f"{STAGED}/prometheus.yml",
                    name="Stage scrape config (from the inventory)", body=scrape_config(settings)),
        config_file("prometheus", "keel.rules.yml", f"{STAGED}/rules/keel.yml",
                    name="Stage keel alert rules", **keel_rules(settings)),
        config_file("prometheus", "rules.yml", f"{STAGED}/rules/roles.yml",
                    name="Stage alert rules of the inventory's roles", source="alerts() of roles",
                    body=rules_yaml([RuleGroup.model_validate(g) for g in rule_groups()])),
        config_file("prometheus", "rules.yml", f"{STAGED}/rules/custom.yml",
                    name="Stage alert rules from data", source="prometheus_rules from data",
                    body=rules_yaml(settings.prometheus_rules)),
    ]
    # A failed check stops here: nothing is copied, nothing reloaded.
    checked_install(name="Check config and rules (promtool), install, reload", staged=staged,
                    pairs=[(f"{STAGED}/rules", f"{ETC}/rules"),
                           (f"{STAGED}/prometheus.yml", f"{ETC}/prometheus.yml")],
                    check=f"promtool check config {STAGED}/prometheus.yml",
                    reload=None if env.will_change else "systemctl reload prometheus")
    service(name="Run Prometheus", service="prometheus", running=True, enabled=True)
    # Flags need a restart; config and rules only a reload (above).
    systemd.service(name="Restart Prometheus (flags changed)", service="prometheus",
                    restarted=True, _if=env.did_change)


ROLE = Role(name="prometheus", settings=Settings, apply=apply, groups=("mon",), ports=ports,
            metrics=metrics)
