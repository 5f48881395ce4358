"""prometheus: Debian's Prometheus 2.42, scraping every exporter the inventory declares.

The scrape config comes from the roles' `metrics()` endpoints on every inventory host (see
keel.monitoring); alert rules from templates/prometheus/keel.rules.yml.j2 plus rules in data.
Config and rules are rendered into a staging directory, checked there with promtool, and only
then copied into /etc/prometheus and reloaded (SIGHUP, not a restart): a bad rule fails the
converge while the running Prometheus keeps its old config.
"""

from __future__ import annotations

import yaml
from pyinfra import host
from pyinfra.api import FactBase, deploy
from pyinfra.operations import apt, files, server, systemd

from keel.data import settings
from keel.monitoring import Endpoint, scrape_jobs
from keel.ops import config_file, service
from keel.schema import PortRule
from roles.prometheus.schema import ALERTS, Schema, seconds  # noqa: F401  (read by keel.data)

DEFAULTS = {
    # Port of the web UI and API (on keel_address).
    "prometheus_port": 9090,
    # Who may reach the UI and API: CIDRs or "group:<name>".
    "prometheus_sources": ["group:mon"],
    # How long samples are kept (--storage.tsdb.retention.time).
    "prometheus_retention_time": "15d",
    # Size cap of the TSDB (--storage.tsdb.retention.size), e.g. "10GB"; None for no cap.
    "prometheus_retention_size": None,
    # How often targets are scraped.
    "prometheus_scrape_interval": "15s",
    # How often alert rules are evaluated.
    "prometheus_evaluation_interval": "15s",
    # Alert thresholds: disk_used, memory_available, pg_connections, redis_memory (ratios),
    # service_restarts (per 15m), backup_max_age (duration); missing keys keep defaults.
    "prometheus_alert_thresholds": {},
    # How long a condition must hold before its alert fires, per alert name; missing keep
    # their defaults (see README).
    "prometheus_alert_for": {},
    # More rule groups: [{name, interval?, rules: [{alert|record, expr, for?, labels?,
    # annotations?}]}], checked by promtool before any reload.
    "prometheus_rules": [],
}

ETC = "/etc/prometheus"
STAGED = f"{ETC}/keel-staged"


def ports(data: Schema) -> list[PortRule]:
    return [PortRule(port=data.prometheus_port, sources=data.prometheus_sources,
                     comment="prometheus")]


def metrics(data: Schema) -> list[Endpoint]:
    return [Endpoint(job="prometheus", port=data.prometheus_port)]


class StagedDiffers(FactBase):
    """Whether the staged config differs from the live one (e.g. a check failed last run)."""

    def command(self) -> str:
        return (f"cmp -s {STAGED}/prometheus.yml {ETC}/prometheus.yml && "
                f"diff -rq {STAGED}/rules {ETC}/rules >/dev/null 2>&1 && echo same || echo differs")

    def process(self, output) -> bool:
        return "same" not in output


def scrape_config(data: Schema) -> str:
    jobs = []
    for job, targets in scrape_jobs().items():
        jobs.append({
            "job_name": job,
            "metrics_path": targets[0]["path"],
            "static_configs": [{"targets": [t["target"]], "labels": t["labels"]}
                               for t in targets],
        })
    config = {
        "global": {"scrape_interval": data.prometheus_scrape_interval,
                   "evaluation_interval": data.prometheus_evaluation_interval},
        # Relative to this file, so the staged copy checks the staged rules.
        "rule_files": ["rules/*.yml"],
        "scrape_configs": jobs,
    }
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=False)


def rules_yaml(data: Schema) -> str:
    groups = [group.model_dump(by_alias=True, exclude_none=True)
              for group in data.prometheus_rules]
    return yaml.safe_dump({"groups": groups}, sort_keys=False, default_flow_style=False)


def args(data: Schema) -> list[str]:
    out = [f"--web.listen-address={host.data.keel_address}:{data.prometheus_port}",
           f"--config.file={ETC}/prometheus.yml",
           f"--storage.tsdb.retention.time={data.prometheus_retention_time}"]
    if data.prometheus_retention_size:
        out.append(f"--storage.tsdb.retention.size={data.prometheus_retention_size}")
    return out


@deploy("prometheus")
def apply() -> None:
    data = settings("prometheus")
    # Recommends pull the node exporter (a role of its own) and its nvme-cli.
    apt.packages(name="Install Prometheus", packages=["prometheus"], no_recommends=True)
    env = config_file("prometheus", "default", "/etc/default/prometheus",
                      name="Set Prometheus flags (listen, retention)", args=args(data))
    files.directory(name="Staging directory for checked config", path=f"{STAGED}/rules",
                    mode="0755")
    staged = [
        config_file("prometheus", "prometheus.yml", f"{STAGED}/prometheus.yml",
                    name="Stage scrape config (from the inventory)", body=scrape_config(data)),
        config_file("prometheus", "keel.rules.yml", f"{STAGED}/rules/keel.yml",
                    name="Stage keel alert rules",
                    thresholds={**data.prometheus_alert_thresholds.model_dump(),
                                "backup_max_age_seconds":
                                    seconds(data.prometheus_alert_thresholds.backup_max_age)},
                    durations={**ALERTS, **data.prometheus_alert_for}),
        config_file("prometheus", "rules.yml", f"{STAGED}/rules/custom.yml",
                    name="Stage alert rules from data", body=rules_yaml(data)),
    ]
    if any(op.will_change for op in staged) or host.get_fact(StagedDiffers):
        # A failed check stops here: nothing is copied, nothing reloaded.
        commands = [
            f"promtool check config {STAGED}/prometheus.yml",
            f"rm -rf {ETC}/rules.new && cp -r {STAGED}/rules {ETC}/rules.new",
            f"cp {STAGED}/prometheus.yml {ETC}/prometheus.yml.new",
            f"rm -rf {ETC}/rules && mv {ETC}/rules.new {ETC}/rules",
            f"mv {ETC}/prometheus.yml.new {ETC}/prometheus.yml",
        ]
        if not env.will_change:
            commands.append("systemctl reload prometheus")
        server.shell(name="Check config and rules (promtool), install, reload",
                     commands=commands)
    service(name="Run Prometheus", service="prometheus", running=True, enabled=True)
    # Flags need a restart; config and rules only a reload (above).
    systemd.service(name="Restart Prometheus (flags changed)", service="prometheus",
                    restarted=True, _if=env.did_change)
