"""Schema for redis_exporter's data."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from keel.schema import Port, RoleData, Source


class Schema(RoleData):
    redis_exporter_port: Port
    redis_exporter_sources: list[Source]
    redis_exporter_server: Annotated[str, Field(pattern=r"^(rediss?|unix)://\S+$")]
    redis_exporter_user: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    redis_exporter_password_secret: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    redis_exporter_extra_args: list[Annotated[str, Field(pattern=r"^--[a-z]")]]
