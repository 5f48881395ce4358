"""`keel secrets` on the controller: set/get, rekey, recipients and clear errors."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

KEEL = str(Path(sys.executable).parent / "keel")


@pytest.fixture
def env(tmp_path):
    """An isolated secrets dir and identity; returns a runner for `keel secrets ...`."""
    base = {**os.environ, "KEEL_SECRETS_DIR": str(tmp_path / "secrets"),
            "KEEL_AGE_KEY_FILE": str(tmp_path / "me.txt"), "EDITOR": "true"}

    def keel(*args, stdin="", key=None):
        run_env = dict(base, KEEL_AGE_KEY_FILE=str(key)) if key else base
        return subprocess.run([KEEL, "secrets", *args], input=stdin, capture_output=True,
                              text=True, env=run_env)

    keel.dir = tmp_path / "secrets"
    keel.tmp = tmp_path
    assert keel("init", "prod").returncode == 0
    return keel


def test_init_creates_private_identity(env):
    identity = env.tmp / "me.txt"
    assert identity.stat().st_mode & 0o777 == 0o600
    assert "AGE-SECRET-KEY-" in identity.read_text()
    assert (env.dir / "prod.recipients").read_text().count("age1") == 1


def test_set_then_get(env):
    assert env("set", "prod", "db_password", stdin="s3cr3t-value\n").returncode == 0
    assert env("get", "prod", "db_password").stdout == "s3cr3t-value\n"
    stored = (env.dir / "prod.yaml").read_text()
    assert "db_password: ENC[age:" in stored and "s3cr3t-value" not in stored


def test_generate_and_view(env):
    assert env("generate", "prod", "hmac_key", "--length", "48").returncode == 0
    value = env("get", "prod", "hmac_key").stdout.strip()
    assert len(value) == 48 and value.isalnum()
    assert f"hmac_key: {value}" in env("view", "prod").stdout


def test_edit_keeps_unchanged_ciphertext(env):
    env("set", "prod", "a", stdin="one")
    env("set", "prod", "b", stdin="two")
    before = (env.dir / "prod.yaml").read_text()
    assert env("edit", "prod").returncode == 0  # EDITOR=true: no change
    assert (env.dir / "prod.yaml").read_text() == before
    assert not list(env.tmp.glob("keel-secrets-*"))


def test_rekey_to_a_new_recipient(env, tmp_path):
    env("set", "prod", "api_key", stdin="k-123")
    other = tmp_path / "other.txt"
    init = env("init", "prod", key=other)
    public = init.stdout.split("public key: ")[1].split()[0]
    assert "not a recipient yet" in init.stdout
    assert env("get", "prod", "api_key", key=other).returncode == 1
    assert env("add-recipient", "prod", public).returncode == 0
    assert env("rekey", "prod").returncode == 0
    mine = (tmp_path / "me.txt").read_text().split("# public key: ")[1].split()[0]
    assert env("remove-recipient", "prod", mine).returncode == 0
    assert env("rekey", "prod").returncode == 0
    # The new identity alone decrypts; the old one no longer does.
    assert env("get", "prod", "api_key", key=other).stdout == "k-123\n"
    denied = env("get", "prod", "api_key")
    assert denied.returncode == 1 and "is not a recipient" in denied.stderr
    assert "api_key" in denied.stderr and "prod" in denied.stderr


def test_errors_name_environment_and_key(env, tmp_path):
    env("set", "prod", "token", stdin="t")
    missing = env("get", "prod", "nope")
    assert missing.returncode == 1 and "unknown secret nope in environment prod" in missing.stderr
    no_identity = env("get", "prod", "token", key=tmp_path / "absent.txt")
    assert no_identity.returncode == 1 and "no age identity" in no_identity.stderr
    path = env.dir / "prod.yaml"
    path.write_text(path.read_text().replace("ENC[age:", "ENC[age:AAAA"))
    corrupted = env("get", "prod", "token")
    assert corrupted.returncode == 1
    assert "secret token in environment prod is corrupted" in corrupted.stderr


def test_value_never_read_from_argv(env):
    # `set` takes no value argument at all: the value comes from stdin or a prompt.
    proc = env("set", "prod", "x", "value-on-argv")
    assert proc.returncode == 2


def test_ca_ensure_makes_the_ca_once(env):
    run_env = {**os.environ, "KEEL_SECRETS_DIR": str(env.dir),
               "KEEL_AGE_KEY_FILE": str(env.tmp / "me.txt")}

    def ca(*args):
        return subprocess.run([KEEL, "ca", *args, "prod"], capture_output=True, text=True,
                              env=run_env)

    first = ca("ensure")
    assert first.returncode == 0 and first.stdout.startswith("-----BEGIN CERTIFICATE-----")
    assert ca("ensure").stdout == first.stdout == ca("cert").stdout
    refused = ca("init")
    assert refused.returncode != 0 and "already has a CA" in refused.stderr
