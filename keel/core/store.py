"""Secrets in the repo: `secrets/<env>.yaml`, one age-encrypted value per readable key.

Values are encrypted (pyrage, age X25519) to the environment's recipients listed in
`secrets/<env>.recipients`. The operator's identity lives in `~/.config/keel/age/keys.txt`
(or `$KEEL_AGE_KEY_FILE`). Decryption is lazy and cached per process.
"""

from __future__ import annotations

import base64
import os
import re
import secrets as random
import string
from pathlib import Path

import pyrage
import yaml
from pyrage import x25519

from keel import ROOT
from keel.errors import KeelError

PREFIX, SUFFIX = "ENC[age:", "]"
HEADER = ("# keel secrets for environment {env}: keys are readable, values are age-encrypted\n"
          "# to the recipients in {env}.recipients. Change them with `keel secrets`.\n")
NAME = re.compile(r"^[a-z][a-z0-9_]*$")

_plain: dict[tuple[str, str], str] = {}


def secrets_dir() -> Path:
    return Path(os.environ.get("KEEL_SECRETS_DIR") or ROOT / "secrets")


def identity_file() -> Path:
    default = Path.home() / ".config/keel/age/keys.txt"
    return Path(os.environ.get("KEEL_AGE_KEY_FILE") or default)


# --- identities and recipients -------------------------------------------------------------

def identities() -> list[x25519.Identity]:
    path = identity_file()
    if not path.exists():
        raise KeelError(f"no age identity at {path}: run `keel secrets init <env>` "
                        "(or set KEEL_AGE_KEY_FILE)")
    keys = [line.strip() for line in path.read_text().splitlines()
            if line.strip().startswith("AGE-SECRET-KEY-")]
    if not keys:
        raise KeelError(f"{path} holds no AGE-SECRET-KEY line")
    return [x25519.Identity.from_str(key) for key in keys]


def create_identity() -> tuple[Path, str, bool]:
    """The identity file (made if missing), its first public key, and whether it was made."""
    path = identity_file()
    created = not path.exists()
    if created:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        identity = x25519.Identity.generate()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"# public key: {identity.to_public()}\n{identity}\n")
    return path, str(identities()[0].to_public()), created


def recipients_file(env: str) -> Path:
    return secrets_dir() / f"{env}.recipients"


def recipients(env: str) -> list[str]:
    """The environment's age public keys: one per line, # comments allowed."""
    path = recipients_file(env)
    if not path.exists():
        return []
    return [line.split("#")[0].strip() for line in path.read_text().splitlines()
            if line.split("#")[0].strip()]


def set_recipients(env: str, keys: list[str]) -> None:
    for key in keys:
        try:
            x25519.Recipient.from_str(key)
        except Exception:
            raise KeelError(f"{key!r} is not an age public key (age1...)") from None
    path = recipients_file(env)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# age public keys that the {env} secrets are encrypted to\n"
                    + "".join(f"{key}\n" for key in dict.fromkeys(keys)))


# --- the env file ---------------------------------------------------------------------------

def env_file(env: str) -> Path:
    return secrets_dir() / f"{env}.yaml"


def load(env: str) -> dict[str, str]:
    """name -> encrypted value (as stored)."""
    path = env_file(env)
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise KeelError(f"{path}: expected a mapping of secret names to encrypted values")
    return data


def names(env: str) -> set[str]:
    return set(load(env))


def save(env: str, data: dict[str, str]) -> None:
    path = env_file(env)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = yaml.safe_dump(dict(sorted(data.items())), width=1000, default_flow_style=False)
    path.write_text(HEADER.format(env=env) + body)


def encrypt(env: str, plaintext: str) -> str:
    keys = recipients(env)
    if not keys:
        raise KeelError(f"environment {env} has no recipients in {recipients_file(env)}: "
                        f"run `keel secrets init {env}` or `keel secrets add-recipient`")
    blob = pyrage.encrypt(plaintext.encode(), [x25519.Recipient.from_str(k) for k in keys])
    return PREFIX + base64.b64encode(blob).decode() + SUFFIX


def decrypt(env: str, name: str, stored: str) -> str:
    if not (isinstance(stored, str) and stored.startswith(PREFIX) and stored.endswith(SUFFIX)):
        raise KeelError(f"secret {name} in environment {env} is corrupted "
                        f"(not an ENC[age:...] value) in {env_file(env)}")
    try:
        blob = base64.b64decode(stored[len(PREFIX):-len(SUFFIX)], validate=True)
    except ValueError:
        raise KeelError(f"secret {name} in environment {env} is corrupted "
                        f"(bad base64) in {env_file(env)}") from None
    try:
        return pyrage.decrypt(blob, identities()).decode()
    except pyrage.DecryptError as exc:
        if "No matching keys" in str(exc):
            raise KeelError(f"secret {name} in environment {env}: your identity "
                            f"({identity_file()}) is not a recipient of it; ask someone who is "
                            f"to add your public key and run `keel secrets rekey {env}`") from None
        raise KeelError(f"secret {name} in environment {env} is corrupted ({exc}) "
                        f"in {env_file(env)}") from None


def value(env: str, name: str) -> str:
    """A secret's plaintext, decrypted on first use and cached for this process."""
    if (env, name) not in _plain:
        data = load(env)
        if name not in data:
            raise KeelError(f"unknown secret {name} in environment {env} ({env_file(env)}); "
                            f"set it with `keel secrets set {env} {name}`")
        _plain[(env, name)] = decrypt(env, name, data[name])
    return _plain[(env, name)]


def put(env: str, name: str, plaintext: str) -> None:
    if not NAME.match(name):
        raise KeelError(f"secret names are lower_snake_case: {name!r}")
    data = load(env)
    data[name] = encrypt(env, plaintext)
    save(env, data)
    _plain[(env, name)] = plaintext


def generate(length: int = 32) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(random.choice(alphabet) for _ in range(length))


def rekey(env: str) -> int:
    """Re-encrypt every value to the current recipients. Returns how many."""
    data = load(env)
    plain = {name: decrypt(env, name, stored) for name, stored in data.items()}
    save(env, {name: encrypt(env, text) for name, text in plain.items()})
    return len(plain)
