"""postgres: PostgreSQL 15 from Debian; settings scaled to memory, pg_hba from inventory,
roles and databases with exact privileges, passwords from secrets; backups with pg_dump."""

from __future__ import annotations

import json
from pathlib import Path

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import File, FileContents
from pyinfra.operations import apt, files, server, systemd

from keel.data import settings
from keel.facts import MemTotal
from keel.firewall import source_addresses
from keel.ops import config_file, managed_file, service
from keel.schema import PortRule
from keel.secrets import SecretFile, deliver, value
from roles.postgres import plan
from roles.postgres.facts import PostgresCluster, PostgresGrants, psql
from roles.postgres.schema import Schema, cross_check  # noqa: F401  (read by keel.data)
from roles.postgres.scripts.keel_pg_password import matches, normalise

DEFAULTS = {
    # Addresses PostgreSQL listens on ('*', 'localhost' or IPs); None: localhost + keel_address.
    "postgres_listen_addresses": None,
    # TCP port.
    "postgres_port": 5432,
    # pg_hba host rules (all scram-sha-256): [{sources: [CIDR|group:<name>], databases?: [all],
    # users?: [all], method?: scram-sha-256|reject, ssl?: False}]; the firewall opens the port
    # to the same sources. A group's hosts are found in the inventory (keel_address).
    "postgres_hba": [{"sources": ["group:app"]}],
    # Memory the tuning assumes (e.g. '4GB'); None: the host's total memory.
    "postgres_memory": None,
    # max_connections.
    "postgres_max_connections": 100,
    # shared_buffers; None: 25% of memory.
    "postgres_shared_buffers": None,
    # effective_cache_size; None: 75% of memory.
    "postgres_effective_cache_size": None,
    # work_mem; None: (memory - shared_buffers) / (3 * max_connections), at least 4MB.
    "postgres_work_mem": None,
    # maintenance_work_mem; None: memory / 16, at most 2GB.
    "postgres_maintenance_work_mem": None,
    # min_wal_size.
    "postgres_min_wal_size": "1GB",
    # max_wal_size.
    "postgres_max_wal_size": "4GB",
    # Other postgresql.conf parameters (name: value); the tuned ones have their own keys.
    "postgres_settings": {
        "checkpoint_completion_target": 0.9,
        "wal_buffers": "16MB",
        "default_statistics_target": 100,
        "random_page_cost": 1.1,
        "effective_io_concurrency": 200,
    },
    # Data checksums for a cluster keel creates (initdb; no effect on an existing cluster).
    "postgres_data_checksums": True,
    # Roles: [{name, password_secret?, login?: True, superuser?: False, createdb?: False,
    # createrole?: False, connection_limit?: -1, member_of?: [..], state?: present|absent,
    # confirm_drop?: False}]. member_of grants memberships (pg_monitor) and never revokes.
    # Absent roles are dropped only with confirm_drop; what they own is given to postgres.
    "postgres_roles": [],
    # Databases: [{name, owner, encoding?: UTF8, locale?: C.UTF-8, grants?: [{role,
    # database?: [privs], schemas?: {schema: [privs]}, tables?: {schema: [privs]},
    # sequences?: {schema: [privs]}}], state?: present|absent, confirm_drop?: False}].
    # Each listed role gets exactly these privileges; PUBLIC gets none on the database.
    "postgres_databases": [],
    # Back up on schedule (a systemd timer running pg_dump -Fc per database).
    "postgres_backup_enabled": True,
    # Where dumps are kept (daily/, weekly/, pre-restore/), root only.
    "postgres_backup_dir": "/var/backups/postgresql",
    # When backups run (systemd OnCalendar).
    "postgres_backup_schedule": "*-*-* 02:30:00",
    # Databases to back up; None: every database but postgres and the templates.
    "postgres_backup_databases": None,
    # Daily dumps kept per database.
    "postgres_backup_keep_daily": 7,
    # Weekly dumps kept per database (the first dump of each ISO week).
    "postgres_backup_keep_weekly": 4,
    # Upload each dump to S3-compatible storage: None, or {bucket, access_key_secret,
    # secret_key_secret, endpoint_url?, prefix?: '', region?: us-east-1, ca_bundle?}.
    "postgres_backup_s3": None,
    # Node exporter textfile directory for the backup metrics.
    "postgres_backup_metrics_dir": "/var/lib/prometheus/node-exporter",
    # deploys/restore.py: backup file to restore (e.g. 'app_20250101T023000Z.dump').
    "postgres_restore_backup": None,
    # deploys/restore.py: database to restore into; None: the one the backup was taken of.
    "postgres_restore_database": None,
    # deploys/restore.py refuses to run unless this is True (a restore replaces data).
    "postgres_restore_confirm": False,
}

