"""Bad data stops a run before any host is contacted, naming host, key, file and expectation.

Each case is checked the way keel's commands load an inventory (in-process, the same file
pyinfra runs), and all of them at once through the pyinfra CLI: exit 2, nothing contacted.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field

import pytest
from pydantic import Field

from keel.core import roles
from keel.core.inventory import load
from keel.core.roles import Role, role
from keel.core.schema import HostName, PortRule, RoleSettings, Secret
from keel.core.secrets import SecretFile
from keel.lab.sandbox import Host

# Nothing listens there: a run that got as far as connecting would fail differently.
NOWHERE = "198.51.100.250"
GOOD_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGaWm5S7xuvXkD5SmB9dUb0hGE8PfZ5j6LRrwXtUu9bC a@b"


@dataclass
class Case:
    data: dict
    key: str
    expected: str
    host_data: dict = field(default_factory=dict)  # on the host itself, in the inventory
    across: bool = False  # a check across hosts: runs once every host's own data is valid
    groups: tuple[str, ...] = ("app",)
    source: str | None = None  # the file the problem names, when not the one with the data


EDGE = ("app", "edge")
UPSTREAM = {"svc": {"group": "app", "port": 8000}}
VHOST = {"name": "web", "server_name": "web.example.net", "upstream": "svc", "tls": "acme"}


CASES = {
    # wrong types
    "port as a string": Case(
        {"base_sshd_port": "22"}, "base_sshd_port", "expected a valid integer, got str '22'"),
    "packages as a string": Case(
        {"base_extra_packages": "htop"}, "base_extra_packages", "expected a valid list, got str"),
    "flag as a string": Case(
        {"base_firewall_enabled": "yes"}, "base_firewall_enabled",
        "expected a valid boolean, got str 'yes'"),
    "seconds as a float": Case(
        {"base_apt_cache_time": 1.5}, "base_apt_cache_time", "expected a valid integer"),
    "users as a dict": Case(
        {"base_admin_users": {"name": "bob"}}, "base_admin_users", "expected a valid list"),
    "sysctl value as a list": Case(
        {"base_sysctl": {"vm.swappiness": [1]}}, "base_sysctl['vm.swappiness']",
        "expected a valid integer or a valid string, got list [1]"),
    # unknown keys
    "unknown key in base data": Case(
        {"base_timezon": "UTC"}, "base_timezon", "did you mean 'base_timezone'"),
    "unknown nested key": Case(
        {"base_admin_users": [{"name": "bob", "ssh_key": [GOOD_KEY]}]},
        "base_admin_users[0].ssh_key", "did you mean 'ssh_keys'"),
    "misspelt role prefix": Case(
        {"bse_timezone": "UTC"}, "bse_timezone", "did you mean 'base_timezone'"),
    "misspelt keel key": Case(
        {}, "keel_adress", "did you mean 'keel_address'",
        host_data={"keel_adress": "10.0.0.9"}),
    "key of no role": Case(
        {"frobnicate": 1}, "frobnicate", ": unknown key"),
    # missing required keys
    "user without any ssh_keys key": Case(
        {"base_admin_users": [{"name": "bob"}]},
        "base_admin_users[0].ssh_keys", "required key is missing"),
    "port rule without a port": Case(
        {"base_firewall_ports": [{"proto": "udp"}]}, "base_firewall_ports[0].port",
        "required key is missing"),
    "host without an address": Case(
        {}, "keel_address", "required key is missing", host_data={"keel_address": None}),
    # invalid values
    "user without a key": Case(
        {"base_admin_users": [{"name": "bob", "ssh_keys": []}]},
        "base_admin_users[0].ssh_keys", "at least 1 item"),
    "invalid timezone": Case(
        {"base_timezone": "Mars/Olympus_Mons"}, "base_timezone", "IANA timezone"),
    "port out of range": Case(
        {"base_firewall_ports": [{"port": 70000}]}, "base_firewall_ports[0].port",
        "less than or equal to 65535"),
    "bad ssh key": Case(
        {"base_admin_users": [{"name": "bob", "ssh_keys": ["hunter2"]}]},
        "base_admin_users[0].ssh_keys[0]", "SSH public key"),
    "invalid memory size": Case(
        {"base_journald_max_use": "lots"}, "base_journald_max_use", "size such as"),
    "negative cache time": Case(
        {"base_apt_cache_time": -1}, "base_apt_cache_time", "greater than or equal to 0"),
    "mirror without a scheme": Case(
        {"base_apt_mirror": "deb.debian.org/debian"}, "base_apt_mirror", "match pattern"),
    "root login choice": Case(
        {"base_sshd_permit_root_login": "yes"}, "base_sshd_permit_root_login",
        "'no', 'prohibit-password' or 'forced-commands-only'"),
    "locale without encoding": Case(
        {"base_locale": "en_US"}, "base_locale", "match pattern"),
    "user name with a space": Case(
        {"base_admin_users": [{"name": "Bob Smith", "ssh_keys": [GOOD_KEY]}]},
        "base_admin_users[0].name", "match pattern"),
    "user state": Case(
        {"base_admin_users": [{"name": "bob", "ssh_keys": [GOOD_KEY], "state": "gone"}]},
        "base_admin_users[0].state", "'present' or 'absent'"),
    "firewall protocol": Case(
        {"base_firewall_ports": [{"port": 53, "proto": "icmp"}]},
        "base_firewall_ports[0].proto", "'tcp' or 'udp'"),
    "firewall source not a network": Case(
        {"base_firewall_ports": [{"port": 80, "sources": ["10.0.0.300/24"]}]},
        "base_firewall_ports[0].sources[0]", "expected a CIDR"),
    "empty group source": Case(
        {"base_sshd_sources": ["group:"]}, "base_sshd_sources[0]", "'group:<name>'"),
    "address not an IP": Case(
        {}, "keel_address", "expected an IP address", host_data={"keel_address": "db1.local"}),
    # across hosts
    "group source with no hosts": Case(
        {"base_firewall_ports": [{"port": 5432, "sources": ["group:nosuch"]}]},
        "base_firewall_ports", "group with no hosts", across=True),
    "group source misspelt": Case(
        {"base_sshd_sources": ["group:ap"]}, "base_sshd_sources",
        "'group:ap' names a group with no hosts; did you mean 'app'?", across=True),
    "default user locked with no admin": Case(
        {"base_default_user": "debian"}, "base_default_user", "nobody could log in",
        across=True),
    "default user is also an admin": Case(
        {"base_default_user": "bob",
         "base_admin_users": [{"name": "bob", "ssh_keys": [GOOD_KEY]}]},
        "base_default_user", "the admin must be another user", across=True),
    "sshd cipher list empty after filtering": Case(
        {"base_sshd_ciphers": ["aes128-cbc", "3des-cbc"]}, "base_sshd_ciphers",
        "no ciphers left after filtering"),
    "AllowGroups names no admin": Case(
        {"base_sshd_allow_groups": ["root", "staff"],
         "base_admin_users": [{"name": "bob", "ssh_keys": [GOOD_KEY]}]},
        "base_sshd_allow_groups", "does not name the admin group 'admins'", across=True),
    "AllowGroups shuts out the root the inventory connects as": Case(
        {"base_sshd_allow_groups": ["admins"]}, "base_sshd_allow_groups",
        "the inventory connects as root", across=True),
    "PermitRootLogin no where the inventory connects as root": Case(
        {"base_sshd_permit_root_login": "no"}, "base_sshd_permit_root_login",
        "keel would lock itself out", across=True),
    "two rules claim a port": Case(
        {"base_firewall_ports": [{"port": 22, "comment": "ssh again"}]},
        "base_firewall_ports", "port 22/tcp is also claimed by base (sshd)", across=True),
    # edge's data
    "edge vhost key misspelt": Case(
        {"edge_upstreams": UPSTREAM, "edge_vhosts": [{**VHOST, "tsl": "acme"}]},
        "edge_vhosts[0].tsl", "unknown key; did you mean 'tls'?", groups=EDGE),
    "edge upstream port as a string": Case(
        {"edge_upstreams": {"svc": {"group": "app", "port": "8000"}}},
        "edge_upstreams.svc.port", "expected a valid integer, got str '8000'", groups=EDGE),
    "edge upstream without a port": Case(
        {"edge_upstreams": {"svc": {"group": "app"}}}, "edge_upstreams.svc.port",
        "required key is missing", groups=EDGE),
    "edge certificate source": Case(
        {"edge_upstreams": UPSTREAM, "edge_vhosts": [{**VHOST, "tls": "letsencrypt"}]},
        "edge_vhosts[0].tls", "'internal', 'provided' or 'acme'", groups=EDGE),
    "edge and a firewall rule claim 443": Case(
        {"base_firewall_ports": [{"port": 443}], "edge_upstreams": UPSTREAM,
         "edge_vhosts": [VHOST]},
        "base_firewall_ports", "port 443/tcp is also claimed by edge (edge https)",
        groups=EDGE, across=True),
    # storage's and claude_cli's data (app hosts)
    "storage backend choice": Case(
        {"storage_backend": "sqlite"}, "storage_backend", "'local', 's3' or 'postgresql'"),
    "s3 without a bucket": Case(
        {"storage_backend": "s3"}, "storage_s3_bucket", "required when storage_backend is 's3'",
        source="roles/storage/schema.py (default)"),
    "relative data dir": Case(
        {"storage_data_dir": "srv/app/data"}, "storage_data_dir", "expected an absolute path"),
    "claude version not pinned": Case(
        {"claude_cli_version": "latest"}, "claude_cli_version", "match pattern"),
    "claude auth choice": Case(
        {"claude_cli_auth": "password"}, "claude_cli_auth", "'api_key', 'oauth_token' or 'none'"),
    "claude key in no secret": Case(
        {"claude_cli_auth": "api_key", "claude_cli_auth_secret": "nosuch_api_key"},
        "claude_cli_auth_secret", "secret nosuch_api_key (needed by role claude_cli) is not set "
        "in secrets/sandbox.yaml", across=True),
    "subagent without a prompt": Case(
        {"claude_cli_subagents": [{"name": "reviewer", "description": "reviews diffs"}]},
        "claude_cli_subagents[0].prompt", "required key is missing"),
    "storage on postgresql with no db host": Case(
        {"storage_backend": "postgresql"}, "storage_db_host",
        "no storage_db_host is set and the inventory has no db group", across=True,
        source="roles/storage/schema.py (default)"),
    # postgres, redis and the monitoring roles
    "node exporter port as a string": Case(
        {"node_exporter_port": "9100"}, "node_exporter_port",
        "expected a valid integer, got str '9100'"),
    "redis eviction policy": Case(
        {"redis_maxmemory_policy": "lru"}, "redis_maxmemory_policy", "'volatile-ttl' (got 'lru')",
        groups=("cache",)),
    "redis user commands as a string": Case(
        {"redis_users": [{"name": "app", "password_secret": "x", "commands": "+@all"}]},
        "redis_users[0].commands", "expected a valid list, got str '+@all'", groups=("cache",)),
    "prometheus retention in words": Case(
        {"prometheus_retention_time": "two weeks"}, "prometheus_retention_time",
        "match pattern", groups=("mon",)),
    "alertmanager route to an unknown receiver": Case(
        {"alertmanager_routes": [{"severity": "critical", "receiver": "pager"}]},
        "alertmanager_routes", "receiver 'pager' is not in alertmanager_receivers ['default']",
        groups=("mon",)),
    "alertmanager email without a smarthost": Case(
        {"alertmanager_receivers": [{"name": "default", "email_to": ["ops@example.net"]}]},
        "alertmanager_smtp", "an email receiver (email_to) needs a smarthost here",
        groups=("mon",), source="roles/alertmanager/schema.py (default)"),
    "pg_hba source names no group": Case(
        {"postgres_hba": [{"sources": ["group:nosuch"]}]}, "postgres_hba",
        "'group:nosuch' names a group with no hosts", groups=("db",), across=True),
    "postgres on the node exporter's port": Case(
        {"postgres_port": 9100}, "postgres_port",
        "port 9100/tcp is also claimed by node_exporter (node exporter)", groups=("db",),
        across=True),
    # container_runtime and app
    "container engine choice": Case(
        {"container_runtime_engine": "lxc"}, "container_runtime_engine", "'podman' or 'docker'"),
    "a service on the node exporter's port": Case(
        {"app_services": {"web": {"build": {"context": "tests/images/standin"}, "ports": [
            {"port": 9100, "target": 80, "address": "0.0.0.0"}]}}},
        "app_services", "port 9100/tcp is also claimed by node_exporter (node exporter)",
        across=True),
}
assert len(CASES) >= 25


def _inventory(harness, name: str, case: Case, host: str = "e-bad1"):
    nowhere = Host(host, NOWHERE, False, "running")
    return harness.inventory({group: [nowhere] for group in case.groups}, data=case.data,
                             host_data={host: case.host_data}, name=name)


def _one_line(text: str, host: str, case: Case, data_file: str | None) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip().startswith(f"{host}:")]
    assert len(lines) == 1, f"expected one problem for {host}, got:\n" + "\n".join(lines)
    line = lines[0]
    assert f"{host}: {case.key} " in line, line
    assert case.expected in line, line
    if case.source:
        assert f"(set in {case.source}): " in line, line
    elif data_file and case.data:
        assert f"{data_file}): " in line, line  # the file that set the key
    return line


@pytest.mark.parametrize("name", CASES)
def test_bad_data_is_one_clear_problem(harness, name):
    case = CASES[name]
    inventory = _inventory(harness, name.replace(" ", "_"), case)
    problems = load(inventory).problems
    _one_line("\n".join(map(str, problems)), "e-bad1", case, f"{inventory.stem}_data.py")


def _stops_before_connecting(run) -> None:
    assert run.returncode == 2, run.output
    assert "Connecting to hosts" not in run.output
    assert "no host was contacted" in run.stderr


def test_pyinfra_stops_before_connecting(harness):
    """Every case about a host's own data at once, each on its own host (data in the inventory)."""
    hosts = {f"e-bad{i}": case for i, case in enumerate(CASES.values()) if not case.across}
    groups: dict[str, list[Host]] = {}
    for name, case in hosts.items():
        for group in case.groups:
            groups.setdefault(group, []).append(Host(name, NOWHERE, False, "running"))
    data = {name: {**case.data, **case.host_data} for name, case in hosts.items()}
    inventory = harness.inventory(groups, host_data=data, name="all_cases")
    run = harness.run(inventory, "deploys/site.py")
    _stops_before_connecting(run)
    for host, case in hosts.items():
        line = _one_line(run.stderr, host, case, None)
        if case.data and not case.source:
            assert "all_cases.py): " in line, line


