"""Back up now, as the timers would: on db hosts a PostgreSQL backup (differential by default,
`--data postgres_backup_now=full`), on app hosts with restic enabled the sets
(`--data restic_backup_now='["storage"]'` for some). A failed backup fails the operation."""

import shlex

from pyinfra import host
from pyinfra.operations import server

from keel.deploy.site import settings as role_settings

if "postgres" in host.data.keel_roles:
    kind = role_settings("postgres").postgres_backup_now
    # Blocks until the oneshot unit ends.
    server.shell(name=f"Back up PostgreSQL now ({kind})",
                 commands=[f"systemctl start keel-pg-backup@{kind}.service",
                           "keel-pg-backup list"])
if "restic" in host.data.keel_roles and role_settings("restic").restic_enabled:
    sets = role_settings("restic").restic_backup_now or []
    server.shell(name="Back up app data now" + (f" ({', '.join(sets)})" if sets else ""),
                 commands=[f"keel-restic backup {shlex.join(sets)}".strip()])
