"""Schema for postgres's data."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from keel.schema import Memory, Model, Port, RoleData, Source

# Privileges by object kind, as GRANT spells them (aclexplode's names).
PRIVILEGES = {
    "database": ("CONNECT", "CREATE", "TEMPORARY"),
    "schemas": ("CREATE", "USAGE"),
    "tables": ("DELETE", "INSERT", "REFERENCES", "SELECT", "TRIGGER", "TRUNCATE", "UPDATE"),
    "sequences": ("SELECT", "UPDATE", "USAGE"),
}
# Parameters with their own key, so postgres_settings cannot set them a second time.
OWN_KEYS = {
    "listen_addresses": "postgres_listen_addresses", "port": "postgres_port",
    "max_connections": "postgres_max_connections",
    "shared_buffers": "postgres_shared_buffers",
    "effective_cache_size": "postgres_effective_cache_size", "work_mem": "postgres_work_mem",
    "maintenance_work_mem": "postgres_maintenance_work_mem",
    "min_wal_size": "postgres_min_wal_size", "max_wal_size": "postgres_max_wal_size",
    "password_encryption": "(always scram-sha-256)",
}

PgName = Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")]
SecretName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$")]


def _privileges(kind: str):
    def check(values: list[str]) -> list[str]:
        out = []
        for value in values:
            name = {"TEMP": "TEMPORARY"}.get(value.upper(), value.upper())
            if name == "ALL":
                out.extend(PRIVILEGES[kind])
            elif name in PRIVILEGES[kind]:
                out.append(name)
            else:
                raise ValueError(f"unknown privilege {value!r} for {kind}; expected ALL or "
                                 f"one of {', '.join(PRIVILEGES[kind])}")
        return sorted(set(out))
    return AfterValidator(check)


def _listen(value: str) -> str:
    if value not in ("*", "localhost"):
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError("expected '*', 'localhost' or an IP address") from None
    return value


class Grant(Model):
    role: PgName
    database: Annotated[list[str], _privileges("database")] = []
    schemas: dict[PgName, Annotated[list[str], _privileges("schemas")]] = {}
    tables: dict[PgName, Annotated[list[str], _privileges("tables")]] = {}
    sequences: dict[PgName, Annotated[list[str], _privileges("sequences")]] = {}


def _not_reserved(value: str) -> str:
    if value == "postgres" or value.startswith("pg_"):
        raise ValueError(f"{value!r} is reserved by PostgreSQL")
    return value


class _Droppable(Model):
    state: Literal["present", "absent"] = "present"
    confirm_drop: bool = False

    @model_validator(mode="after")
    def _confirmed(self):
        if self.state == "absent" and not self.confirm_drop:
            raise ValueError(f"state 'absent' drops {self.name!r} (data is lost); "
                             "set confirm_drop: True to confirm")
        return self


class Role(_Droppable):
    name: Annotated[PgName, AfterValidator(_not_reserved)]
    password_secret: SecretName | None = None
    login: bool = True
    superuser: bool = False
    createdb: bool = False
    createrole: bool = False
    connection_limit: Annotated[int, Field(ge=-1)] = -1
    # Roles this one is a member of, e.g. pg_monitor for the postgres exporter's login.
    member_of: list[PgName] = []


class Database(_Droppable):
    name: Annotated[PgName, AfterValidator(_not_reserved)]
    owner: PgName
    encoding: str = "UTF8"
    locale: str = "C.UTF-8"
    grants: list[Grant] = []


class HbaRule(Model):
    databases: Annotated[list[str], Field(min_length=1)] = ["all"]
    users: Annotated[list[str], Field(min_length=1)] = ["all"]
    sources: Annotated[list[Source], Field(min_length=1)]
    method: Literal["scram-sha-256", "reject"] = "scram-sha-256"
    ssl: bool = False


class S3(Model):
    endpoint_url: Annotated[str, Field(pattern=r"^https?://")] | None = None
    bucket: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
    prefix: str = ""
    region: str = "us-east-1"
    access_key_secret: SecretName
    secret_key_secret: SecretName
    ca_bundle: str | None = None


class Schema(RoleData):
    postgres_listen_addresses: list[Annotated[str, AfterValidator(_listen)]] | None
    postgres_port: Port
    postgres_hba: list[HbaRule]
    postgres_memory: Memory | None
    postgres_max_connections: Annotated[int, Field(ge=5, le=10000)]
    postgres_shared_buffers: Memory | None
    postgres_effective_cache_size: Memory | None
    postgres_work_mem: Memory | None
    postgres_maintenance_work_mem: Memory | None
    postgres_min_wal_size: Memory
    postgres_max_wal_size: Memory
    postgres_settings: dict[Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_.]*$")],
                            str | int | float | bool]
    postgres_data_checksums: bool
    postgres_roles: list[Role]
    postgres_databases: list[Database]
    postgres_backup_enabled: bool
    postgres_backup_dir: Annotated[str, Field(pattern=r"^/.+")]
    postgres_backup_schedule: str
    postgres_backup_databases: list[PgName] | None
    postgres_backup_keep_daily: Annotated[int, Field(ge=1)]
    postgres_backup_keep_weekly: Annotated[int, Field(ge=0)]
    postgres_backup_s3: S3 | None
    postgres_backup_metrics_dir: Annotated[str, Field(pattern=r"^/.+")]
    postgres_restore_backup: Annotated[str, Field(pattern=r"^[A-Za-z0-9_./-]+\.dump$")] | None
    postgres_restore_database: PgName | None
    postgres_restore_confirm: bool

    @field_validator("postgres_settings")
    @classmethod
    def _no_own_keys(cls, value: dict) -> dict:
        for key in value:
            if key in OWN_KEYS:
                raise ValueError(f"{key!r} is set by {OWN_KEYS[key]}")
        return value

    @field_validator("postgres_databases")
    @classmethod
    def _known_roles(cls, value: list[Database], info: ValidationInfo) -> list[Database]:
        roles = {r.name for r in info.data.get("postgres_roles") or [] if r.state == "present"}
        for i, db in enumerate(value):
            if db.state == "absent":
                continue
            if db.owner not in roles | {"postgres"}:
                raise ValueError(f"[{i}].owner: {db.owner!r} is not a present role in "
                                 "postgres_roles")
            for j, grant in enumerate(db.grants):
                if grant.role not in roles:
                    raise ValueError(f"[{i}].grants[{j}].role: {grant.role!r} is not a present "
                                     "role in postgres_roles")
        return value


def cross_check(hosts) -> list:
    """pg_hba sources set in data that name a group must name one that has hosts."""
    from keel.data import group_source_problems

    def sources(rules) -> list:
        return [s for rule in rules if isinstance(rule, dict) for s in rule.get("sources", [])] \
            if isinstance(rules, list) else []

    return group_source_problems(hosts, "postgres", "postgres_hba", sources)
