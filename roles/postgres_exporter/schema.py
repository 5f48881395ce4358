"""postgres_exporter's settings: each key's type, default and description."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from keel.core.schema import Port, RoleSettings, SecretName, Source


class Settings(RoleSettings):
    postgres_exporter_port: Port = Field(
        9187, description="Port the exporter listens on (on keel_address)."
    )
    postgres_exporter_sources: list[Source] = Field(
        ["group:mon"], description='Who may scrape it: CIDRs or "group:<name>".'
    )
    postgres_exporter_server: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:\[\]-]+:[0-9]+$")] = (
        Field(
            "127.0.0.1:5432",
            description="PostgreSQL server to watch, host:port (the local server over TCP).",
        )
    )
    postgres_exporter_database: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")] = Field(
        "postgres", description="Database to connect to."
    )
    postgres_exporter_sslmode: Literal["disable", "require", "verify-ca", "verify-full"] = Field(
        "disable",
        description=(
            "libpq sslmode of the connection (lib/pq's default, require, fails on a plain server)."
        ),
    )
    postgres_exporter_user: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")] = Field(
        "keel_monitor", description="Login role the exporter connects as (a member of pg_monitor)."
    )
    postgres_exporter_password_secret: SecretName = Field(
        "postgres_monitor_password", description="Secret holding that role's password."
    )
    postgres_exporter_extra_args: list[Annotated[str, Field(pattern=r"^--[a-z]")]] = Field(
        [], description="More exporter flags."
    )
