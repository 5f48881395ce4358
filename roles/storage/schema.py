"""Schema for storage's data."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator

from keel.schema import Name, Port, RoleData

SecretName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]


class Schema(RoleData):
    storage_backend: Literal["local", "s3", "postgresql"]
    storage_app_user: Name
    storage_data_dir: str
    storage_s3_bucket: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")] | None
    storage_s3_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9!_.*'()/-]*$")]
    storage_s3_region: Annotated[str, Field(pattern=r"^[a-z0-9-]+$")]
    storage_s3_endpoint: Annotated[str, Field(pattern=r"^https?://[^\s/]+(/[^\s]*)?$")] | None
    storage_s3_credentials: Literal["secrets", "instance_role"]
    storage_s3_access_key_secret: SecretName
    storage_s3_secret_key_secret: SecretName
    storage_db_host: Annotated[str, Field(pattern=r"^[A-Za-z0-9.:-]+$")] | None
    storage_db_port: Port
    storage_db_name: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
    storage_db_user: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
    storage_db_password_secret: SecretName
    storage_db_driver: Annotated[str, Field(pattern=r"^postgres(ql)?(\+[a-z0-9]+)?$")]
    storage_redis_host: Annotated[str, Field(pattern=r"^[A-Za-z0-9.:-]+$")] | None
    storage_redis_port: Port
    storage_redis_db: Annotated[int, Field(ge=0, le=15)]
    storage_check: bool

    @field_validator("storage_data_dir")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/") or value == "/" or any(c.isspace() for c in value) \
                or "/../" in value + "/" or value.endswith("/"):
            raise ValueError("expected an absolute path such as '/srv/app/data'")
        return value

    @field_validator("storage_s3_bucket")
    @classmethod
    def _bucket_for_s3(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("storage_backend") == "s3":
            host = (info.context or {}).get("host")
            where = f" (set in {host.sources['storage_backend']})" if host else ""
            raise ValueError(f"required when storage_backend is 's3'{where}: the bucket to use")
        return value


def cross_check(hosts) -> list:
    """postgresql without storage_db_host needs a host in the inventory's db group."""
    from keel.data import Problem

    has_db = any("db" in h.groups for h in hosts)
    return [
        Problem(h.name, "storage_db_host", h.sources.get("storage_db_host", "?"),
                "storage_backend is 'postgresql' but no storage_db_host is set and the "
                "inventory has no db group")
        for h in hosts
        if "storage" in h.roles and h.values.get("storage_backend") == "postgresql"
        and not h.values.get("storage_db_host") and not has_db
    ]
