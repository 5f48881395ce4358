"""redis on a real sandbox host: idempotence with passwords, ACL users, refusals, memory and
persistence across restarts, rotation, and no plaintext anywhere."""

import hashlib
import subprocess

import pytest

from keel import ROOT
from keel.lab.testing import run_testinfra, ssh

pytestmark = pytest.mark.sandbox
DATA = ROOT / "roles/redis/tests/data.py"
DEPLOY = "tests/deploys/data_services.py"
# The exporter on cache hosts needs its ACL user's secret to validate.
PASSWORDS = {"redis_app_password": "redis-Pw-4d8e1c2b", "redis_exporter_password": "exp-Pw-0b9e"}


def changed(run, host: str = "d-cache1") -> list[str]:
    return [op.split(" | ", 1)[-1] for op in run.changed().get(host, [])]


def cli(host, *args: str, password: str | None = None, user: str = "app") -> str:
    """redis-cli against the host's own inventory address; the password goes on stdin."""
    auth = "read -r REDISCLI_AUTH; export REDISCLI_AUTH; " if password else ""
    command = f"{auth}redis-cli -h {host.address} {'--user ' + user if password else ''} " \
              + " ".join(args)
    proc = subprocess.run(host.ssh_argv(command), input=(password or "") + "\n",
                          capture_output=True, text=True, timeout=60)
    return (proc.stdout + proc.stderr).strip()


@pytest.fixture(scope="module")
def cache(sandbox_hosts):
    (host,) = sandbox_hosts("d-cache1")
    return host


@pytest.fixture(scope="module")
def converged(cache, harness, secrets_env):
    for name, value in PASSWORDS.items():
        secrets_env.set(name, value)
    assert ssh(cache, "apt-get update -qq", timeout=300).returncode == 0
    inventory = harness.inventory({"cache": [cache]}, data_files=[DATA])
    return inventory, harness.assert_idempotent(inventory, DEPLOY)


def test_converges_then_nothing_to_do(converged):
    _, (first, second, plan) = converged
    assert "Deliver ACL users (password hashes)" in changed(first)
    assert second.changed() == {} and plan.changed() == {}


def test_testinfra_checks(converged, cache):
    result = run_testinfra([cache], ROOT / "roles/redis/tests")
    assert result.returncode == 0, result.stdout + result.stderr


def test_acl_user_works_and_the_rest_is_refused(converged, cache):
    password = PASSWORDS["redis_app_password"]
    assert cli(cache, "set", "app:k", "v", password=password) == "OK"
    assert cli(cache, "get", "app:k", password=password) == "v"
    assert "NOAUTH" in cli(cache, "get", "app:k")  # the default user is off
    assert "WRONGPASS" in cli(cache, "ping", password="wrong")
    assert "NOPERM" in cli(cache, "flushall", password=password)  # disabled command
    assert "NOPERM" in cli(cache, "config", "get", "maxmemory", password=password)
    assert "NOPERM" in cli(cache, "set", "other:k", "v", password=password)  # key pattern
    info = cli(cache, "info", "memory", password=password)
    assert "maxmemory:67108864" in info and "maxmemory_policy:allkeys-lfu" in info


def test_no_plaintext_anywhere(converged, cache):
    _, runs = converged
    password = PASSWORDS["redis_app_password"]
    for run in runs:
        assert password not in run.output
    found = ssh(cache, f"grep -rIlF -- '{password}' /etc /var/lib/redis /var/log /run /root "
                       "/tmp; true").stdout
    assert found == ""


def _run_id(cache) -> str:
    info = cli(cache, "info", "server", password=PASSWORDS["redis_app_password"])
    return next(line.split(":")[1] for line in info.splitlines() if line.startswith("run_id:"))


def test_config_change_restarts_and_keeps_data(converged, cache, harness):
    password = PASSWORDS["redis_app_password"]
    assert cli(cache, "set", "app:kept", "1", password=password) == "OK"
    before = _run_id(cache)
    inventory = harness.inventory({"cache": [cache]}, data_files=[DATA],
                                  data={"redis_maxmemory": "32MB"}, name="smaller")
    run = harness.converge(inventory, DEPLOY)
    assert set(changed(run)) == {"Write redis.conf", "Restart redis-server"}
    assert _run_id(cache) != before
    assert cli(cache, "get", "app:kept", password=password) == "1"
    assert "maxmemory:33554432" in cli(cache, "info", "memory", password=password)


def test_password_rotation(converged, cache, harness, secrets_env):
    inventory, _ = converged
    old, new = PASSWORDS["redis_app_password"], "redis-Pw-rotated-0b9f"
    secrets_env.set("redis_app_password", new)
    PASSWORDS["redis_app_password"] = new
    run = harness.converge(inventory, DEPLOY, args=["--debug", "-vvv"])
    assert "Deliver ACL users (password hashes)" in changed(run)
    assert new not in run.output and old not in run.output
    assert hashlib.sha256(new.encode()).hexdigest() not in run.output
    assert cli(cache, "get", "app:kept", password=new) == "1"
    assert "WRONGPASS" in cli(cache, "ping", password=old)
