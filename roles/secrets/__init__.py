"""secrets: the host's own age identity and the unit that decrypts secrets into tmpfs.

Roles deliver their own secret files with keel.secrets.deliver; this role must run before
them (it does in site order).
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import File
from pyinfra.operations import apt, files, server

from keel.data import settings
from keel.ops import config_file, service
from keel.secrets import (
    DECRYPT,
    HOST_KEY,
    HOST_PUB,
    RUN_DIR,
    STORE_DIR,
    SecretFiles,
    declared,
)
from roles.secrets.schema import Schema  # noqa: F401  (read by keel.data)

DEFAULTS = {
    # Remove secrets the host's roles no longer declare (encrypted copy and /run copy).
    "secrets_prune": True,
}

PATHS = {"run_dir": RUN_DIR, "store_dir": STORE_DIR, "host_key": HOST_KEY,
         "script": DECRYPT}


@deploy("secrets")
def apply() -> None:
    data = settings("secrets")
    apt.packages(name="Install age", packages=["age"], no_recommends=True)
    files.directory(name="/etc/keel", path="/etc/keel", mode="0755")
    files.directory(name="Host identity directory", path="/etc/keel/age", mode="0700")
    files.directory(name="Encrypted secrets directory", path=STORE_DIR, mode="0700")
    if host.get_fact(File, path=HOST_KEY) is None:
        # Made on the host; the private key never leaves it.
        server.shell(name="Generate the host's age identity", commands=[
            f"umask 077 && age-keygen -o {HOST_KEY} 2>/dev/null",
            f"age-keygen -y {HOST_KEY} > {HOST_PUB}",
        ])
    config_file("secrets", "keel-secrets.sh", DECRYPT, mode="0755",
                name="Install the secrets decrypt script", **PATHS)
    unit = config_file("secrets", "keel-secrets.service",
                       "/etc/systemd/system/keel-secrets.service",
                       name="Install keel-secrets.service", **PATHS)
    service(name="Enable keel-secrets at boot", service="keel-secrets", running=True,
            enabled=True, daemon_reload=unit.will_change)
    if data.secrets_prune:
        wanted = {f.dest for f in declared(settings, host.data.keel_roles)}
        stale = sorted(set(host.get_fact(SecretFiles)) - wanted)
        if stale:
            server.shell(name=f"Remove secrets no role declares: {', '.join(stale)}", commands=[
                f"rm -f {STORE_DIR}/{d}.age {STORE_DIR}/{d}.meta {RUN_DIR}/{d}" for d in stale
            ])
