"""A PostgreSQL backup now, on db hosts (the role's backup unit, as its timers would):
differential by default, `--data postgres_backup_now=full` for a full one."""

from pyinfra import host
from pyinfra.operations import server

from keel.deploy.site import settings as role_settings

if "postgres" in host.data.keel_roles:
    kind = role_settings("postgres").postgres_backup_now
    # Blocks until the oneshot unit ends; a failed backup fails this operation.
    server.shell(name=f"Back up PostgreSQL now ({kind})",
                 commands=[f"systemctl start keel-pg-backup@{kind}.service",
                           "keel-pg-backup list"])
