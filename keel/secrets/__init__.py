"""Secrets: age-encrypted in the repo (store.py) and at rest on the hosts (this module).

A role declares the files it needs with `secrets(settings) -> [SecretFile]` and delivers them
with `deliver(file)` after it has created the consuming user and before it starts the
consumer. On the host the value is kept only encrypted to the host's own age identity
(`/etc/keel/secrets/<dest>.age`); `keel-secrets.service` decrypts into tmpfs at
`/run/keel/secrets/<dest>`, owned by the consumer. Change detection compares the SHA-256 of
the decrypted file, so the plaintext never leaves the controller's memory except encrypted.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any

import pyrage
from pyinfra import host
from pyinfra.api import FactBase, FileUploadCommand, StringCommand, operation
from pyinfra.api.exceptions import PyinfraError
from pyrage import x25519

from keel.ops import jinja
from keel.secrets import store

RUN_DIR = "/run/keel/secrets"
STORE_DIR = "/etc/keel/secrets"
HOST_KEY = "/etc/keel/age/host.key"
HOST_PUB = "/etc/keel/age/host.pub"
DECRYPT = "/usr/local/sbin/keel-secrets"
DEST = re.compile(r"^[a-z0-9][a-z0-9_.-]*(/[a-z0-9][a-z0-9_.-]*)*$")


@dataclass(frozen=True)
class SecretFile:
    """One file under /run/keel/secrets.

    Its content is either a secret's value (`secret`) or a template under templates/ rendered
    with `secret(name)` available (`template`, naming the secrets it uses in `uses`).
    """

    dest: str
    secret: str | None = None
    template: str | None = None
    uses: tuple[str, ...] = ()
    context: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    owner: str = "root"
    group: str = "root"
    mode: str = "0400"

    def __post_init__(self):
        if not DEST.match(self.dest):
            raise ValueError(f"secret destination {self.dest!r} must be a relative path")
        if (self.secret is None) == (self.template is None):
            raise ValueError("a SecretFile has either secret= or template=")

    @property
    def names(self) -> tuple[str, ...]:
        return (self.secret,) if self.secret else self.uses

    @property
    def path(self) -> str:
        return f"{RUN_DIR}/{self.dest}"

    def content(self, env: str) -> bytes:
        if self.secret:
            return store.value(env, self.secret).encode()

        def secret(name: str) -> str:
            if name not in self.uses:
                raise KeyError(f"template {self.template} uses secret {name} not in uses=")
            return store.value(env, name)

        template = jinja().get_template(self.template)
        return template.render(secret=secret, **self.context).encode()


def value(name: str) -> str:
    """A secret's value for the current host's environment (controller side only)."""
    return store.value(host.data.keel_env, name)


class SecretFiles(FactBase):
    """dest -> {meta, owner, group, mode, sha256} for every secret stored on the host."""

    default = dict

    def command(self) -> str:
        return (
            f"[ -d {STORE_DIR} ] && cd {STORE_DIR} && find . -name '*.age' -type f | "
            "while read -r f; do r=${f#./}; r=${r%.age}; m=$(cat \"$r.meta\" 2>/dev/null); "
            f"p={RUN_DIR}/$r; "
            "if [ -f \"$p\" ]; then s=$(stat -c '%U %G %a' \"$p\"); "
            "h=$(sha256sum < \"$p\" | cut -c1-64); else s='- - -'; h=-; fi; "
            "echo \"$r|$m|$s|$h\"; done || true"
        )

    def process(self, output):
        found = {}
        for line in output:
            dest, meta, stat, digest = line.split("|")
            owner, group, mode = stat.split()
            found[dest] = {"meta": meta, "owner": owner, "group": group,
                           "mode": None if mode == "-" else int(mode, 8), "sha256": digest}
        return found


class _EncryptedUpload(FileUploadCommand):
    """Uploads a value encrypted to the host's own age key, read when the command runs:
    on a fresh host the secrets role makes that key earlier in the same run."""

    def __init__(self, dest: str, content: bytes):
        super().__init__(src=None, dest=dest)
        self._content = content

    def __repr__(self) -> str:
        return f"EncryptedUpload({self.dest})"

    def execute(self, state, host, connector_arguments):
        ok, output = host.run_shell_command(StringCommand("cat", HOST_PUB),
                                            **connector_arguments)
        if not ok:
            raise PyinfraError(f"{host.name} has no keel age identity ({HOST_PUB}); "
                               "apply the secrets role first (deploys/secrets.py or site)")
        recipient = x25519.Recipient.from_str(output.stdout.strip())
        self.src = BytesIO(pyrage.encrypt(self._content, [recipient]))
        return super().execute(state, host, connector_arguments)


@operation()
def deliver(file: SecretFile):
    """Ensure one secret file is on the host: encrypted at rest, decrypted under /run."""
    content = file.content(host.data.keel_env)
    meta = f"{file.owner} {file.group} {file.mode}"
    current = host.get_fact(SecretFiles).get(file.dest)
    if current and current["meta"] == meta and current["owner"] == file.owner \
            and current["group"] == file.group and current["mode"] == int(file.mode, 8) \
            and current["sha256"] == hashlib.sha256(content).hexdigest():
        host.noop(f"secret {file.dest} is up to date")
        return
    stored = f"{STORE_DIR}/{file.dest}"
    yield StringCommand("install", "-d", "-m", "0700", stored.rsplit("/", 1)[0])
    yield _EncryptedUpload(f"{stored}.age.new", content)
    yield StringCommand("sh", "-c", (
        f"umask 077 && echo '{meta}' > '{stored}.meta' && chmod 600 '{stored}.age.new' && "
        f"mv -f '{stored}.age.new' '{stored}.age' && {DECRYPT} '{file.dest}'"))


def declared(settings_of, roles: list[str]) -> list[SecretFile]:
    """Every SecretFile the given roles declare (settings_of(role) -> settings)."""
    from keel.roles import role_module

    files = []
    for role in roles:
        declare = getattr(role_module(role), "secrets", None)
        if declare is not None:
            files.extend(declare(settings_of(role)))
    return files


def check_hosts(hosts, decrypt: bool) -> list:
    """Every secret the hosts' roles need exists in secrets/<env>.yaml and (if decrypt) opens
    with the operator's identity: checked before any host is touched."""
    from keel.data import Problem, settings
    from keel.errors import KeelError
    from keel.roles import role_module

    problems, seen = [], set()
    for host_data in hosts:
        env = host_data.env
        source = f"secrets/{env}.yaml"
        for role in host_data.roles:
            declare = getattr(role_module(role), "secrets", None)
            if declare is None:
                continue
            for file in declare(settings(role, host_data.values)):
                for name in file.names:
                    if name not in store.names(env):
                        problems.append(Problem(
                            host_data.name, name, source,
                            f"secret needed by role {role} is not set in environment {env}; "
                            f"set it with `keel secrets set {env} {name}`"))
                    elif decrypt and (env, name) not in seen:
                        seen.add((env, name))
                        try:
                            store.value(env, name)
                        except KeelError as exc:
                            problems.append(Problem(host_data.name, name, source, str(exc)))
                            if "identity" in str(exc):
                                return problems  # one identity problem says it all
    return problems
