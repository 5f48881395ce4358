"""postgres: PostgreSQL 15 from Debian; settings scaled to memory, pg_hba from inventory,
roles and databases with exact privileges, passwords from secrets; backups with pg_dump."""

from __future__ import annotations

import json
from pathlib import Path

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import File, FileContents
from pyinfra.operations import apt, files, server, systemd

from keel.core.roles import Role
from keel.core.schema import PortRule
from keel.core.secrets import SecretFile
from keel.deploy.facts import MemTotal
from keel.deploy.ops import config_file, managed_file, service, start_after
from keel.deploy.secrets import deliver, value
from roles.base.firewall import source_addresses
from roles.postgres import plan
from roles.postgres.facts import PostgresCluster, PostgresGrants, psql
from roles.postgres.schema import Settings, cross_check
from roles.postgres.scripts.keel_pg_password import matches, normalise

VERSION = "15"
UNIT = f"postgresql@{VERSION}-main"
CONF_DIR = f"/etc/postgresql/{VERSION}/main"
KEEL_CONF = f"{CONF_DIR}/conf.d/keel.conf"
# Parses the whole configuration (conf.d included) as the server would; works while it runs.
CONF_CHECK = (f"runuser -u postgres -- /usr/lib/postgresql/{VERSION}/bin/postgres "
              f"--config-file={CONF_DIR}/postgresql.conf -C data_directory")
SCRIPTS = Path(__file__).parent / "scripts"
PASSWORD_TOOL = "/usr/local/sbin/keel-pg-password"
BACKUP_TOOL = "/usr/local/sbin/keel-pg-backup"
S3_CREDENTIALS = "postgres-backup/s3-credentials"


def ports(settings: Settings) -> list[PortRule]:
    """PostgreSQL's port, open to the sources pg_hba accepts."""
    sources = sorted({s for rule in settings.postgres_hba if rule.method != "reject"
                      for s in rule.sources})
    return [PortRule(port=settings.postgres_port, sources=sources, comment="postgres")] \
        if sources else []


def secrets(settings: Settings) -> list[SecretFile]:
    """Role passwords (read by keel-pg-password only), and S3 credentials for backup uploads."""
    out = [SecretFile(dest=_password_file(role.name), secret=role.password_secret,
                      owner="postgres", group="postgres",
                      named_by={role.password_secret: f"postgres_roles[{i}].password_secret"})
           for i, role in enumerate(settings.postgres_roles)
           if role.state == "present" and role.password_secret]
    s3 = settings.postgres_backup_s3
    if s3:
        out.append(SecretFile(dest=S3_CREDENTIALS, template="postgres/s3-credentials.j2",
                              uses=(s3.access_key_secret, s3.secret_key_secret),
                              context={"access_key": s3.access_key_secret,
                                       "secret_key": s3.secret_key_secret}))
    return out


def _password_file(role: str) -> str:
    return f"postgres/{role}.password"


@deploy("postgres")
def apply(settings: Settings) -> None:
    cluster = host.get_fact(PostgresCluster)
    _install(settings)
    _configure(settings, cluster)
    _roles(settings, cluster)
    _databases(settings, cluster)
    _drop(settings, cluster)
    _backups(settings)


def _install(settings) -> None:
    # Written before the package, so the cluster the package creates already has them.
    config_file("postgres", "createcluster.conf",
                "/etc/postgresql-common/createcluster.d/keel.conf",
                name="Set how clusters are created (checksums, scram-sha-256)", settings=settings)
    apt.packages(name=f"Install PostgreSQL {VERSION}",
                 packages=[f"postgresql-{VERSION}", f"postgresql-client-{VERSION}"],
                 no_recommends=True)
    if not host.get_fact(File, path=f"{CONF_DIR}/postgresql.conf"):
        server.shell(name=f"Create cluster {VERSION}/main",
                     commands=[f"[ -e {CONF_DIR}/postgresql.conf ] || "
                               f"pg_createcluster {VERSION} main"])


