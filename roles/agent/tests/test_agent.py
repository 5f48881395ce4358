"""testinfra checks for agent: the container, its hardening and what it answers."""

import json


def test_the_agent_runs_hardened(host):
    unit = host.service("app-agent")
    assert unit.is_enabled and unit.is_running
    inspect = json.loads(host.check_output("podman inspect agent"))[0]
    config, hostconfig = inspect["Config"], inspect["HostConfig"]
    assert config["User"].split(":")[0] != "0"
    assert hostconfig["ReadonlyRootfs"] is True
    assert hostconfig["CapDrop"] and not hostconfig["CapAdd"]
    assert hostconfig["Memory"] > 0 and hostconfig["NanoCpus"] > 0


def test_the_api_is_on_loopback_only(host):
    assert host.socket("tcp://127.0.0.1:8000").is_listening
    assert not host.socket("tcp://0.0.0.0:8000").is_listening


def test_health_names_every_dependency(host):
    report = json.loads(host.check_output("curl -fsS http://127.0.0.1:8000/health || "
                                          "python3 -c \"import urllib.request;print(urllib"
                                          ".request.urlopen('http://127.0.0.1:8000/health')"
                                          ".read().decode())\""))
    assert report["status"] == "ok", report
    assert set(report["checks"]) == {"database", "redis", "storage", "cli"}
