"""prometheus's settings: each key's type, default and description."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from keel.core.schema import Model, Port, RoleSettings, Source

# Prometheus durations: 30s, 5m, 1h30m, 15d ...
Duration = Annotated[str, Field(pattern=r"^([0-9]+(ms|s|m|h|d|w|y))+$")]
Ratio = Annotated[float, Field(gt=0, lt=1)]
LabelName = Annotated[str, Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")]

# keel's alerts and how long each condition must hold (prometheus_alert_for overrides).
ALERTS = {
    "TargetDown": "2m",
    "DiskAlmostFull": "10m",
    "MemoryPressure": "10m",
    "PostgresDown": "1m",
    "PostgresConnectionsNearMax": "5m",
    "RedisDown": "1m",
    "RedisMemoryNearMax": "5m",
    "ServiceDown": "2m",
    "ServiceRestarting": "0m",
    "ServiceUnhealthy": "2m",
}


class Thresholds(Model):
    disk_used: Ratio = 0.85
    memory_available: Ratio = 0.10
    pg_connections: Ratio = 0.8
    redis_memory: Ratio = 0.9
    service_restarts: Annotated[int, Field(ge=1)] = 3


class Rule(Model):
    alert: LabelName | None = None
    record: Annotated[str, Field(pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")] | None = None
    expr: Annotated[str, Field(min_length=1)]
    for_: Duration | None = Field(None, alias="for")
    labels: dict[LabelName, str] = {}
    annotations: dict[LabelName, str] = {}

    @model_validator(mode="after")
    def _one_kind(self):
        if (self.alert is None) == (self.record is None):
            raise ValueError("a rule has exactly one of 'alert' or 'record'")
        return self


class RuleGroup(Model):
    name: Annotated[str, Field(min_length=1)]
    interval: Duration | None = None
    rules: Annotated[list[Rule], Field(min_length=1)]


class Settings(RoleSettings):
    prometheus_port: Port = Field(9090, description="Port of the web UI and API (on keel_address).")
    prometheus_sources: list[Source] = Field(
        ["group:mon"], description='Who may reach the UI and API: CIDRs or "group:<name>".'
    )
    prometheus_retention_time: Duration = Field(
        "15d", description="How long samples are kept (--storage.tsdb.retention.time)."
    )
    prometheus_retention_size: (
        Annotated[str, Field(pattern=r"^[0-9]+(B|KB|MB|GB|TB|PB)$")] | None
    ) = Field(
        None,
        description=(
            'Size cap of the TSDB (--storage.tsdb.retention.size), e.g. "10GB"; None for no cap.'
        ),
    )
    prometheus_scrape_interval: Duration = Field(
        "15s", description="How often targets are scraped."
    )
    prometheus_evaluation_interval: Duration = Field(
        "15s", description="How often alert rules are evaluated."
    )
    prometheus_alert_thresholds: Thresholds = Field(
        {},
        description=(
            "Alert thresholds: disk_used, memory_available, pg_connections, redis_memory "
            "(ratios), service_restarts (per 15m); missing keys keep defaults."
        ),
    )
    prometheus_alert_for: dict[str, Duration] = Field(
        {},
        description=(
            "How long a condition must hold before its alert fires, per alert name; "
            "missing keep their defaults (see README)."
        ),
    )
    prometheus_rules: list[RuleGroup] = Field(
        [],
        description=(
            "More rule groups: [{name, interval?, rules: [{alert|record, expr, for?, "
            "labels?, annotations?}]}], checked by promtool before any reload."
        ),
    )

    @field_validator("prometheus_alert_for")
    @classmethod
    def _known_alerts(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - set(ALERTS))
        if unknown:
            raise ValueError(f"unknown alert {unknown[0]!r}; keel's alerts are {', '.join(ALERTS)}")
        return value