VERSION = "15"
UNIT = f"postgresql@{VERSION}-main"
CONF_DIR = f"/etc/postgresql/{VERSION}/main"
KEEL_CONF = f"{CONF_DIR}/conf.d/keel.conf"
SCRIPTS = Path(__file__).parent / "scripts"
PASSWORD_TOOL = "/usr/local/sbin/keel-pg-password"
BACKUP_TOOL = "/usr/local/sbin/keel-pg-backup"
S3_CREDENTIALS = "postgres-backup/s3-credentials"


def ports(data: Schema) -> list[PortRule]:
    """PostgreSQL's port, open to the sources pg_hba accepts."""
    sources = sorted({s for rule in data.postgres_hba if rule.method != "reject"
                      for s in rule.sources})
    return [PortRule(port=data.postgres_port, sources=sources, comment="postgres")] \
        if sources else []


def secrets(data: Schema) -> list[SecretFile]:
    """Role passwords (read by keel-pg-password only), and S3 credentials for backup uploads."""
    out = [SecretFile(dest=_password_file(role.name), secret=role.password_secret,
                      owner="postgres", group="postgres",
                      named_by={role.password_secret: f"postgres_roles[{i}].password_secret"})
           for i, role in enumerate(data.postgres_roles)
           if role.state == "present" and role.password_secret]
    s3 = data.postgres_backup_s3
    if s3:
        out.append(SecretFile(dest=S3_CREDENTIALS, template="postgres/s3-credentials.j2",
                              uses=(s3.access_key_secret, s3.secret_key_secret),
                              context={"access_key": s3.access_key_secret,
                                       "secret_key": s3.secret_key_secret}))
    return out


def _password_file(role: str) -> str:
    return f"postgres/{role}.password"


@deploy("postgres")
def apply() -> None:
    data = settings("postgres")
    cluster = host.get_fact(PostgresCluster)
    _install(data)
    _configure(data, cluster)
    _roles(data, cluster)
    _databases(data, cluster)
    _drop(data, cluster)
    _backups(data)


def _install(data) -> None:
    # Written before the package, so the cluster the package creates already has them.
    config_file("postgres", "createcluster.conf",
                "/etc/postgresql-common/createcluster.d/keel.conf",
                name="Set how clusters are created (checksums, scram-sha-256)")
    apt.packages(name=f"Install PostgreSQL {VERSION}",
                 packages=[f"postgresql-{VERSION}", f"postgresql-client-{VERSION}"],
                 no_recommends=True)
    if not host.get_fact(File, path=f"{CONF_DIR}/postgresql.conf"):
        server.shell(name=f"Create cluster {VERSION}/main",
                     commands=[f"[ -e {CONF_DIR}/postgresql.conf ] || "
                               f"pg_createcluster {VERSION} main"])


def _configure(data, cluster) -> None:
    parameters = plan.parameters(data, host.get_fact(MemTotal), host.data.get("keel_address"))
    changed = plan.changed_parameters(host.get_fact(FileContents, path=KEEL_CONF), parameters)
    reasons = plan.restart_reasons(changed, cluster)
    conf = config_file("postgres", "postgresql.conf", KEEL_CONF, user="postgres",
                       group="postgres", name="Write PostgreSQL settings", parameters=parameters)
    hba = config_file("postgres", "pg_hba.conf", f"{CONF_DIR}/pg_hba.conf", user="postgres",
                      group="postgres", mode="0640", name="Write pg_hba.conf",
                      rules=plan.hba_rules(data, source_addresses))
    unit = config_file("postgres", "unit.conf", f"/etc/systemd/system/{UNIT}.service.d/keel.conf",
                       name="Start PostgreSQL once the network is up")
    systemd.daemon_reload(name="Reload systemd units", _if=unit.did_change)
    service(name="Enable PostgreSQL at boot", service="postgresql", running=None,
            enabled=True)
    pending = bool(cluster and cluster["pending_restart"])
    # A parameter whose context is 'postmaster' takes effect only on restart; others on reload.
    if reasons:
        systemd.service(name=f"Restart PostgreSQL ({', '.join(reasons)} needs it)", service=UNIT,
                        restarted=True, _if=lambda: pending or conf.did_change())
    systemd.service(name="Reload PostgreSQL", service=UNIT, reloaded=True,
                    _if=lambda: not reasons and (conf.did_change() or hba.did_change()))
    service(name="Start PostgreSQL", service=UNIT, running=True)


