"""testinfra checks for node_exporter: it serves host metrics on the private address."""

from keel.lab.testing.probe import http_get

SERVICE = "prometheus-node-exporter"


def test_runs_as_prometheus_from_keel_config(host):
    assert host.service(SERVICE).is_running and host.service(SERVICE).is_enabled
    assert host.file(f"/etc/default/{SERVICE}").contains("managed by keel")
    assert host.check_output(f"ps -o user= -C {SERVICE}") == "prometheus"
    textfiles = host.file("/var/lib/prometheus/node-exporter")
    assert textfiles.is_directory and textfiles.mode == 0o755


def test_serves_host_metrics(host):
    metrics = http_get(host, 9100, until="node_cpu_seconds_total{")
    assert 'node_textfile_scrape_error 0' in metrics


def test_systemd_collector_follows_data(host):
    # Only with node_exporter_systemd_units (app hosts); it needs D-Bus then.
    args = host.file(f"/etc/default/{SERVICE}").content_string
    metrics = http_get(host, 9100)
    if "--collector.systemd " in args:
        assert "node_systemd_unit_state{" in metrics
    else:
        assert "--no-collector.systemd" in args and "node_systemd_unit_state{" not in metrics


def test_no_recommends(host):
    # nvme-cli's autoconnect unit fails in containers and leaves systemd degraded.
    assert not host.package("nvme-cli").is_installed
