"""postgres: PostgreSQL 15 from Debian; settings scaled to memory, pg_hba from inventory,
roles and databases with exact privileges, passwords from secrets; WAL archiving and backups
with pgBackRest (point-in-time recovery)."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

from pyinfra import host
from pyinfra.api import FactBase, StringCommand, deploy, operation
from pyinfra.facts.files import File, FileContents
from pyinfra.operations import apt, files, server, systemd

from keel.core.roles import Role
from keel.core.schema import PortRule
from keel.core.secrets import SecretFile
from keel.deploy.facts import MemTotal
from keel.deploy.ops import config_file, dropin, live_check, managed_file, service, unit_files
from keel.deploy.secrets import deliver, value
from roles.base.firewall import source_addresses
from roles.postgres import plan
from roles.postgres.alerts import POSTGRES_BACKUP_ALERTS
from roles.postgres.facts import PostgresCluster, PostgresGrants, psql
from roles.postgres.plan import PGBACKREST, PGBACKREST_CONF, STANZA
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
PGDATA = f"/var/lib/postgresql/{VERSION}/main"
BACKUP_TOOL = "/usr/local/sbin/keel-pg-backup"
DROPIN = """# managed by keel: roles/postgres
# PostgreSQL listens on the host's private address: start once the network is up, or it would
# come up on localhost alone.
[Unit]
After=network-online.target
Wants=network-online.target

[Service]
# After a start the checkpointer first sleeps up to checkpoint_timeout before it honours
# archive_timeout (measured: no WAL switch for over 70 s at archive_timeout 10s). A checkpoint
# right after the start wakes it, so the recovery point objective holds after restarts too.
ExecStartPost=-/usr/sbin/runuser -u postgres -- /usr/bin/psql -XAtq -d postgres -c CHECKPOINT
"""
BACKUP_UNITS = ("keel-pg-backup@.service", "keel-pg-backup-full.timer",
                "keel-pg-backup-diff.timer", "keel-pg-backup-metrics.service",
                "keel-pg-backup-metrics.timer")


def ports(settings: Settings) -> list[PortRule]:
    """PostgreSQL's port, open to the sources pg_hba accepts."""
    sources = sorted({s for rule in settings.postgres_hba if rule.method != "reject"
                      for s in rule.sources})
    return [PortRule(port=settings.postgres_port, sources=sources, comment="postgres")] \
        if sources else []


def secrets(settings: Settings) -> list[SecretFile]:
    """Role passwords (read by keel-pg-password only), and pgBackRest's configuration: it holds
    the repository key (and S3 keys), so it is a secret file, never a managed one."""
    out = [SecretFile(dest=_password_file(role.name), secret=role.password_secret,
                      owner="postgres", group="postgres",
                      named_by={role.password_secret: f"postgres_roles[{i}].password_secret"})
           for i, role in enumerate(settings.postgres_roles)
           if role.state == "present" and role.password_secret]
    return [*out, _pgbackrest_conf(settings)]


def _pgbackrest_conf(settings: Settings) -> SecretFile:
    s3 = settings.postgres_backup_s3
    uses = (settings.postgres_backup_cipher_secret,
            *((s3.access_key_secret, s3.secret_key_secret) if s3 else ()))
    url = urlsplit(s3.endpoint_url or f"https://s3.{s3.region}.amazonaws.com") if s3 else None
    named_by = {settings.postgres_backup_cipher_secret: "postgres_backup_cipher_secret"}
    if s3:
        named_by |= {s3.access_key_secret: "postgres_backup_s3.access_key_secret",
                     s3.secret_key_secret: "postgres_backup_s3.secret_key_secret"}
    return SecretFile(
        dest=PGBACKREST_CONF.removeprefix("/run/keel/secrets/"),
        template="postgres/pgbackrest.conf.j2", uses=uses, owner="postgres", group="postgres",
        named_by=named_by,
        context={"path": settings.postgres_backup_path, "cipher": uses[0], "s3": s3,
                 "s3_host": url.hostname if url else None, "s3_port": url.port if url else None,
                 "retention_full": settings.postgres_backup_retention_full,
                 "retention_diff": settings.postgres_backup_retention_diff,
                 "stanza": STANZA, "pgdata": PGDATA, "port": settings.postgres_port})


