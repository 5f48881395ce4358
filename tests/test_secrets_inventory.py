"""Secret problems stop a pyinfra run while the inventory loads: no host is contacted."""

import pytest

from keel.core import store
from keel.lab.sandbox import Host

NOWHERE = Host("s-bad1", "198.51.100.251", False, "running")
DATA = {"postgres_roles": [{"name": "app", "password_secret": "postgres_app_password"}]}


@pytest.fixture
def run(harness, secrets_env):
    secrets_env.set("postgres_app_password", "value-for-test")

    def run(data=DATA, **env):
        inventory = harness.inventory({"db": [NOWHERE]}, data=data, name="secret_problems")
        result = harness.run(inventory, "deploys/site.py", env=env)
        assert result.returncode == 2, result.output
        assert "Connecting to hosts" not in result.output
        return result.stderr

    yield run
    secrets_env.set("postgres_app_password", "value-for-test")  # undo a corrupted value


def test_identity_that_is_not_a_recipient(run, tmp_path, monkeypatch):
    monkeypatch.setenv("KEEL_AGE_KEY_FILE", str(tmp_path / "stranger.txt"))
    store.create_identity()
    stderr = run(KEEL_AGE_KEY_FILE=str(tmp_path / "stranger.txt"))
    assert "postgres_app_password in environment sandbox: your identity" in stderr
    assert "is not a recipient" in stderr


def test_missing_identity(run, tmp_path):
    stderr = run(KEEL_AGE_KEY_FILE=str(tmp_path / "absent.txt"))
    assert "no age identity at" in stderr and "postgres_app_password" in stderr


def test_corrupted_value(run):
    path = store.env_file("sandbox")
    path.write_text(path.read_text().replace("postgres_app_password: ENC[age:",
                                             "postgres_app_password: ENC[age:AAAA"))
    stderr = run()
    assert "secret postgres_app_password in environment sandbox is corrupted" in stderr


def test_unknown_secret(run):
    stderr = run({"postgres_roles": [{"name": "app", "password_secret": "postgres_nope"}]})
    assert "s-bad1: postgres_roles[0].password_secret (set in" in stderr
    assert "secret postgres_nope (needed by role postgres) is not set" in stderr