@pytest.mark.parametrize("name", [name for name, case in CASES.items() if case.across])
def test_pyinfra_stops_before_connecting_across_hosts(harness, name):
    """A check across hosts runs on an inventory of its own (what it sees is the whole)."""
    case = CASES[name]
    inventory = _inventory(harness, "cli_" + name.replace(" ", "_"), case)
    run = harness.run(inventory, "deploys/site.py")
    _stops_before_connecting(run)
    _one_line(run.stderr, "e-bad1", case, f"{inventory.stem}_data.py")


def test_cli_data_overrides_are_validated(harness):
    """`pyinfra --data key=value` is data too: checked before connecting, named as its source."""
    inventory = _inventory(harness, "cli_data", Case({}, "", ""))
    run = harness.run(inventory, "deploys/site.py",
                      args=["--data", "base_sshd_port=ssh", "--data=base_timezon=UTC"])
    _stops_before_connecting(run)
    problems = sorted(ln.strip() for ln in run.stderr.splitlines()
                      if ln.strip().startswith("e-bad1:"))
    assert len(problems) == 2, run.stderr
    assert problems[0].startswith(
        "e-bad1: base_sshd_port (set in --data (command line)): expected a valid integer")
    assert problems[1] == "e-bad1: base_timezon (set in --data (command line)): " \
        "unknown key; did you mean 'base_timezone'?"


