"""restic: app data backups (Debian's restic 0.14) on app hosts.

What is backed up are sets: roles declare theirs to this role (`declares` hooks: storage its
local DATA_DIR, app each service's critical volumes, with the service's backup_hook and unit),
and data can add more (`restic_sets`). One snapshot per set per run, retention per set.
"""

from __future__ import annotations

import json
from pathlib import Path

from pyinfra import host
from pyinfra.api import FactBase, deploy, operation
from pyinfra.operations import apt, files

from keel.core.roles import Role
from keel.core.secrets import RUN_DIR, SecretFile
from keel.deploy.ops import managed_file, service, unit_files
from keel.deploy.secrets import deliver
from roles.restic.alerts import RESTIC_ALERTS
from roles.restic.schema import Settings

TOOL = "/usr/local/sbin/keel-restic"
PASSWORD = "restic/password"
S3_ENV = "restic/s3.env"


def secrets(settings: Settings) -> list[SecretFile]:
    """The repository password (restic reads it from the file), and S3 keys if any."""
    if not settings.restic_enabled:
        return []
    out = [SecretFile(dest=PASSWORD, secret=settings.restic_password_secret,
                      named_by={settings.restic_password_secret: "restic_password_secret"})]
    s3 = settings.restic_s3
    if s3:
        out.append(SecretFile(dest=S3_ENV, template="restic/s3.env.j2",
                              uses=(s3.access_key_secret, s3.secret_key_secret),
                              context={"access_key": s3.access_key_secret,
                                       "secret_key": s3.secret_key_secret,
                                       "region": s3.region},
                              named_by={s3.access_key_secret: "restic_s3.access_key_secret",
                                        s3.secret_key_secret: "restic_s3.secret_key_secret"}))
    return out


def alerts() -> list[dict]:
    return [RESTIC_ALERTS]


def repository(settings: Settings) -> str:
    s3 = settings.restic_s3
    if not s3:
        return settings.restic_repository
    endpoint = s3.endpoint_url or f"https://s3.{s3.region}.amazonaws.com"
    return f"s3:{endpoint}/{s3.bucket}" + (f"/{s3.path.strip('/')}" if s3.path.strip("/") else "")


class ResticInitialised(FactBase):
    """True when the repository answers with its config; None before keel-restic exists."""

    requires_command = "restic"

    def command(self) -> str:
        return (f"[ -x {TOOL} ] && [ -r {RUN_DIR}/{PASSWORD} ] || exit 0; "
                f"{TOOL} initialised >/dev/null 2>&1 && echo yes || echo no")

    def process(self, output):
        return {"yes": True, "no": False}.get("".join(output).strip())


@operation()
def initialise(path: str):
    if host.get_fact(ResticInitialised):
        host.noop(f"restic repository {path} exists")
        return
    yield f"{TOOL} init"


@deploy("restic")
def apply(settings: Settings) -> None:
    if not settings.restic_enabled:
        return
    apt.packages(name="Install restic", packages=["restic"], no_recommends=True)
    if not settings.restic_s3:
        files.directory(name="restic repository", path=settings.restic_repository,
                        user="root", group="root", mode="0700")
    files.directory(name="restic cache", path="/var/cache/restic", user="root", group="root",
                    mode="0700")
    files_ = {f.dest: f for f in secrets(settings)}
    for dest, file in files_.items():
        deliver(name=f"Deliver {dest}", file=file)
    managed_file(name="Install keel-restic", dest=TOOL, mode="0755",
                 content=(Path(__file__).parent / "scripts/keel_restic.py").read_text())
    config = {"_": "managed by keel: roles/restic", "repository": repository(settings),
              "password_file": files_[PASSWORD].path,
              "s3_env": files_[S3_ENV].path if S3_ENV in files_ else None,
              "sets": [s.model_dump() for s in settings.restic_sets],
              "keep": {"daily": settings.restic_keep_daily,
                       "weekly": settings.restic_keep_weekly,
                       "monthly": settings.restic_keep_monthly},
              "metrics_dir": settings.restic_metrics_dir}
    managed_file(name="Write backup settings", dest="/etc/keel/restic.json",
                 content=json.dumps(config, indent=1) + "\n")
    initialise(name="Initialise the restic repository", path=repository(settings))
    unit_files("restic", ["keel-restic.service", "keel-restic.timer"], label="restic",
               settings=settings)
    service(name="Enable the backup timer", service="keel-restic.timer", running=True,
            enabled=True)


ROLE = Role(name="restic", settings=Settings, apply=apply, groups=("app",), secrets=secrets,
            alerts=alerts)
