"""redis_exporter's settings: each key's type, default and description."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from keel.core.schema import Port, RoleSettings, SecretName, Source


class Settings(RoleSettings):
    redis_exporter_port: Port = Field(
        9121, description="Port the exporter listens on (on keel_address)."
    )
    redis_exporter_sources: list[Source] = Field(
        ["group:mon"], description='Who may scrape it: CIDRs or "group:<name>".'
    )
    redis_exporter_server: Annotated[str, Field(pattern=r"^(rediss?|unix)://\S+$")] = Field(
        "redis://127.0.0.1:6379", description="Redis server to watch (the local server)."
    )
    redis_exporter_user: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] = Field(
        "keel_exporter", description="ACL user the exporter connects as."
    )
    redis_exporter_password_secret: SecretName = Field(
        "redis_exporter_password", description="Secret holding that user's password."
    )
    redis_exporter_extra_args: list[Annotated[str, Field(pattern=r"^--[a-z]")]] = Field(
        [], description="More exporter flags."
    )
