"""postgres's settings: each key's type, default and description."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from keel.core.schema import Memory, Model, Port, RoleSettings, SecretName, Source

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
    "archive_mode": "(always on: pgBackRest)", "archive_command": "(always pgBackRest)",
    "archive_timeout": "postgres_archive_timeout",
}

PgName = Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")]


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


def _hba_name(value: str) -> str:
    if not value or '"' in value:
        raise ValueError("expected a database or user name without '\"' (pg_hba.conf cannot "
                         "quote it)")
    return value


# A database or user name; all, sameuser, samerole, replication and +group keep pg_hba's
# meaning, anything else is quoted as a name.
HbaName = Annotated[str, AfterValidator(_hba_name)]


class HbaRule(Model):
    databases: Annotated[list[HbaName], Field(min_length=1)] = ["all"]
    users: Annotated[list[HbaName], Field(min_length=1)] = ["all"]
    sources: Annotated[list[Source], Field(min_length=1)]
    method: Literal["scram-sha-256", "reject"] = "scram-sha-256"
    ssl: bool = False


class S3(Model):
    endpoint_url: Annotated[str, Field(pattern=r"^https?://")] | None = None
    bucket: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
    region: str = "us-east-1"
    access_key_secret: SecretName
    secret_key_secret: SecretName
    ca_bundle: str | None = None
    verify_tls: bool = True


class Settings(RoleSettings):
    postgres_listen_addresses: list[Annotated[str, AfterValidator(_listen)]] | None = Field(
        None,
        description=(
            "Addresses PostgreSQL listens on ('*', 'localhost' or IPs); None: localhost + "
            "keel_address."
        ),
    )
    postgres_port: Port = Field(5432, description="TCP port.")
    postgres_hba: list[HbaRule] = Field(
        [{"sources": ["group:app"]}],
        description=(
            "pg_hba host rules (all scram-sha-256): [{sources: [CIDR|group:<name>], "
            "databases?: [all], users?: [all], method?: scram-sha-256|reject, ssl?: "
            "False}]; the firewall opens the port to the same sources. A group's hosts "
            "are found in the inventory (keel_address)."
        ),
    )
    postgres_memory: Memory | None = Field(
        None, description="Memory the tuning assumes (e.g. '4GB'); None: the host's total memory."
    )
    postgres_max_connections: Annotated[int, Field(ge=5, le=10000)] = Field(
        100, description="max_connections."
    )
    postgres_shared_buffers: Memory | None = Field(
        None, description="shared_buffers; None: 25% of memory."
    )
    postgres_effective_cache_size: Memory | None = Field(
        None, description="effective_cache_size; None: 75% of memory."
    )
    postgres_work_mem: Memory | None = Field(
        None,
        description=(
            "work_mem; None: (memory - shared_buffers) / (3 * max_connections), at least 4MB."
        ),
    )
    postgres_maintenance_work_mem: Memory | None = Field(
        None, description="maintenance_work_mem; None: memory / 16, at most 2GB."
    )
    postgres_min_wal_size: Memory = Field("1GB", description="min_wal_size.")
    postgres_max_wal_size: Memory = Field("4GB", description="max_wal_size.")
    postgres_settings: dict[
        Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_.]*$")], str | int | float | bool
    ] = Field(
        {
            "checkpoint_completion_target": 0.9,
            "wal_buffers": "16MB",
            "default_statistics_target": 100,
            "random_page_cost": 1.1,
            "effective_io_concurrency": 200,
        },
        description=(
            "Other postgresql.conf parameters (name: value); the tuned ones have their own keys."
        ),
    )
    postgres_data_checksums: bool = Field(
        True,
        description=(
            "Data checksums for a cluster keel creates (initdb; no effect on an existing cluster)."
        ),
    )
    postgres_roles: list[Role] = Field(
        [],
        description=(
            "Roles: [{name, password_secret?, login?: True, superuser?: False, createdb?: "
            "False, createrole?: False, connection_limit?: -1, member_of?: [..], state?: "
            "present|absent, confirm_drop?: False}]. member_of grants memberships "
            "(pg_monitor) and never revokes. Absent roles are dropped only with "
            "confirm_drop; what they own is given to postgres."
        ),
    )
    postgres_databases: list[Database] = Field(
        [],
        description=(
            "Databases: [{name, owner, encoding?: UTF8, locale?: C.UTF-8, grants?: "
            "[{role, database?: [privs], schemas?: {schema: [privs]}, tables?: {schema: "
            "[privs]}, sequences?: {schema: [privs]}}], state?: present|absent, "
            "confirm_drop?: False}]. Each listed role gets exactly these privileges; "
            "PUBLIC gets none on the database."
        ),
    )
    postgres_backup_enabled: bool = Field(
        True,
        description=(
            "Full and differential pgBackRest backups on their timers (WAL archiving is always "
            "on)."
        ),
    )
    postgres_backup_path: Annotated[str, Field(pattern=r"^/.+")] = Field(
        "/var/lib/pgbackrest",
        description=(
            "The pgBackRest repository: a directory on the host (owned by postgres), or the "
            "path inside the bucket with postgres_backup_s3."
        ),
    )
    postgres_backup_cipher_secret: SecretName = Field(
        "postgres_backup_cipher_pass",
        description="Secret holding the repository's encryption key (repo1-cipher-pass).",
    )
    postgres_backup_full_schedule: str = Field(
        "Sun *-*-* 01:30:00", description="When full backups run (systemd OnCalendar)."
    )
    postgres_backup_diff_schedule: str = Field(
        "Mon..Sat *-*-* 01:30:00",
        description="When differential backups run (systemd OnCalendar).",
    )
    postgres_backup_retention_full: Annotated[int, Field(ge=1, le=100)] = Field(
        2,
        description=(
            "Full backups kept (repo1-retention-full); the WAL to recover from the oldest "
            "one onwards is kept too, so weekly fulls and 2 give 7 to 14 days of PITR."
        ),
    )
    postgres_backup_retention_diff: Annotated[int, Field(ge=1, le=100)] = Field(
        7, description="Differential backups kept (repo1-retention-diff)."
    )
    postgres_archive_timeout: Annotated[int, Field(ge=1, le=60)] = Field(
        60,
        description=(
            "archive_timeout in seconds: a WAL segment is archived at least this often while "
            "there are writes (the recovery point objective)."
        ),
    )
    postgres_backup_s3: S3 | None = Field(
        None,
        description=(
            "Keep the repository in S3-compatible storage: None (on the host), or {bucket, "
            "access_key_secret, secret_key_secret, endpoint_url?, region?: us-east-1, "
            "ca_bundle?, verify_tls?: True}."
        ),
    )
    postgres_backup_metrics_dir: Annotated[str, Field(pattern=r"^/.+")] = Field(
        "/var/lib/prometheus/node-exporter",
        description="Node exporter textfile directory for the backup and archive metrics.",
    )
    postgres_backup_now: Literal["full", "diff", "incr"] = Field(
        "diff", description="deploys/backup.py: the type of the backup it takes now."
    )
    postgres_restore_target: (
        Annotated[str, Field(pattern=r"^(latest|\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d"
                                     r"(\.\d+)?(Z|[+-]\d\d(:?\d\d)?))$")] | None
    ) = Field(
        None,
        description=(
            "deploys/restore.py: 'latest' (the end of the archived WAL) or a time with its "
            "zone ('2026-12-02 03:30:00+00') to recover the whole cluster to."
        ),
    )
    postgres_restore_confirm: bool = Field(
        False,
        description=(
            "deploys/restore.py refuses to run unless this is True (a restore replaces the "
            "cluster's data; a safety backup is taken first)."
        ),
    )

    @field_validator("postgres_backup_s3")
    @classmethod
    def _tls_only(cls, value: S3 | None) -> S3 | None:
        if value and value.endpoint_url and not value.endpoint_url.startswith("https://"):
            raise ValueError("endpoint_url: pgBackRest reaches S3 over TLS only; expected "
                             "https://... (verify_tls: False or ca_bundle for a private one)")
        return value

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
                raise ValueError(
                    f"[{i}].owner: {db.owner!r} is not a present role in postgres_roles"
                )
            for j, grant in enumerate(db.grants):
                if grant.role not in roles:
                    raise ValueError(
                        f"[{i}].grants[{j}].role: {grant.role!r} is not a present "
                        "role in postgres_roles"
                    )
        return value


def cross_check(hosts) -> list:
    """pg_hba sources set in data that name a group must name one that has hosts."""
    from keel.core.data import group_source_problems

    def sources(rules) -> list:
        return (
            [s for rule in rules if isinstance(rule, dict) for s in rule.get("sources", [])]
            if isinstance(rules, list)
            else []
        )

    return group_source_problems(hosts, "postgres", "postgres_hba", sources)