def _configure(settings, cluster) -> None:
    parameters = plan.parameters(settings, host.get_fact(MemTotal), host.data.get("keel_address"))
    changed = plan.changed_parameters(host.get_fact(FileContents, path=KEEL_CONF), parameters)
    reasons = plan.restart_reasons(changed, cluster)
    conf = config_file("postgres", "postgresql.conf", KEEL_CONF, user="postgres",
                       group="postgres", name="Write PostgreSQL settings", parameters=parameters,
                       check=CONF_CHECK)
    hba = config_file("postgres", "pg_hba.conf", f"{CONF_DIR}/pg_hba.conf", user="postgres",
                      group="postgres", mode="0640", name="Write pg_hba.conf",
                      rules=plan.hba_rules(settings, source_addresses))
    unit = start_after(
        f"{UNIT}.service", "postgres", ["network-online.target"],
        name="Start PostgreSQL once the network is up",
        why="PostgreSQL listens on the host's private address: start once the network is up, "
            "or it would\ncome up on localhost alone.")
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


def _roles(settings, cluster) -> None:
    current = (cluster or {}).get("roles", {})
    managed_file(name="Install keel-pg-password", dest=PASSWORD_TOOL, mode="0755",
                 content=(SCRIPTS / "keel_pg_password.py").read_text())
    declared = {f.dest: f for f in secrets(settings)}
    for role in settings.postgres_roles:
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


def _databases(settings, cluster) -> None:
    current = (cluster or {}).get("databases", {})
    members = [r for r in settings.postgres_roles if r.state == "present" and not r.superuser]
    for db in settings.postgres_databases:
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


def _drop(settings, cluster) -> None:
    """Only what data marks absent with confirm_drop (the schema insists on it)."""
    current = cluster or {"roles": {}, "databases": {}}
    dropped = set()
    for db in settings.postgres_databases:
        if db.state == "absent" and db.name in current["databases"]:
            dropped.add(db.name)
            server.shell(name=f"Drop database {db.name} (confirmed in data)",
                         commands=[psql(f"DROP DATABASE {plan.ident(db.name)} WITH (FORCE)")])
    for role in settings.postgres_roles:
        if role.state == "absent" and role.name in current["roles"]:
            remaining = [d for d in current["databases"] if d not in dropped]
            server.shell(name=f"Drop PostgreSQL role {role.name} (confirmed in data; "
                              "what it owns goes to postgres)",
                         commands=[psql(sql, db) for db, sql in
                                   plan.drop_role_sql(role.name, remaining)])


def _backups(settings) -> None:
    managed_file(name="Install keel-pg-backup", dest=BACKUP_TOOL, mode="0755",
                 content=(SCRIPTS / "keel_pg_backup.py").read_text())
    files.directory(name="Backup directory", path=settings.postgres_backup_dir, user="root",
                    group="root", mode="0700")
    s3 = settings.postgres_backup_s3
    upload = None
    if s3:
        apt.packages(name="Install boto3 (backup upload)", packages=["python3-boto3"],
                     no_recommends=True)
        credentials = next(f for f in secrets(settings) if f.dest == S3_CREDENTIALS)
        deliver(name="Deliver S3 credentials for backups", file=credentials)
        upload = {"endpoint_url": s3.endpoint_url, "bucket": s3.bucket, "prefix": s3.prefix,
                  "region": s3.region, "ca_bundle": s3.ca_bundle,
                  "credentials_file": credentials.path}
    config = {"_": "managed by keel: roles/postgres", "dir": settings.postgres_backup_dir,
              "databases": settings.postgres_backup_databases,
              "keep_daily": settings.postgres_backup_keep_daily,
              "keep_weekly": settings.postgres_backup_keep_weekly,
              "metrics_dir": settings.postgres_backup_metrics_dir, "s3": upload}
    managed_file(name="Write backup settings", dest="/etc/keel/postgres-backup.json",
                 content=json.dumps(config, indent=1) + "\n")
    unit = config_file("postgres", "keel-pg-backup.service",
                       "/etc/systemd/system/keel-pg-backup.service", name="Backup service unit")
    timer = config_file("postgres", "keel-pg-backup.timer",
                        "/etc/systemd/system/keel-pg-backup.timer", name="Backup timer unit",
                        settings=settings)
    systemd.daemon_reload(name="Reload systemd units (backups)",
                          _if=lambda: unit.did_change() or timer.did_change())
    enabled = settings.postgres_backup_enabled
    service(name=f"{'Enable' if enabled else 'Disable'} the backup timer",
            service="keel-pg-backup.timer", running=enabled, enabled=enabled)


ROLE = Role(name="postgres", settings=Settings, apply=apply, groups=("db",), ports=ports,
            secrets=secrets, cross_check=cross_check)
