"""Bad data stops a run before any host is contacted, naming host, key and file."""

import pytest

from keel.sandbox import Host

# Nothing listens there: a run that got as far as connecting would fail differently.
NOWHERE = Host("t-bad1", "198.51.100.250", False, "running")
GOOD_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGaWm5S7xuvXkD5SmB9dUb0hGE8PfZ5j6LRrwXtUu9bC a@b"

CASES = {
    "user without a key": (
        {"base_admin_users": [{"name": "bob", "ssh_keys": []}]},
        "base_admin_users[0].ssh_keys", "at least 1 item"),
    "user without any ssh_keys key": (
        {"base_admin_users": [{"name": "bob"}]},
        "base_admin_users[0].ssh_keys", "required key is missing"),
    "invalid timezone": (
        {"base_timezone": "Mars/Olympus_Mons"}, "base_timezone", "IANA timezone"),
    "port out of range": (
        {"base_firewall_ports": [{"port": 70000}]}, "base_firewall_ports[0].port",
        "less than or equal to 65535"),
    "unknown key in base data": (
        {"base_timezon": "UTC"}, "base_timezon", "did you mean 'base_timezone'"),
    "unknown nested key": (
        {"base_admin_users": [{"name": "bob", "ssh_key": [GOOD_KEY]}]},
        "base_admin_users[0].ssh_key", "did you mean 'ssh_keys'"),
    "wrong type": (
        {"base_sshd_port": "22"}, "base_sshd_port", "expected a valid integer, got str '22'"),
    "bad ssh key": (
        {"base_admin_users": [{"name": "bob", "ssh_keys": ["hunter2"]}]},
        "base_admin_users[0].ssh_keys[0]", "SSH public key"),
    "invalid memory size": (
        {"base_journald_max_use": "lots"}, "base_journald_max_use", "size such as"),
    "group source with no hosts": (
        {"base_firewall_ports": [{"port": 5432, "sources": ["group:nosuch"]}]},
        "base_firewall_ports", "group with no hosts"),
    "default user locked with no admin": (
        {"base_default_user": "debian"}, "base_default_user", "nobody could log in"),
    "default user is also an admin": (
        {"base_default_user": "bob", "base_admin_users": [{"name": "bob", "ssh_keys": [GOOD_KEY]}]},
        "base_default_user", "the admin must be another user"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_data_fails_before_connecting(harness, case):
    data, key, expected = CASES[case]
    inventory = harness.inventory({"app": [NOWHERE]}, data=data, name=case.replace(" ", "_"))
    run = harness.run(inventory, "deploys/site.py")
    assert run.returncode == 2, run.output
    assert "Connecting to hosts" not in run.output
    line = next((ln for ln in run.stderr.splitlines() if f"t-bad1: {key} " in ln), None)
    assert line, f"no error naming t-bad1 and {key}:\n{run.stderr}"
    assert f"{inventory.stem}_data.py" in line, line  # the file that set the key
    assert expected in line, line
    assert len([ln for ln in run.stderr.splitlines() if ln.startswith("  t-bad1:")]) == 1
