"""The environments' inventories load, validate and show their data; no host is contacted."""

from __future__ import annotations

import ast
import ipaddress
import json
import subprocess

import pytest

from keel import ROOT
from keel.core.inventory import envs, load
from keel.core.roles import SITE
from keel.lab.sandbox import TOPOLOGIES, Host
from keel.lab.testing import BIN

TOPOLOGY = {"app": 2, "agent": 2, "edge": 2, "db": 1, "cache": 1, "mon": 1}


def _keel(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "keel"), *args], cwd=ROOT, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120)


@pytest.fixture(scope="module", autouse=True)
def env_secrets(secrets_env):
    """Each environment's secrets, made as an operator bootstraps one (in the test's own
    throwaway secrets directory): an inventory is valid once the secrets its roles need exist."""
    for env in ("dev", "staging", "prod"):
        for action in ("init", "ensure"):
            proc = _keel("secrets", action, env)
            assert proc.returncode == 0, proc.stderr


def test_every_environment_has_an_inventory():
    assert {"dev", "staging", "prod", "sandbox"} <= set(envs())


@pytest.mark.parametrize("env", ["dev", "staging", "prod", "sandbox"])
def test_inventory_loads_in_pyinfra(env, monkeypatch):
    # Sandbox hosts that others run on this machine stay out (no host has this prefix).
    monkeypatch.setenv("KEEL_SANDBOX_PREFIX", "e-inv-")
    proc = subprocess.run(
        [str(BIN / "pyinfra"), "--json", f"inventories/{env}.py", "debug-inventory"],
        cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Connecting to hosts" not in proc.stderr
    hosts = {host["name"]: host for host in json.loads(proc.stdout)}
    loaded = load(env)
    assert set(hosts) == {host.name for host in loaded.hosts}
    assert loaded.problems == []
    for host in loaded.hosts:
        assert hosts[host.name]["data"]["keel_env"] == env
        assert set(host.groups) <= set(hosts[host.name]["groups"])


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_fleet_topology(env):
    loaded = load(env)
    members = {group: [h.name for h in loaded.hosts if group in h.groups] for group in TOPOLOGY}
    assert {group: len(names) for group, names in members.items()} == TOPOLOGY
    addresses = [ipaddress.ip_address(h.values["keel_address"]) for h in loaded.hosts]
    assert all(a.is_private for a in addresses) and len(set(addresses)) == len(addresses)
    assert all(h.values["ssh_hostname"].endswith(f".{env}.example.net") for h in loaded.hosts)


def test_dev_is_one_host_in_every_group():
    (host,) = load("dev").hosts
    assert set(host.groups) == set(TOPOLOGY)


def test_sandbox_is_the_prod_topology():
    assert set(TOPOLOGIES["prod"]) == {h.name for h in load("prod").hosts}
    assert {h.name for h in load("sandbox").hosts} <= set(TOPOLOGIES["prod"])


def test_layers_later_wins_with_provenance():
    db1 = load("prod").host("db1")
    assert db1.sources["ssh_user"] == "group_data/all.py"
    assert db1.sources["base_sshd_sources"] == "group_data/prod.py"
    assert db1.sources["base_journald_max_use"] == "group_data/db.py"
    assert db1.sources["keel_address"] == "inventories/prod.py"
    assert db1.sources["base_timezone"] == "roles/base/schema.py (default)"
    assert load("staging").host("db1").values["keel_address"] != db1.values["keel_address"]


def test_keel_data_shows_each_value_with_its_file():
    proc = _keel("data", "prod", "db1")
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[0]: line for line in proc.stdout.splitlines()[1:] if line.strip()}
    assert lines["base_journald_max_use"].endswith("# group_data/db.py")
    assert "'500M'" in lines["base_journald_max_use"]
    assert lines["keel_address"].endswith("# inventories/prod.py")
    data = json.loads(_keel("data", "prod", "--json", "--no-defaults").stdout)
    assert set(data) == {"app1", "app2", "db1", "cache1", "mon1"}
    assert data["mon1"]["data"]["base_journald_max_use"] == {
        "value": "1G", "source": "group_data/mon.py"}
    assert "base_timezone" not in data["mon1"]["data"]  # a default


def test_keel_data_reports_bad_data(harness):
    nowhere = Host("e-bad1", "198.51.100.250", False, "running")
    inventory = harness.inventory({"app": [nowhere]}, data={"base_timezon": "UTC"})
    proc = _keel("data", str(inventory))
    assert proc.returncode == 2
    assert "e-bad1: base_timezon" in proc.stderr and "did you mean 'base_timezone'" in proc.stderr


def test_unknown_environment():
    proc = _keel("plan", "prdo")
    assert proc.returncode == 1 and "no environment 'prdo'" in proc.stderr
    assert "prod" in proc.stderr


def test_drift_fails_on_an_unreachable_host(harness):
    """An unreachable host is neither converged nor drifted: exit 1, not 0 or 2."""
    # Outside the addresses keel gives sandbox hosts (.10-.250): nothing answers there.
    nowhere = Host("e-gone1", "198.51.100.253", False, "running")
    inventory = harness.inventory({"app": [nowhere]}, host_data={
        "e-gone1": {"ssh_connect_timeout": 2}}, name="unreachable")
    proc = _keel("drift", str(inventory), "--deploy", "deploys/base.py")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "the dry run failed" in proc.stderr


@pytest.mark.parametrize("role", SITE)
def test_role_reads_other_hosts_from_inventory_data(role):
    """Facts come from the current host only (`host.get_fact`): other hosts' come from their
    inventory data, so a --limit run never connects to them."""
    offenders = []
    for path in (ROOT / "roles" / role).rglob("*.py"):
        # Not deploy code: test data, scenarios, and the source of images built from the role.
        if {"tests", "molecule", "image"} & set(path.relative_to(ROOT / "roles" / role).parts):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("get_fact", "run_shell_command", "connect")):
                continue
            target = node.func.value
            if not (isinstance(target, ast.Name) and target.id == "host"):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, f"calls on another host: {offenders}"
