"""restic's settings: each key's type, default and description."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from keel.core.schema import Model, RoleSettings, SecretName

AbsPath = Annotated[str, Field(pattern=r"^/[^\s:]*[^/\s:]$|^/$")]
SetName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$")]


class BackupSet(Model):
    """What one service (or one role) needs backed up, restored as a whole."""

    name: SetName
    paths: list[AbsPath] = []
    # Named volumes of the app's container engine (their mountpoints are looked up on the host).
    volumes: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$")]] = []
    engine: Literal["podman", "docker"] = "podman"
    # Run on the host before the backup (e.g. a containerised database dumped into a volume);
    # a failing hook fails the set's backup.
    pre_backup: str | None = None
    # systemd units stopped for a restore of this set and started again after it.
    units: list[str] = []


class S3(Model):
    endpoint_url: Annotated[str, Field(pattern=r"^https?://[^/]+$")] | None = None
    bucket: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
    path: Annotated[str, Field(pattern=r"^[A-Za-z0-9_./-]*$")] = ""
    region: str = "us-east-1"
    access_key_secret: SecretName
    secret_key_secret: SecretName


class Settings(RoleSettings):
    restic_enabled: bool = Field(
        False,
        description=(
            "Back up the sets on this host (environments turn it on with their password "
            "secret); False: the role does nothing."
        ),
    )
    restic_sets: list[BackupSet] = Field(
        [],
        description=(
            "What to back up: [{name, paths?: [abs], volumes?: [named volume], engine?: podman, "
            "pre_backup?: shell command, units?: [systemd unit]}]. Roles declare theirs "
            "(storage: its local DATA_DIR; app: each service's critical volumes); a set the "
            "data lists under the same name wins."
        ),
    )
    restic_repository: AbsPath = Field(
        "/var/backups/restic",
        description="Repository on the host (root, 0700); unused with restic_s3.",
    )
    restic_s3: S3 | None = Field(
        None,
        description=(
            "Repository in S3-compatible storage: None, or {bucket, access_key_secret, "
            "secret_key_secret, endpoint_url?, path?: '', region?: us-east-1}."
        ),
    )
    restic_password_secret: SecretName = Field(
        "restic_password", description="Secret holding the repository's password (encryption)."
    )
    restic_schedule: str = Field(
        "*-*-* 03:15:00", description="When backups run (systemd OnCalendar)."
    )
    restic_keep_daily: Annotated[int, Field(ge=0)] = Field(
        30, description="Daily snapshots kept per set (the newest of each day)."
    )
    restic_keep_weekly: Annotated[int, Field(ge=0)] = Field(
        12, description="Weekly snapshots kept per set (the newest of each ISO week)."
    )
    restic_keep_monthly: Annotated[int, Field(ge=0)] = Field(
        12, description="Monthly snapshots kept per set (the newest of each month)."
    )
    restic_metrics_dir: AbsPath = Field(
        "/var/lib/prometheus/node-exporter",
        description="Node exporter textfile directory for the backup metrics.",
    )
    restic_backup_now: list[SetName] | None = Field(
        None, description="deploys/backup.py: the sets to back up now; None: all."
    )
    restic_restore_set: SetName | None = Field(
        None, description="deploys/restore.py: the set to restore (its paths and volumes)."
    )
    restic_restore_snapshot: Annotated[str, Field(pattern=r"^(latest|[0-9a-f]{8,64})$")] = Field(
        "latest", description="deploys/restore.py: the snapshot to restore (an ID or latest)."
    )
    restic_restore_confirm: bool = Field(
        False,
        description=(
            "deploys/restore.py refuses to run unless this is True (the set's units stop, its "
            "paths are replaced; the current contents are kept aside)."
        ),
    )
