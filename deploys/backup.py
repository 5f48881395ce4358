"""Back up every database now, on db hosts (the role's backup unit, as its timer would)."""

from pyinfra import host
from pyinfra.operations import server

if "postgres" in host.data.keel_roles:
    # Blocks until the oneshot unit ends; a failed backup fails this operation.
    server.shell(name="Back up PostgreSQL now",
                 commands=["systemctl start keel-pg-backup.service", "keel-pg-backup list"])
