"""testinfra checks for postgres_exporter (on a host that runs PostgreSQL): it logs in with
its secret file and serves the server's metrics."""

from keel.lab.testing.probe import cmdline, http_get, runs_as_after_secrets

SERVICE = "prometheus-postgres-exporter"
PASSWORD = "/run/keel/secrets/postgres_exporter/password"


def test_runs_as_prometheus_after_secrets(host):
    runs_as_after_secrets(host, SERVICE, "prometheus")


def test_password_only_in_a_private_tmpfs_file(host):
    secret = host.file(PASSWORD)
    assert (secret.user, secret.group, secret.mode) == ("prometheus", "prometheus", 0o400)
    env = host.file(f"/etc/default/{SERVICE}").content_string
    assert f'DATA_SOURCE_PASS_FILE="{PASSWORD}"' in env
    password = host.check_output(f"cat {PASSWORD}")
    assert password and password not in env
    argv = cmdline(host, SERVICE)
    assert password not in argv


def test_serves_the_server_metrics(host):
    # pg_up is 1 only once the exporter has logged in as its pg_monitor role.
    metrics = http_get(host, 9187, until="\npg_up 1\n")
    assert "pg_stat_database_numbackends{" in metrics
