"""Schema for node_exporter's data."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

from keel.schema import Port, RoleData, Source


def _regexp(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a regular expression: {exc}") from None
    return value


class Schema(RoleData):
    node_exporter_port: Port
    node_exporter_sources: list[Source]
    node_exporter_textfile_dir: Annotated[str, Field(pattern=r"^/.+")]
    node_exporter_systemd_units: Annotated[str, AfterValidator(_regexp)] | None
    node_exporter_service_health: bool
    node_exporter_service_health_interval: Annotated[str, Field(pattern=r"^[0-9]+(ms|s|min|h)$")]
    node_exporter_extra_args: list[Annotated[str, Field(pattern=r"^--[a-z]")]]
