"""What postgres changes: pure functions from the wanted state (data) and the current one (facts).

Each returns SQL or settings so that an unchanged host yields nothing, which is how pyinfra
reports "no change".
"""

from __future__ import annotations

import ipaddress

from keel.core.render import pg_conf
from keel.core.schema import size_bytes
from roles.postgres.schema import PRIVILEGES

MB = 1 << 20
# The pgBackRest configuration is a secret file (it holds the repository key).
PGBACKREST_CONF = "/run/keel/secrets/postgres/pgbackrest.conf"
STANZA = "main"
PGBACKREST = f"pgbackrest --config={PGBACKREST_CONF} --stanza={STANZA}"
ARCHIVE_PUSH = f"{PGBACKREST} archive-push"
GB = 1 << 30


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# --- settings ----------------------------------------------------------------------------

def pg_size(n: int) -> str:
    for unit, factor in (("TB", 1 << 40), ("GB", GB), ("MB", MB)):
        if n % factor == 0:
            return f"{n // factor}{unit}"
    return f"{max(n // 1024, 1)}kB"


def tuning(settings, memory: int) -> dict[str, int]:
    """Memory parameters in bytes: data where set, else scaled to memory (pgtune's web profile)."""
    memory = size_bytes(settings.postgres_memory) if settings.postgres_memory else memory

    def pick(value: str | None, default: int) -> int:
        return size_bytes(value) if value else max(default // MB, 1) * MB

    shared = pick(settings.postgres_shared_buffers, memory // 4)
    connections = settings.postgres_max_connections
    return {
        "shared_buffers": shared,
        "effective_cache_size": pick(settings.postgres_effective_cache_size, memory * 3 // 4),
        "work_mem": pick(settings.postgres_work_mem,
                         max(4 * MB, (memory - shared) // (3 * connections))),
        "maintenance_work_mem": pick(settings.postgres_maintenance_work_mem,
                                     min(memory // 16, 2 * GB)),
        "min_wal_size": size_bytes(settings.postgres_min_wal_size),
        "max_wal_size": size_bytes(settings.postgres_max_wal_size),
    }


def _value(value) -> str:
    return pg_conf(value)


def parameters(settings, memory: int, address: str | None) -> dict[str, str]:
    """postgresql.conf parameters keel sets, rendered: name -> value as written in the file."""
    listen = settings.postgres_listen_addresses or ["localhost", *([address] if address else [])]
    out = {
        "listen_addresses": pg_conf(",".join(listen)),
        "port": str(settings.postgres_port),
        "password_encryption": pg_conf("scram-sha-256"),
        "max_connections": str(settings.postgres_max_connections),
        # WAL archiving to pgBackRest's repository (point-in-time recovery).
        "archive_mode": "on",
        "archive_command": literal(f"{ARCHIVE_PUSH} %p"),
        "archive_timeout": f"{settings.postgres_archive_timeout}s",
        **{name: pg_size(n) for name, n in tuning(settings, memory).items()},
        **{name: _value(v) for name, v in settings.postgres_settings.items()},
    }
    return dict(sorted(out.items()))


def changed_parameters(current: list[str] | None, wanted: dict[str, str]) -> set[str]:
    """Names whose line differs between the current file's lines and the wanted parameters."""
    have = {}
    for line in current or []:
        name, sep, value = line.partition(" = ")
        if sep and not line.startswith("#"):
            have[name.strip()] = value.strip()
    return {name for name in have.keys() | wanted.keys() if have.get(name) != wanted.get(name)}


def restart_reasons(changed: set[str], cluster: dict | None) -> list[str]:
    """Why a restart is needed (empty: a reload is enough): parameters whose context is
    'postmaster', and any already pending a restart."""
    if cluster is None:
        return ["first start with keel's settings"] if changed else []
    postmaster = {name for name in changed if cluster["contexts"].get(name) == "postmaster"}
    return sorted(postmaster | set(cluster["pending_restart"]))


def hba_rules(settings, addresses) -> list[tuple[str, list[str], list[str], str, str]]:
    """(type, databases, users, address, method) lines from data (names quoted by the
    template); addresses(source) resolves a source to addresses (group:<name> -> the group's
    keel_address)."""
    rules = []
    for rule in settings.postgres_hba:
        nets = sorted({str(ipaddress.ip_network(a, strict=False))
                       for source in rule.sources for a in addresses(source)})
        for net in nets:
            rules.append(("hostssl" if rule.ssl else "host", rule.databases, rule.users, net,
                          rule.method))
    return rules


# --- roles and databases -----------------------------------------------------------------

ROLE_FLAGS = ("login", "superuser", "createdb", "createrole")


def role_sql(role, current: dict | None) -> tuple[str, str] | None:
    """(operation name, statement) creating or altering a role; None if it is right."""
    attrs = " ".join(("" if getattr(role, f) else "NO") + f.upper() for f in ROLE_FLAGS)
    attrs += f" CONNECTION LIMIT {role.connection_limit}"
    if current is None:
        return (f"Create PostgreSQL role {role.name}",
                f"CREATE ROLE {ident(role.name)} WITH {attrs}")
    differ = [f for f in ROLE_FLAGS if current[f] != getattr(role, f)]
    if current["connection_limit"] != role.connection_limit:
        differ.append("connection_limit")
    if not differ:
        return None
    return (f"Alter PostgreSQL role {role.name} ({', '.join(differ)})",
            f"ALTER ROLE {ident(role.name)} WITH {attrs}")


def membership_sql(role, current: dict | None) -> tuple[str, str] | None:
    """(operation name, statement) adding the role to the roles it should be a member of
    (e.g. pg_monitor); memberships granted by hand are left alone."""
    missing = sorted(set(role.member_of) - set((current or {}).get("member_of", [])))
    if not missing:
        return None
    return (f"Grant {', '.join(missing)} to PostgreSQL role {role.name}",
            f"GRANT {', '.join(ident(m) for m in missing)} TO {ident(role.name)}")


def database_sql(db, current: dict | None) -> tuple[str, str] | None:
    """(operation name, statement) creating a database or changing its owner; None if right."""
    if current is None:
        return (f"Create database {db.name} (owner {db.owner})",
                f"CREATE DATABASE {ident(db.name)} OWNER {ident(db.owner)} "
                f"ENCODING {literal(db.encoding)} LOCALE {literal(db.locale)} TEMPLATE template0")
    if current["owner"] != db.owner:
        return (f"Give database {db.name} to {db.owner} (owned by {current['owner']})",
                f"ALTER DATABASE {ident(db.name)} OWNER TO {ident(db.owner)}")
    return None


# A database that does not exist yet will have what CREATE DATABASE gives it.
NEW_DATABASE_GRANTS = {"schemas": {"public": {"pg_database_owner": {"CREATE", "USAGE"},
                                              "PUBLIC": {"USAGE"}}},
                       "counts": {}, "objects": {}, "defaults": {}}


def _replace(current: set, wanted: list[str], on: str, grantee: str) -> list[str]:
    """Statements revoking what is held but not wanted and granting what is wanted but not held."""
    extra, missing = sorted(current - set(wanted)), sorted(set(wanted) - current)
    out = [f"REVOKE {', '.join(extra)} ON {on} FROM {grantee}"] if extra else []
    return out + ([f"GRANT {', '.join(missing)} ON {on} TO {grantee}"] if missing else [])


def grant_sql(db, role: str, acl: dict | None, grants: dict | None) -> list[str]:
    """Statements that make a role's privileges in a database exactly what db.grants say:
    on the database, on each existing schema, and on all tables and sequences of each schema
    (now, and by default for those the database owner creates later)."""
    grants = grants or NEW_DATABASE_GRANTS
    mine = [g for g in db.grants if g.role == role]
    who = ident(role)
    want_db = sorted({p for g in mine for p in g.database})
    out = _replace(set((acl or {}).get(role, [])), want_db, f"DATABASE {ident(db.name)}", who)
    for nsp in sorted(grants["schemas"]):
        schema = ident(nsp)
        want = sorted({p for g in mine for p in g.schemas.get(nsp, [])})
        out += _replace(grants["schemas"][nsp].get(role, set()), want, f"SCHEMA {schema}", who)
        for kind in ("tables", "sequences"):
            want = sorted({p for g in mine for p in getattr(g, kind).get(nsp, [])})
            count = grants["counts"].get((nsp, kind), 0)
            have = grants["objects"].get((nsp, kind, role), {})
            if any(have.get(p, 0) != (count if p in want else 0) for p in PRIVILEGES[kind]):
                out.append(f"REVOKE ALL ON ALL {kind.upper()} IN SCHEMA {schema} FROM {who}")
                if want:
                    out.append(f"GRANT {', '.join(want)} ON ALL {kind.upper()} IN SCHEMA "
                               f"{schema} TO {who}")
            default = f"ALTER DEFAULT PRIVILEGES FOR ROLE {ident(db.owner)} IN SCHEMA {schema} "
            out += [default + statement for statement in _replace(
                grants["defaults"].get((nsp, db.owner, kind, role), set()), want,
                kind.upper(), who)]
    return out


def drop_role_sql(role: str, databases: list[str]) -> list[tuple[str, str]]:
    """(database, statement) dropping a role without losing data: what it owns is given to
    postgres first, then its privileges are dropped, then the role."""
    out = [(db, f"REASSIGN OWNED BY {ident(role)} TO postgres; DROP OWNED BY {ident(role)}")
           for db in sorted(databases)]
    return [*out, ("postgres", f"DROP ROLE {ident(role)}")]
