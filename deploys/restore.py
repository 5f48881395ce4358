"""Recover a db host's PostgreSQL cluster with pgBackRest, to the end of the archived WAL or to
a time. It replaces the cluster's data, so it refuses to run unless data confirms it; a safety
backup of the current cluster is taken first (or, when PostgreSQL is down, its data directory
is kept aside):

    pyinfra INVENTORY deploys/restore.py --limit db1 \\
        --data postgres_restore_target='2026-12-02 03:30:00+00' \\
        --data postgres_restore_confirm=true
"""

import shlex

from pyinfra import host
from pyinfra.api.exceptions import PyinfraError
from pyinfra.operations import server

from keel.deploy.site import settings as role_settings

if "postgres" in host.data.keel_roles:
    settings = role_settings("postgres")
    target = settings.postgres_restore_target
    if not target:
        raise PyinfraError("set postgres_restore_target to 'latest' or to a time with its zone "
                           "('2026-12-02 03:30:00+00'); `keel-pg-backup list` on the host "
                           "lists the backups")
    if settings.postgres_restore_confirm is not True:
        raise PyinfraError(f"restoring to {target} replaces the cluster's data: set "
                           "postgres_restore_confirm=true to confirm")
    server.shell(name=f"Restore PostgreSQL to {target} (safety backup first)",
                 commands=[f"keel-pg-backup restore {shlex.quote(target)}"])
