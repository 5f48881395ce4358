"""Restores, with confirmation in data (a restore replaces data; what it replaces is kept).

PostgreSQL (db hosts): the whole cluster with pgBackRest, to the end of the archived WAL or to
a time; a safety backup of the current cluster is taken first (when PostgreSQL is down, its
data directory is kept aside):

    pyinfra INVENTORY deploys/restore.py --limit db1 \\
        --data postgres_restore_target='2026-12-02 03:30:00+00' \\
        --data postgres_restore_confirm=true

App data (app hosts, restic): one set; its units stop, its paths are kept aside and restored
from a snapshot (latest by default), the units start again:

    pyinfra INVENTORY deploys/restore.py --limit app1 \\
        --data restic_restore_set=storage --data restic_restore_confirm=true
"""

import shlex

from pyinfra import host
from pyinfra.api.exceptions import PyinfraError
from pyinfra.operations import server

from keel.deploy.site import settings as role_settings

roles = host.data.keel_roles
postgres = role_settings("postgres") if "postgres" in roles else None
restic = role_settings("restic") if "restic" in roles else None
if postgres and postgres.postgres_restore_target:
    target = postgres.postgres_restore_target
    if postgres.postgres_restore_confirm is not True:
        raise PyinfraError(f"restoring to {target} replaces the cluster's data: set "
                           "postgres_restore_confirm=true to confirm")
    server.shell(name=f"Restore PostgreSQL to {target} (safety backup first)",
                 commands=[f"keel-pg-backup restore {shlex.quote(target)}"])
elif restic and restic.restic_restore_set:
    name, snapshot = restic.restic_restore_set, restic.restic_restore_snapshot
    if not restic.restic_enabled:
        raise PyinfraError("restic_enabled is False on this host: there is nothing to restore")
    if restic.restic_restore_confirm is not True:
        raise PyinfraError(f"restoring set {name} stops its units and replaces its paths: set "
                           "restic_restore_confirm=true to confirm")
    server.shell(name=f"Restore {name} from snapshot {snapshot}",
                 commands=[f"keel-restic restore {shlex.quote(name)} {shlex.quote(snapshot)}"])
elif postgres:
    raise PyinfraError("set postgres_restore_target to 'latest' or to a time with its zone "
                       "('2026-12-02 03:30:00+00'); `keel-pg-backup list` on the host lists "
                       "the backups")
# An app host without restic_restore_set has nothing to restore (`keel-restic snapshots`).
