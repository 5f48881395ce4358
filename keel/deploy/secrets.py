"""Secrets at rest on the hosts: the repo's store is keel.core.store, declarations are
keel.core.secrets.SecretFile.

A role declares the files it needs with its `secrets` hook and delivers them
with `deliver(file)` after it has created the consuming user and before it starts the
consumer. On the host the value is kept only encrypted to the host's own age identity
(`/etc/keel/secrets/<dest>.age`); `keel-secrets.service` decrypts into tmpfs at
`/run/keel/secrets/<dest>`, owned by the consumer. Change detection compares the SHA-256 of
the decrypted file, so the plaintext never leaves the controller's memory except encrypted.
"""

from __future__ import annotations

import hashlib
from io import BytesIO

import pyrage
from pyinfra import host
from pyinfra.api import FactBase, FileUploadCommand, StringCommand
from pyinfra.api.exceptions import PyinfraError
from pyrage import x25519

from keel.core import store
from keel.core.secrets import RUN_DIR, SecretFile
from keel.deploy.ops import log_masked_diff, operation

STORE_DIR = "/etc/keel/secrets"
HOST_KEY = "/etc/keel/age/host.key"
HOST_PUB = "/etc/keel/age/host.pub"
DECRYPT = "/usr/local/sbin/keel-secrets"


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
    current = host.get_fact(SecretFiles).get(file.dest)
    if current and current["meta"] == file.meta and current["owner"] == file.owner \
            and current["group"] == file.group and current["mode"] == int(file.mode, 8) \
            and current["sha256"] == hashlib.sha256(content).hexdigest():
        host.noop(f"secret {file.dest} is up to date")
        return
    log_masked_diff(file.path, content.decode(errors="replace"))
    yield from store_commands(file, content)


def store_commands(file: SecretFile, content: bytes):
    """Commands that store content as this secret file: encrypted to the host's identity at
    rest, decrypted into /run. For operations that make the content themselves."""
    stored = f"{STORE_DIR}/{file.dest}"
    yield StringCommand("install", "-d", "-m", "0700", stored.rsplit("/", 1)[0])
    yield _EncryptedUpload(f"{stored}.age.new", content)
    # pyinfra runs each command in `sh -c` already: no nested shell (it would eat the rest).
    yield StringCommand(
        f"umask 077 && echo '{file.meta}' > '{stored}.meta' && chmod 600 '{stored}.age.new' && "
        f"mv -f '{stored}.age.new' '{stored}.age' && {DECRYPT} '{file.dest}'")
