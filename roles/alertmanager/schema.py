"""alertmanager's settings: each key's type, default and description."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, ValidationInfo, field_validator, model_validator

from keel.core.schema import Model, Port, RoleSettings, SecretName, Source
from roles.prometheus.schema import Duration, LabelName

ReceiverName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$")]
Url = Annotated[str, Field(pattern=r"^https?://[^\s'\"]+$")]
Email = Annotated[str, Field(pattern=r"^[^@\s'\"]+@[^@\s'\"]+$")]
HostPort = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\[\]:-]+:[0-9]+$")]
Severity = Annotated[str, Field(pattern=r"^[a-z]+$")]


class Smtp(Model):
    smarthost: HostPort
    sender: Email = Field(alias="from")
    username: str | None = None
    password_secret: SecretName | None = None
    require_tls: bool = True

    @model_validator(mode="after")
    def _login(self):
        if (self.username is None) != (self.password_secret is None):
            raise ValueError("username and password_secret go together")
        return self


class Receiver(Model):
    name: ReceiverName
    webhook_urls: list[Url] = []
    email_to: list[Email] = []
    send_resolved: bool = True


class Route(Model):
    severity: Severity
    receiver: ReceiverName
    group_by: list[LabelName] | None = None
    repeat_interval: Duration | None = None
    # Also try the routes after this one (e.g. critical to the pager and to the mailing list).
    continue_: bool = Field(False, alias="continue")


class Inhibit(Model):
    source_severity: Severity
    target_severity: Severity
    equal: list[LabelName] = ["alertname", "host"]


class Settings(RoleSettings):
    alertmanager_port: Port = Field(
        9093, description="Port of the API, UI and metrics (on keel_address)."
    )
    alertmanager_sources: list[Source] = Field(
        ["group:mon"],
        description='Who may reach it (Prometheus, amtool, operators): CIDRs or "group:<name>".',
    )
    alertmanager_retention: Duration = Field(
        "120h", description="How long silences and notification state are kept (--data.retention)."
    )
    alertmanager_receivers: list[Receiver] = Field(
        [{"name": "default"}],
        description=(
            "Receivers: [{name, webhook_urls?, email_to?, send_resolved? (true)}]; one with "
            "neither drops what it gets."
        ),
    )
    alertmanager_receiver: ReceiverName = Field(
        "default", validate_default=True,
        description="Receiver of alerts no route below matches.",
    )
    alertmanager_routes: list[Route] = Field(
        [],
        description=(
            "Routes by the alert's severity label, in order: [{severity, receiver, group_by?, "
            "repeat_interval?, continue? (false)}]."
        ),
    )
    alertmanager_group_by: list[LabelName] = Field(
        ["alertname", "host"], description="Labels that put alerts into one notification."
    )
    alertmanager_group_wait: Duration = Field(
        "30s", description="How long a new group waits for more alerts before it is sent."
    )
    alertmanager_group_interval: Duration = Field(
        "5m", description="How long a group waits before it reports new or resolved alerts."
    )
    alertmanager_repeat_interval: Duration = Field(
        "4h", description="How long before a still-firing group is sent again."
    )
    alertmanager_resolve_timeout: Duration = Field(
        "5m", description="When an alert that stopped being sent counts as resolved."
    )
    alertmanager_inhibit_rules: list[Inhibit] = Field(
        [{"source_severity": "critical", "target_severity": "warning"}],
        description=(
            "A firing alert of source_severity mutes those of target_severity whose `equal` "
            "labels match (default: alertname, host)."
        ),
    )
    alertmanager_smtp: Smtp | None = Field(
        None,
        validate_default=True,
        description=(
            "Smarthost of email receivers: {smarthost (host:port), from, username?, "
            "password_secret?, require_tls? (true)}; the password is a secret file."
        ),
    )

    @field_validator("alertmanager_receivers")
    @classmethod
    def _unique(cls, value: list[Receiver]) -> list[Receiver]:
        names = [r.name for r in value]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate receiver names in {names}")
        return value

    @field_validator("alertmanager_receiver", "alertmanager_routes")
    @classmethod
    def _known_receivers(cls, value, info: ValidationInfo):
        names = [r.name for r in info.data.get("alertmanager_receivers") or []]
        used = [value] if isinstance(value, str) else [r.receiver for r in value]
        for name in used:
            if names and name not in names:
                raise ValueError(f"receiver {name!r} is not in alertmanager_receivers {names}")
        return value

    @field_validator("alertmanager_smtp")
    @classmethod
    def _smtp_for_email(cls, value, info: ValidationInfo):
        receivers = info.data.get("alertmanager_receivers") or []
        if value is None and any(r.email_to for r in receivers):
            raise ValueError("an email receiver (email_to) needs a smarthost here")
        return value
