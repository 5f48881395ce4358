"""testinfra checks for redis_exporter (on a host that runs Redis): it logs in as its ACL user
with a password file and serves the server's metrics."""

from keel.lab.testing.probe import cmdline, http_get, runs_as_after_secrets

SERVICE = "prometheus-redis-exporter"
PASSWORDS = "/run/keel/secrets/redis_exporter/passwords.json"


def test_runs_as_prometheus_after_secrets(host):
    runs_as_after_secrets(host, SERVICE, "prometheus")


def test_password_only_in_a_private_tmpfs_file(host):
    secret = host.file(PASSWORDS)
    assert (secret.user, secret.group, secret.mode) == ("prometheus", "prometheus", 0o400)
    argv = cmdline(host, SERVICE)
    assert f"--redis.password-file={PASSWORDS}" in argv
    assert "--redis.password=" not in argv


def test_serves_the_server_metrics(host):
    # redis_up is 1 only once the exporter has authenticated as its ACL user.
    metrics = http_get(host, 9121, until="\nredis_up 1\n")
    assert "redis_connected_clients " in metrics
