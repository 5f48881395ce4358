"""Schema for postgres_exporter's data."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from keel.schema import Port, RoleData, Source


class Schema(RoleData):
    postgres_exporter_port: Port
    postgres_exporter_sources: list[Source]
    postgres_exporter_server: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:\[\]-]+:[0-9]+$")]
    postgres_exporter_database: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")]
    postgres_exporter_sslmode: Literal["disable", "require", "verify-ca", "verify-full"]
    postgres_exporter_user: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")]
    postgres_exporter_password_secret: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    postgres_exporter_extra_args: list[Annotated[str, Field(pattern=r"^--[a-z]")]]
