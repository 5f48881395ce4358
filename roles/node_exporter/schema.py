"""node_exporter's settings: each key's type, default and description."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

from keel.core.schema import Port, RoleSettings, Source


def _regexp(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a regular expression: {exc}") from None
    return value


class Settings(RoleSettings):
    node_exporter_port: Port = Field(
        9100, description="Port the exporter listens on (on keel_address)."
    )
    node_exporter_sources: list[Source] = Field(
        ["group:mon"], description='Who may scrape it: CIDRs or "group:<name>".'
    )
    node_exporter_textfile_dir: Annotated[str, Field(pattern=r"^/.+")] = Field(
        "/var/lib/prometheus/node-exporter",
        description="Directory of the textfile collector (*.prom files written by other roles).",
    )
    node_exporter_systemd_units: Annotated[str, AfterValidator(_regexp)] | None = Field(
        None,
        description=(
            "Regexp of systemd units to report (state, restarts); None disables the "
            "systemd collector."
        ),
    )
    node_exporter_service_health: bool = Field(
        False,
        description=(
            "Write app service containers' health checks as textfile metrics "
            "(keel_service_healthy)."
        ),
    )
    node_exporter_service_health_interval: Annotated[
        str, Field(pattern=r"^[0-9]+(ms|s|min|h)$")
    ] = Field("30s", description="How often that health is read (systemd time span).")
    node_exporter_extra_args: list[Annotated[str, Field(pattern=r"^--[a-z]")]] = Field(
        [], description='More exporter flags, e.g. ["--no-collector.wifi"].'
    )
