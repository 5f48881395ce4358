"""The whole site on the prod topology, the way `make up` converges it: inventories/sandbox.py
over hosts f-app1, f-app2, f-db1, f-cache1 and f-mon1, with the repo's own group data.

Role modules test each role in depth on its own data; this one proves the roles together:
the site plans without an ordering cycle, converges, converges again with zero changes,
plans zero changes, no unit fails, Prometheus scrapes every exporter (logged in to the
data services: pg_up and redis_up are 1), and the data services answer the app hosts alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from keel import ROOT
from keel.lab.testing import BIN, ssh

pytestmark = pytest.mark.sandbox

PREFIX = "f-"
INVENTORY = ROOT / "inventories" / "sandbox.py"
ENV = {"KEEL_SANDBOX_PREFIX": PREFIX}
# inventories/sandbox.py's hosts; app hosts nest containers.
LAYOUT = {"app1": True, "app2": True, "db1": False, "cache1": False, "mon1": False}


@pytest.fixture(scope="module")
def site(sandbox_hosts, harness, secrets_env):
    hosts = {}
    for privileged in (True, False):  # each call boots its hosts together
        names = [name for name, nested in LAYOUT.items() if nested == privileged]
        hosts.update(zip(names, sandbox_hosts(*[PREFIX + n for n in names],
                                              privileged=privileged), strict=True))
    # As `make up` does: generate the sandbox secrets the site's data names.
    ensure = subprocess.run([str(BIN / "keel"), "secrets", "ensure", "sandbox", str(INVENTORY)],
                            cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                            env={**os.environ, **ENV}, timeout=300)
    assert ensure.returncode == 0, ensure.stderr
    runs = harness.assert_idempotent(INVENTORY, "deploys/site.py", env=ENV)
    return hosts, runs


def test_site_converges_then_nothing_changes(site):
    hosts, (first, second, plan) = site
    assert set(first.changed()) == {PREFIX + name for name in LAYOUT}
    # Every host ran every role of its groups, and nothing failed.
    assert second.changed() == {} and plan.changed() == {}


def test_no_unit_failed_on_any_host(site):
    hosts, _ = site
    for name, host in hosts.items():
        failed = ssh(host, "systemctl list-units --failed --no-legend --plain").stdout
        assert failed.strip() == "", f"{name}: {failed}"


def test_prometheus_scrapes_every_exporter_of_the_site(site):
    hosts, _ = site
    mon = hosts["mon1"]
    url = f"http://{mon.address}:9090/api/v1/targets?state=active"
    expected = {("node", PREFIX + name) for name in LAYOUT} | {
        ("postgres", PREFIX + "db1"), ("redis", PREFIX + "cache1"),
        ("prometheus", PREFIX + "mon1"), ("alertmanager", PREFIX + "mon1")}
    deadline, active = time.monotonic() + 120, []
    while time.monotonic() < deadline:
        out = ssh(mon, f"curl -gsf --max-time 3 '{url}'").stdout
        active = json.loads(out)["data"]["activeTargets"] if out else []
        if all(t["health"] == "up" for t in active) and \
                {(t["labels"]["job"], t["labels"]["host"]) for t in active} == expected:
            break
        time.sleep(3)
    assert {(t["labels"]["job"], t["labels"]["host"], t["health"]) for t in active} == \
        {(job, host, "up") for job, host in expected}
    # The exporters log in with the logins group_data/all.py gives the data services.
    query = f"http://{mon.address}:9090/api/v1/query?query=pg_up%20or%20redis_up"
    result = json.loads(ssh(mon, f"curl -gsf --max-time 3 '{query}'").stdout)["data"]["result"]
    assert {(r["metric"]["__name__"], r["metric"]["host"], r["value"][1]) for r in result} == \
        {("pg_up", PREFIX + "db1", "1"), ("redis_up", PREFIX + "cache1", "1")}


def test_app_hosts_reach_the_database_and_others_do_not(site):
    hosts, _ = site
    # pg_hba and the firewall take the app hosts' addresses from the inventory.
    db = hosts["db1"].address
    probe = f"timeout 5 bash -c '</dev/tcp/{db}/5432'"
    assert ssh(hosts["app1"], probe).returncode == 0
    assert ssh(hosts["mon1"], probe).returncode != 0