def alerts() -> list[dict]:
    """Backup age and result, WAL archive lag: loaded by Prometheus where db hosts exist."""
    return [POSTGRES_BACKUP_ALERTS]


def _password_file(role: str) -> str:
    return f"postgres/{role}.password"


@deploy("postgres")
def apply(settings: Settings) -> None:
    cluster = host.get_fact(PostgresCluster)
    _install(settings)
    # Before PostgreSQL starts archiving: archive_command reads this configuration.
    deliver(name="Deliver pgBackRest's configuration (repository key)",
            file=_pgbackrest_conf(settings))
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
                 packages=[f"postgresql-{VERSION}", f"postgresql-client-{VERSION}", "pgbackrest"],
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
    unit = dropin(f"{UNIT}.service", DROPIN,
                  name="Start PostgreSQL once the network is up, then checkpoint")
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


class PgBackRestInfo(FactBase):
    """The stanza's status code (0 ok, 1 missing, 2 no valid backup, ...) and its backups' types;
    None when pgBackRest is not installed or its configuration is not delivered yet."""

    requires_command = "pgbackrest"

    def command(self) -> str:
        return (f"[ -r {PGBACKREST_CONF} ] && cd / && runuser -u postgres -- {PGBACKREST} "
                "info --output=json 2>/dev/null || true")

    def process(self, output):
        raw = json.loads("".join(output)) if output else []
        if not raw:
            return None
        return {"status": raw[0]["status"]["code"],
                "backups": [b["type"] for b in raw[0].get("backup", [])]}


@operation()
def stanza():
    """The repository's stanza exists and holds a full backup (recovery starts from one)."""
    current = host.get_fact(PgBackRestInfo)
    if current is None or current["status"] == 1:
        yield f"cd / && runuser -u postgres -- {PGBACKREST} stanza-create"
    if current is None or not current["backups"]:
        yield "systemctl start keel-pg-backup@full.service"
    else:
        host.noop(f"stanza {STANZA} has {len(current['backups'])} backups")


def _backups(settings) -> None:
    managed_file(name="Install keel-pg-backup", dest=BACKUP_TOOL, mode="0755",
                 content=(SCRIPTS / "keel_pg_backup.py").read_text())
    if not settings.postgres_backup_s3:
        files.directory(name="pgBackRest repository", path=settings.postgres_backup_path,
                        user="postgres", group="postgres", mode="0750")
    config = {"_": "managed by keel: roles/postgres", "config": PGBACKREST_CONF,
              "stanza": STANZA, "pgdata": PGDATA, "unit": UNIT,
              "metrics_dir": settings.postgres_backup_metrics_dir}
    managed_file(name="Write backup settings", dest="/etc/keel/pg-backup.json",
                 content=json.dumps(config, indent=1) + "\n")
    unit_files("postgres", BACKUP_UNITS, label="backups", settings=settings)
    stanza(name=f"pgBackRest stanza {STANZA} with a full backup")
    enabled = settings.postgres_backup_enabled
    for kind in ("full", "diff"):
        service(name=f"{'Enable' if enabled else 'Disable'} the {kind} backup timer",
                service=f"keel-pg-backup-{kind}.timer", running=enabled, enabled=enabled)
    service(name="Enable the backup metrics timer", service="keel-pg-backup-metrics.timer",
            running=True, enabled=True)
    live_check(name="pgbackrest check",
               command=StringCommand(f"cd / && runuser -u postgres -- {PGBACKREST} check"),
               ok="pgbackrest check: WAL reaches the repository", failed="pgbackrest check failed")


ROLE = Role(name="postgres", settings=Settings, apply=apply, groups=("db",), ports=ports,
            secrets=secrets, alerts=alerts, cross_check=cross_check)
