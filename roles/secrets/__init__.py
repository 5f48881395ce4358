"""secrets: the host's own age identity and the unit that decrypts secrets into tmpfs.

Roles deliver their own secret files with keel.deploy.secrets.deliver; this role must run before
them (it does in site order).
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import File
from pyinfra.operations import apt, files, server, systemd

from keel.core.roles import Role, role
from keel.core.secrets import RUN_DIR
from keel.deploy.ops import config_file, service
from keel.deploy.secrets import DECRYPT, HOST_KEY, HOST_PUB, STORE_DIR, SecretFiles
from keel.deploy.site import settings as role_settings
from roles.secrets.schema import Settings

PATHS = {"run_dir": RUN_DIR, "store_dir": STORE_DIR, "host_key": HOST_KEY,
         "script": DECRYPT}


@deploy("secrets")
def apply(settings: Settings) -> None:
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
                       name="Install keel-secrets.service",
                       check="systemd-analyze verify /etc/systemd/system/keel-secrets.service",
                       **PATHS)
    systemd.daemon_reload(name="Reload systemd units", _if=unit.did_change)
    service(name="Enable keel-secrets at boot", service="keel-secrets", running=True,
            enabled=True)
    if settings.secrets_prune:
        wanted = {f.dest for name in host.data.keel_roles
                  for f in role(name).secrets(role_settings(name))}
        stale = sorted(set(host.get_fact(SecretFiles)) - wanted)
        if stale:
            server.shell(name=f"Remove secrets no role declares: {', '.join(stale)}", commands=[
                f"rm -f {STORE_DIR}/{d}.age {STORE_DIR}/{d}.meta {RUN_DIR}/{d}" for d in stale
            ])


ROLE = Role(name="secrets", settings=Settings, apply=apply, groups=("all",))