def _roles(data, cluster) -> None:
    current = (cluster or {}).get("roles", {})
    managed_file(name="Install keel-pg-password", dest=PASSWORD_TOOL, mode="0755",
                 content=(SCRIPTS / "keel_pg_password.py").read_text())
    declared = {f.dest: f for f in secrets(data)}
    for role in data.postgres_roles:
        if role.state != "present":
            continue
        for change in (plan.role_sql(role, current.get(role.name)),
                       plan.membership_sql(role, current.get(role.name))):
            if change:
                server.shell(name=change[0], commands=[psql(change[1])])
        if not role.password_secret:
            continue
        file = declared[_password_file(role.name)]
        deliver(name=f"Deliver password of PostgreSQL role {role.name}", file=file)
        # Checked here against the stored verifier's salt and iterations, so an unchanged
        # password is no change; set on the host from the delivered file.
        have = current.get(role.name)
        password = normalise(value(role.password_secret))
        if have is None or not matches(password, have["scram"], have["digest"]):
            server.shell(name=f"Set password of PostgreSQL role {role.name}",
                         commands=[f"cd / && runuser -u postgres -- {PASSWORD_TOOL} "
                                   f"{role.name} {file.path}"])


def _databases(data, cluster) -> None:
    current = (cluster or {}).get("databases", {})
    members = [r for r in data.postgres_roles if r.state == "present" and not r.superuser]
    for db in data.postgres_databases:
        if db.state != "present":
            continue
        change = plan.database_sql(db, current.get(db.name))
        if change:
            server.shell(name=change[0], commands=[psql(change[1])])
        acl = current.get(db.name, {}).get("acl")
        if acl is None or "PUBLIC" in acl:
            server.shell(name=f"Revoke PUBLIC's access to database {db.name}",
                         commands=[psql(f"REVOKE ALL ON DATABASE {plan.ident(db.name)} "
                                        "FROM PUBLIC")])
        grants = host.get_fact(PostgresGrants, database=db.name) if db.name in current else None
        for role in members:
            if role.name == db.owner:
                continue
            statements = plan.grant_sql(db, role.name, acl, grants)
            if statements:
                server.shell(name=f"Set privileges of {role.name} in database {db.name}",
                             commands=[psql("; ".join(statements), db.name)])


def _drop(data, cluster) -> None:
    """Only what data marks absent with confirm_drop (the schema insists on it)."""
    current = cluster or {"roles": {}, "databases": {}}
    dropped = set()
    for db in data.postgres_databases:
        if db.state == "absent" and db.name in current["databases"]:
            dropped.add(db.name)
            server.shell(name=f"Drop database {db.name} (confirmed in data)",
                         commands=[psql(f"DROP DATABASE {plan.ident(db.name)} WITH (FORCE)")])
    for role in data.postgres_roles:
        if role.state == "absent" and role.name in current["roles"]:
            remaining = [d for d in current["databases"] if d not in dropped]
            server.shell(name=f"Drop PostgreSQL role {role.name} (confirmed in data; "
                              "what it owns goes to postgres)",
                         commands=[psql(sql, db) for db, sql in
                                   plan.drop_role_sql(role.name, remaining)])


def _backups(data) -> None:
    managed_file(name="Install keel-pg-backup", dest=BACKUP_TOOL, mode="0755",
                 content=(SCRIPTS / "keel_pg_backup.py").read_text())
    files.directory(name="Backup directory", path=data.postgres_backup_dir, user="root",
                    group="root", mode="0700")
    s3 = data.postgres_backup_s3
    upload = None
    if s3:
        apt.packages(name="Install boto3 (backup upload)", packages=["python3-boto3"],
                     no_recommends=True)
        credentials = next(f for f in secrets(data) if f.dest == S3_CREDENTIALS)
        deliver(name="Deliver S3 credentials for backups", file=credentials)
        upload = {"endpoint_url": s3.endpoint_url, "bucket": s3.bucket, "prefix": s3.prefix,
                  "region": s3.region, "ca_bundle": s3.ca_bundle,
                  "credentials_file": credentials.path}
    config = {"_": "managed by keel: roles/postgres", "dir": data.postgres_backup_dir,
              "databases": data.postgres_backup_databases,
              "keep_daily": data.postgres_backup_keep_daily,
              "keep_weekly": data.postgres_backup_keep_weekly,
              "metrics_dir": data.postgres_backup_metrics_dir, "s3": upload}
    managed_file(name="Write backup settings", dest="/etc/keel/postgres-backup.json",
                 content=json.dumps(config, indent=1) + "\n")
    unit = config_file("postgres", "keel-pg-backup.service",
                       "/etc/systemd/system/keel-pg-backup.service", name="Backup service unit")
    timer = config_file("postgres", "keel-pg-backup.timer",
                        "/etc/systemd/system/keel-pg-backup.timer", name="Backup timer unit")
    systemd.daemon_reload(name="Reload systemd units (backups)",
                          _if=lambda: unit.did_change() or timer.did_change())
    enabled = data.postgres_backup_enabled
    service(name=f"{'Enable' if enabled else 'Disable'} the backup timer",
            service="keel-pg-backup.timer", running=enabled, enabled=enabled)
