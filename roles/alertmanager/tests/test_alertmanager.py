"""testinfra checks for alertmanager: runs with keel's flags and the checked config, no
secret in that config, silences through amtool."""

from keel.lab.testing.probe import http_get, runs_as_after_secrets

CONFIG = "/etc/prometheus/alertmanager.yml"


def test_runs_as_prometheus_after_secrets(host):
    runs_as_after_secrets(host, "prometheus-alertmanager", "prometheus")
    assert host.file("/etc/default/prometheus-alertmanager").contains("managed by keel")
    http_get(host, 9093, "/-/ready", until="OK")
    assert "alertmanager_config_last_reload_successful 1" in http_get(host, 9093)


def test_live_config_is_the_checked_one(host):
    assert host.run(f"cmp /etc/prometheus/keel-staged-alertmanager/alertmanager.yml "
                    f"{CONFIG}").rc == 0
    assert host.run(f"amtool check-config {CONFIG}").rc == 0


def test_smtp_password_only_in_tmpfs(host):
    secret = host.file("/run/keel/secrets/alertmanager/smtp_password")
    assert (secret.user, secret.mode) == ("prometheus", 0o400)
    assert host.file(CONFIG).contains("smtp_auth_password_file: /run/keel/secrets/")
    assert not host.file(CONFIG).contains("smtp_auth_password:")
    assert "tmpfs" in host.check_output("findmnt -no FSTYPE -T /run/keel/secrets")


def test_silence_with_amtool(host):
    silence = host.check_output("amtool silence add alertname=KeelTest -a keel -c test -d 5m")
    assert silence in host.check_output("amtool silence query -q alertname=KeelTest")
    host.check_output(f"amtool silence expire {silence}")
    assert silence not in host.check_output("amtool silence query -q")
