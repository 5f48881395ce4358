"""testinfra checks for prometheus: a checked config, and every target it derives from the
inventory is up."""

import json
import time

from keel.lab.testing.probe import http_get


def test_runs_with_keel_flags(host):
    assert host.service("prometheus").is_running and host.service("prometheus").is_enabled
    assert host.file("/etc/default/prometheus").contains("managed by keel")
    assert host.run("promtool check config /etc/prometheus/prometheus.yml").rc == 0


def test_live_config_is_the_checked_one(host):
    assert host.run("cmp /etc/prometheus/keel-staged/prometheus.yml "
                    "/etc/prometheus/prometheus.yml").rc == 0


def test_every_target_up(host):
    # A target is "unknown" until its first scrape: allow a few rounds.
    deadline = time.monotonic() + 30
    while True:
        body = http_get(host, 9090, "/api/v1/targets?state=active", until="activeTargets")
        targets = json.loads(body)["data"]["activeTargets"]
        if all(t["health"] == "up" for t in targets) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert {"node", "prometheus"} <= {t["labels"]["job"] for t in targets}
    assert all(t["health"] == "up" for t in targets), targets
    assert all(t["labels"]["host"] for t in targets)
