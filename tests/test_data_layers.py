"""Data layers merge where a schema says so (app_services, ...), keel.DELETE removes a sub-key,
and every part of a merged key names the file that set it; no host is contacted."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest

from keel import ROOT
from keel.core.data import relative
from keel.core.inventory import load
from keel.lab.sandbox import Host
from keel.lab.testing import BIN

NOWHERE = "198.51.100.250"  # nothing listens there
BASE = {"web": {
    "image": "docker.io/library/nginx:1.25",
    "environment": {"LOG_LEVEL": "info", "WORKERS": "4", "FEATURE_X": "on"},
    "limits": {"memory": "256M", "cpus": 0.5},
    "ports": [{"port": 8080, "target": 80}],
}, "worker": {"image": "docker.io/library/busybox:1.36", "command": ["sleep", "infinity"]}}


@pytest.fixture
def layers(harness, tmp_path):
    """An inventory of one app host whose data comes from base.py, then staging.py (each
    given as Python source, so a layer can use keel.DELETE as a data file would)."""
    def make(staging: str, base: str = f"app_services = {BASE!r}\n") -> Path:
        files = []
        for name, text in (("base", base), ("staging", staging)):
            path = tmp_path / f"{name}.py"
            path.write_text(textwrap.dedent(text))
            files.append(path)
        return harness.inventory({"app": [Host("e-lay1", NOWHERE, False, "running")]},
                                 data_files=files, name=f"layers_{tmp_path.name}")
    return make


def _host(inventory: Path):
    env = load(inventory)
    return env.host("e-lay1"), [str(p) for p in env.problems]


def _keel(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "keel"), *args], cwd=ROOT, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120)


def test_staging_overrides_one_variable_and_keeps_the_rest(layers, tmp_path):
    host, problems = _host(layers("""
        app_services = {"web": {"environment": {"LOG_LEVEL": "debug"}}}
    """))
    assert problems == []
    web = host.values["app_services"]["web"]
    expected = json.loads(json.dumps(BASE["web"]))
    expected["environment"]["LOG_LEVEL"] = "debug"
    assert web == expected
    assert set(host.values["app_services"]) == {"web", "worker"}
    settings = host.settings("app").app_services["web"]
    assert settings.environment == {"LOG_LEVEL": "debug", "WORKERS": "4", "FEATURE_X": "on"}
    assert (settings.limits.memory, settings.limits.cpus) == ("256M", 0.5)
    # Each part names its file; the layers do not change each other (both are cached).
    base, staging = relative(tmp_path / "base.py"), relative(tmp_path / "staging.py")
    assert host.source_at(("app_services", "web", "environment", "LOG_LEVEL")) == staging
    assert host.source_at("app_services.web.environment.WORKERS") == base
    assert host.source_at("app_services.web.ports[0].port") == base
    assert host.source_at(("app_services", "worker")) == base
    assert host.sources["app_services"] == staging  # the last file that set part of it


def test_keel_data_shows_the_file_of_each_part(layers, tmp_path):
    inventory = layers("""
        app_services = {"web": {"environment": {"LOG_LEVEL": "debug"}}}
    """)
    proc = _keel("data", str(inventory), "--no-defaults")
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[0]: line for line in proc.stdout.splitlines()[1:] if line.strip()}
    base, staging = f"# {relative(tmp_path / 'base.py')}", f"# {relative(tmp_path / 'staging.py')}"
    assert "'debug'" in lines["app_services.web.environment.LOG_LEVEL"]
    assert lines["app_services.web.environment.LOG_LEVEL"].endswith(staging)
    assert lines["app_services.web.environment.WORKERS"].endswith(base)
    assert lines["app_services.web.limits"].endswith(base)
    assert lines["app_services.worker"].endswith(base)  # one file set it: one line
    assert "app_services" not in lines
    data = json.loads(_keel("data", str(inventory), "--json").stdout)["e-lay1"]["data"]
    entry = data["app_services"]
    assert entry["value"]["web"]["environment"]["WORKERS"] == "4"
    assert entry["sources"]["app_services.web.environment.LOG_LEVEL"] == staging[2:]
    assert entry["sources"]["app_services.web.image"] == base[2:]
    assert "sources" not in data["app_engine"]


def test_delete_removes_a_sub_key_or_resets_a_key(layers, tmp_path):
    host, problems = _host(layers("""
        import keel

        app_services = {"web": {"environment": {"FEATURE_X": keel.DELETE},
                                "limits": {"cpus": keel.DELETE}},
                        "worker": keel.DELETE}
        app_hardening = keel.DELETE
    """, base=f"""
        app_services = {BASE!r}
        app_hardening = {{"user": "1000:1000"}}
    """))
    assert problems == []
    web = host.values["app_services"]["web"]
    assert web["environment"] == {"LOG_LEVEL": "info", "WORKERS": "4"}
    assert web["limits"] == {"memory": "256M"}
    assert set(host.values["app_services"]) == {"web"}
    # A key reset by DELETE is the role's default again, and says so.
    assert host.settings("app").app_hardening.user == "65534:65534"
    assert host.sources["app_hardening"] == "roles/app/schema.py (default)"
    # What a DELETE removed has no file left: the part around it keeps its own.
    assert host.source_at("app_services.web.environment") == relative(tmp_path / "base.py")


def test_delete_imported_by_name_is_no_data_key(layers):
    _, problems = _host(layers("""
        from keel import DELETE

        app_services = {"worker": DELETE}
    """))
    assert problems == []


@pytest.mark.parametrize("staging, key, expected", [
    ('app_services = {"web": {"environment": ["LOG_LEVEL=debug"]}}',
     "app_services.web.environment",
     "expected a mapping, to merge into the one set in {base}; got list"),
    ('app_services = {"web": "nginx"}', "app_services.web",
     "expected a mapping, to merge into the one set in {base}; got str"),
    ('import keel\napp_services = {"web": {"environment": {"LOG_LEVL": keel.DELETE}}}',
     "app_services.web.environment.LOG_LEVL", "keel.DELETE: no earlier layer sets it"),
    ('import keel\napp_services = {"web": {"command": ["nginx", keel.DELETE]}}',
     "app_services.web.command[1]",
     "keel.DELETE removes a key of a mapping; a list is replaced whole"),
    ('import keel\nbase_sshd_sources = ["10.0.0.0/8", keel.DELETE]', "base_sshd_sources[1]",
     "keel.DELETE works only in keys that merge across layers (app_configs, app_hardening, "
     "app_networks, app_services, app_volumes); base_sshd_sources is replaced whole"),
    ('import keel\nssh_port = keel.DELETE', "ssh_port",
     "keel.DELETE resets a role's key to its default; this is no role's key"),
    # A bad value deep in a merged key names the file that set that value.
    ('app_services = {"web": {"limits": {"memory": "lots"}}}', "app_services.web.limits.memory",
     "expected a size such as '512M'"),
    ('app_services = {"web": {"networks": ["back"]}}', "app_services.web.networks[0]",
     "unknown network 'back'; declare it in app_networks"),
])
def test_bad_layer_is_one_clear_problem(layers, tmp_path, staging, key, expected):
    _, problems = _host(layers(staging))
    base = relative(tmp_path / "base.py")
    assert len(problems) == 1, problems
    staging = relative(tmp_path / "staging.py")
    assert problems[0].startswith(f"e-lay1: {key} (set in {staging}): "), \
        problems[0]
    assert expected.format(base=base) in problems[0]


def test_pyinfra_gets_the_merged_data(layers):
    inventory = layers("""
        app_services = {"web": {"environment": {"LOG_LEVEL": "debug"}}}
    """)
    proc = subprocess.run([str(BIN / "pyinfra"), "--json", str(inventory), "debug-inventory"],
                          cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    (host,) = json.loads(proc.stdout)
    assert host["data"]["app_services"]["web"]["environment"] == {
        "LOG_LEVEL": "debug", "WORKERS": "4", "FEATURE_X": "on"}


def test_command_line_data_replaces_a_merged_key_whole(layers):
    """pyinfra puts `--data` over the host's data as it is: keel validates that, not a merge."""
    inventory = layers("")
    worker = {"worker": {"image": "docker.io/library/busybox:1.36"}}
    proc = subprocess.run([str(BIN / "pyinfra"), "--json", "--data",
                           f"app_services={json.dumps(worker)}", str(inventory),
                           "debug-inventory"], cwd=ROOT, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120)
    assert proc.returncode == 0, proc.stderr
    (host,) = json.loads(proc.stdout)
    assert host["data"]["app_services"] == worker
    bad = subprocess.run([str(BIN / "pyinfra"), "--data", 'app_services={"web": {"ports": []}}',
                          str(inventory), "debug-inventory"], cwd=ROOT, capture_output=True,
                         text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert bad.returncode == 2
    assert "e-lay1: app_services.web (set in --data (command line)): set exactly one of " \
        "image (pulled) or build" in bad.stderr, bad.stderr
