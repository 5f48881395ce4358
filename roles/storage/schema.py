"""storage's settings: each key's type, default and description."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator

from keel.core.schema import Name, Port, RoleSettings, SecretName


class Settings(RoleSettings):
    storage_backend: Literal["local", "s3", "postgresql"] = Field(
        "local",
        description='Backend: "local" (files under storage_data_dir), "s3" or "postgresql".',
    )
    storage_app_user: Name = Field(
        "app", description="User the app runs as: it owns DATA_DIR and reads the environment file."
    )
    storage_app_uid: Annotated[int, Field(ge=1, le=65533)] | None = Field(
        None,
        description=(
            "Fixed uid (and gid) of storage_app_user, so a container can run as it and own "
            "DATA_DIR; None: the system picks one."
        ),
    )
    storage_database: Literal["sqlite", "postgresql"] | None = Field(
        None,
        description=(
            "DATABASE_URL's database: PostgreSQL (the storage_db_* login) or SQLite under "
            "DATA_DIR/db; None: PostgreSQL for the postgresql backend, else SQLite."
        ),
    )
    storage_data_dir: str = Field(
        "/srv/app/data",
        description="DATA_DIR (absolute): db/, credentials/, config/agents/, config/skills/.",
    )
    storage_s3_bucket: (
        Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")] | None
    ) = Field(None, description="s3: bucket (required for s3).")
    storage_s3_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9!_.*'()/-]*$")] = Field(
        "claude-agent", description="s3: key prefix (S3_PREFIX)."
    )
    storage_s3_region: Annotated[str, Field(pattern=r"^[a-z0-9-]+$")] = Field(
        "us-east-1", description="s3: region (AWS_REGION)."
    )
    storage_s3_endpoint: Annotated[str, Field(pattern=r"^https?://[^\s/]+(/[^\s]*)?$")] | None = (
        Field(None, description="s3: endpoint URL of an S3-compatible service; None: AWS's own.")
    )
    storage_s3_credentials: Literal["secrets", "instance_role"] = Field(
        "secrets",
        description=(
            's3: "secrets" (access key pair from the secrets below) or "instance_role" '
            "(none rendered)."
        ),
    )
    storage_s3_access_key_secret: SecretName = Field(
        "storage_s3_access_key_id", description="s3: secret holding AWS_ACCESS_KEY_ID."
    )
    storage_s3_secret_key_secret: SecretName = Field(
        "storage_s3_secret_access_key", description="s3: secret holding AWS_SECRET_ACCESS_KEY."
    )
    storage_db_host: Annotated[str, Field(pattern=r"^[A-Za-z0-9.:-]+$")] | None = Field(
        None,
        description="postgresql: database host; None: the first host of the inventory's db group.",
    )
    storage_db_port: Port = Field(5432, description="postgresql: port.")
    storage_db_name: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] = Field(
        "app", description="postgresql: database name."
    )
    storage_db_user: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] = Field(
        "app", description="postgresql: user."
    )
    storage_db_password_secret: SecretName = Field(
        "postgres_app_password", description="postgresql: secret holding that user's password."
    )
    storage_db_driver: Annotated[str, Field(pattern=r"^postgres(ql)?(\+[a-z0-9]+)?$")] = Field(
        "postgresql+asyncpg",
        description=(
            "postgresql: URL scheme of DATABASE_URL (the app uses SQLAlchemy with asyncpg)."
        ),
    )
    storage_redis_host: Annotated[str, Field(pattern=r"^[A-Za-z0-9.:-]+$")] | None = Field(
        None,
        description=(
            "Redis host for REDIS_URL; None: the first host of the cache group (no "
            "REDIS_URL if none)."
        ),
    )
    storage_redis_port: Port = Field(6379, description="Redis port for REDIS_URL.")
    storage_redis_db: Annotated[int, Field(ge=0, le=15)] = Field(
        0, description="Redis database number for REDIS_URL."
    )
    storage_redis_user: Name | None = Field(
        None,
        description=(
            "ACL user in REDIS_URL (declared to the redis role of the cache host, with the "
            "commands and `<user>:*` keys an app needs); None: REDIS_URL has no credentials."
        ),
    )
    storage_redis_password_secret: SecretName = Field(
        "storage_redis_password", description="Secret holding storage_redis_user's password."
    )
    storage_check: bool = Field(
        True,
        description=(
            "After converging, write, read back and delete a probe object/row/file as the app user."
        ),
    )

    @field_validator("storage_data_dir")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if (
            not value.startswith("/")
            or value == "/"
            or any(c.isspace() for c in value)
            or "/../" in value + "/"
            or value.endswith("/")
        ):
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


def database(settings: Settings) -> str:
    """DATABASE_URL's database: "postgresql" or "sqlite"."""
    if settings.storage_database:
        return settings.storage_database
    return "postgresql" if settings.storage_backend == "postgresql" else "sqlite"


def cross_check(hosts) -> list:
    """A PostgreSQL DATABASE_URL without storage_db_host needs a host in the db group."""
    from keel.core.data import Problem

    has_db = any("db" in h.groups for h in hosts)
    return [
        Problem(
            h.name,
            "storage_db_host",
            h.sources.get("storage_db_host", "?"),
            "DATABASE_URL is PostgreSQL (storage_backend or storage_database) but no "
            "storage_db_host is set and the inventory has no db group",
        )
        for h in hosts
        if "storage" in h.roles
        and database(h.settings("storage")) == "postgresql"
        and not h.values.get("storage_db_host")
        and not has_db
    ]