# --- the mechanisms roles build on, with a stand-in role -------------------------------

class FakeSettings(RoleSettings):
    fake_db_host: HostName("db") = Field(None, description="The db host.")
    fake_peers: list[HostName()] = Field([], description="Peer hosts.")
    fake_port: int = Field(8000, description="A port.")
    fake_password_secret: str = Field("fake_db_password", description="A secret's name.")
    fake_token: Secret | None = Field(None, description="A secret value.")


@pytest.fixture
def fake_role(monkeypatch):
    """A role `fake` on app hosts: a db host reference, a port, a secret and a secret value."""
    module = types.ModuleType("roles.fake")
    module.__file__ = "roles/fake/__init__.py"
    module.ROLE = Role(
        name="fake", settings=FakeSettings, apply=lambda settings: None, groups=("app",),
        ports=lambda s: [PortRule(port=s.fake_port, comment="fake")],
        secrets=lambda s: [SecretFile(dest="fake/db", secret=s.fake_password_secret,
                                      named_by={s.fake_password_secret:
                                                "fake_password_secret"})])
    monkeypatch.setitem(sys.modules, "roles.fake", module)
    roles.SITE.append("fake")
    role.cache_clear()
    yield module
    roles.SITE.remove("fake")
    role.cache_clear()


FAKE_CASES = {
    "required key with no default": (
        {}, "fake_db_host", "required key is missing: the role has no default"),
    "reference to a host not in the inventory": (
        {"fake_db_host": "db2"}, "fake_db_host",
        "names host 'db2', which is not in the inventory; did you mean 'db1'?"),
    "reference to a host in another group": (
        {"fake_db_host": "e-app1"}, "fake_db_host",
        "names host 'e-app1', which is not in group 'db' (its groups: app)"),
    "reference inside a list": (
        {"fake_db_host": "db1", "fake_peers": ["e-app1", "e-ap2"]}, "fake_peers[1]",
        "names host 'e-ap2', which is not in the inventory; did you mean 'e-app1'?"),
    "two roles claim a port": (
        {"fake_db_host": "db1", "fake_port": 22}, "fake_port",
        "port 22/tcp is also claimed by base (sshd)"),
    "a secret the role needs is missing": (
        {"fake_db_host": "db1", "fake_password_secret": "fake_missing"}, "fake_password_secret",
        "secret fake_missing (needed by role fake) is not set in secrets/sandbox.yaml; "
        "set it with `keel secrets set sandbox fake_missing`"),
}


