"""Restore a named backup into a database, on db hosts. Replaces that database's contents, so
it refuses to run unless data confirms it:

    pyinfra INVENTORY deploys/restore.py --limit db1 \\
        --data postgres_restore_backup=app_20250101T023000Z.dump \\
        --data postgres_restore_confirm=true
"""

import shlex

from pyinfra import host
from pyinfra.api.exceptions import PyinfraError
from pyinfra.operations import server

from keel.deploy.site import settings as role_settings

if "postgres" in host.data.keel_roles:
    settings = role_settings("postgres")
    if not settings.postgres_restore_backup:
        raise PyinfraError("set postgres_restore_backup to the backup to restore "
                           "(`keel-pg-backup list` on the host lists them)")
    if settings.postgres_restore_confirm is not True:
        raise PyinfraError(f"restoring {settings.postgres_restore_backup} replaces the database's "
                           "contents: set postgres_restore_confirm=true to confirm")
    name = settings.postgres_restore_backup
    database = settings.postgres_restore_database or name.rsplit("/", 1)[-1].rsplit("_", 1)[0]
    server.shell(name=f"Restore {name} into database {database}",
                 commands=[f"keel-pg-backup restore {shlex.quote(name)} "
                           f"{shlex.quote(database)}"])