@pytest.fixture
def fake_secret(secrets_env):
    secrets_env.set("fake_db_password", "not-a-real-password")


@pytest.mark.parametrize("name", FAKE_CASES)
def test_checks_across_hosts(harness, fake_role, fake_secret, name):
    data, key, expected = FAKE_CASES[name]
    app = Host("e-app1", "198.51.100.250", False, "running")
    db = Host("db1", "198.51.100.251", False, "running")
    inventory = harness.inventory({"app": [app], "db": [db]}, data=data,
                                  name="fake_" + name.replace(" ", "_"))
    problems = [p for p in load(inventory).problems if p.host == "e-app1"]
    assert len(problems) == 1, problems
    assert problems[0].key == key and expected in problems[0].message, problems[0]
    source = {"required key with no default": "roles/fake/schema.py (default)"}.get(
        name, f"fake_{name.replace(' ', '_')}_data.py")
    assert problems[0].source.endswith(source), problems[0]


def test_keel_data_masks_secrets(harness, fake_role, fake_secret):
    from keel.core.checks import Fleet, secret_names
    from keel.core.data import MASK, masked
    app = Host("e-app1", "198.51.100.250", False, "running")
    inventory = harness.inventory(
        {"app": [app], "db": [Host("db1", "198.51.100.251", False, "running")]},
        data={"fake_db_host": "db1", "fake_token": "tok-123"},
        host_data={"e-app1": {"ssh_password": "hunter2"}}, name="masking")
    env = load(inventory)
    assert [p for p in env.problems if p.host == "e-app1"] == []
    host = env.host("e-app1")
    shown = masked(host, secret_names(Fleet([host]), host))
    assert shown["fake_token"] == MASK  # marked Secret in the schema
    assert shown["ssh_password"] == MASK  # named like a secret
    assert shown["fake_password_secret"] == "fake_db_password"  # a secret's name, not a value
    assert shown["fake_db_host"] == "db1"
