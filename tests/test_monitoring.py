"""Monitoring on a 5-host sandbox (mon, db, cache, app x2 also in edge): keel's postgres and
redis roles with the exporters' logins from group_data, exporters, firewall, Prometheus targets
and alerts (edge's included), promtool gating reloads, Alertmanager delivering a real failure to
a webhook (firing, then resolved) and amtool gating its reloads. One converge (plus idempotence
run and plan)."""

import json
import secrets as random
import shlex
import subprocess
import time

import pytest

from keel import ROOT
from keel.lab.testing import ssh

pytestmark = pytest.mark.sandbox
DEPLOY = "tests/deploys/monitoring.py"
DATA = ROOT / "roles/prometheus/tests/data.py"
# Alertmanager's test data: critical alerts to a webhook on m-mon1's loopback, port 9199.
ALERTING = ROOT / "roles/alertmanager/tests/data.py"
NAMES = ("m-mon1", "m-db1", "m-cache1", "m-app1", "m-app2")
GROUPS = {"mon": ["m-mon1"], "db": ["m-db1"], "cache": ["m-cache1"], "app": ["m-app1", "m-app2"],
          "edge": ["m-app1", "m-app2"]}
# host -> exporter ports it serves
EXPORTERS = {"m-mon1": [9100, 9093], "m-db1": [9100, 9187], "m-cache1": [9100, 9121],
             "m-app1": [9100], "m-app2": [9100]}
PASSWORDS = {"postgres_monitor_password": random.token_hex(16),
             "redis_exporter_password": random.token_hex(16),
             "alertmanager_smtp_password": random.token_hex(16),
             # postgres's pgBackRest repository key.
             "postgres_backup_cipher_pass": random.token_hex(16)}


@pytest.fixture(scope="module")
def hosts(sandbox_hosts):
    return {h.name: h for h in sandbox_hosts(*NAMES)}


@pytest.fixture(scope="module")
def inventory(harness, hosts, secrets_env):
    for name, value in PASSWORDS.items():
        secrets_env.set(name, value)
    return harness.inventory({g: [hosts[n] for n in names] for g, names in GROUPS.items()},
                             data_files=[DATA, ALERTING])


@pytest.fixture(scope="module")
def converged(harness, inventory):
    return harness.assert_idempotent(inventory, DEPLOY)


def _get(src, url) -> str:
    result = ssh(src, f"curl -gsf --max-time 3 '{url}'")
    assert result.returncode == 0, f"{src.name}: GET {url} failed: {result.stderr}"
    return result.stdout


def _api(hosts, path) -> dict:
    mon = hosts["m-mon1"]
    return json.loads(_get(mon, f"http://{mon.address}:9090/api/v1/{path}"))["data"]


def _wait(check, timeout=60, step=1.0):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(step)


def test_converges_then_nothing_changes(converged):
    first, second, plan = converged
    assert set(first.changed()) == set(NAMES)
    assert second.changed() == {} and plan.changed() == {}
    # The logins come from group_data (all.py), created by the data services' own roles.
    assert "postgres | Set password of PostgreSQL role keel_monitor" in first.changed()["m-db1"]
    assert "redis | Deliver ACL users (password hashes)" in first.changed()["m-cache1"]
    for run in converged:
        assert not any(password in run.output for password in PASSWORDS.values())


def _as_postgres(db, sql: str) -> str:
    return ssh(db, f"cd / && runuser -u postgres -- psql -XtAc \"{sql}\"").stdout.strip()


def _login(host, command: str, password: str) -> str:
    """A client command on the host whose password is read from stdin (never argv)."""
    proc = subprocess.run(host.ssh_argv(command), input=password + "\n", capture_output=True,
                          text=True, timeout=60)
    return (proc.stdout + proc.stderr).strip()


def test_exporter_logins_have_only_what_they_need(converged, hosts):
    db, cache = hosts["m-db1"], hosts["m-cache1"]
    assert _as_postgres(db, "select rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, "
                            "pg_has_role('keel_monitor', 'pg_monitor', 'member') from pg_roles "
                            "where rolname = 'keel_monitor'") == "t|f|f|f|t"
    psql = ("read -r PGPASSWORD; export PGPASSWORD; psql -XtA -h 127.0.0.1 -U keel_monitor "
            "-d postgres -c")
    # pg_monitor reads every backend's activity; it may write nothing.
    assert _login(db, f"{psql} 'select count(*) > 0 from pg_stat_activity where "
                      "query is not null'", PASSWORDS["postgres_monitor_password"]) == "t"
    assert "permission denied" in _login(db, f"{psql} 'create table t (i int)'",
                                         PASSWORDS["postgres_monitor_password"])
    cli = ("read -r REDISCLI_AUTH; export REDISCLI_AUTH; "
           f"redis-cli -h {cache.address} --user keel_exporter")
    password = PASSWORDS["redis_exporter_password"]
    assert "redis_version:7.0" in _login(cache, f"{cli} info server", password)
    for refused in ("get k", "set k v", "keys '*'", "config get maxmemory", "client kill id 1",
                    "flushall"):
        assert "NOPERM" in _login(cache, f"{cli} {refused}", password), refused
    # The exporter's scrape runs within that ACL: no error, and maxmemory (RedisMemoryNearMax)
    # comes from INFO although CONFIG is refused.
    metrics = _get(hosts["m-mon1"], f"http://{cache.address}:9121/metrics")
    assert 'redis_exporter_last_scrape_error{err=""} 0' in metrics
    assert "\nredis_memory_max_bytes " in metrics


def test_exporters_serve_key_series(converged, hosts):
    mon = hosts["m-mon1"]
    for host in hosts.values():
        assert "node_cpu_seconds_total{" in _get(mon, f"http://{host.address}:9100/metrics")
    postgres = f"http://{hosts['m-db1'].address}:9187/metrics"
    assert _wait(lambda: "\npg_up 1\n" in _get(mon, postgres), timeout=20)
    assert "\nredis_up 1\n" in _get(mon, f"http://{hosts['m-cache1'].address}:9121/metrics")


def test_exporters_run_as_prometheus_with_private_secrets(converged, hosts):
    out = ssh(hosts["m-db1"], "stat -c '%U %a' /run/keel/secrets/postgres_exporter/password; "
                              "ps -o user= -C prometheus-postgres-exporter").stdout.split("\n")
    assert out[0] == "prometheus 400" and out[1].strip() == "prometheus"
    out = ssh(hosts["m-cache1"], "stat -c '%U %a' /run/keel/secrets/redis_exporter/passwords.json;"
                                 " cat /proc/$(systemctl show -p MainPID --value "
                                 "prometheus-redis-exporter)/cmdline | tr '\\0' ' '").stdout
    assert out.startswith("prometheus 400")
    assert "--redis.password-file=" in out and "--redis.password=" not in out
    # No Recommends: nvme-cli would leave systemd degraded in a container.
    for host in hosts.values():
        assert ssh(host, "dpkg -s nvme-cli").returncode != 0
        assert ssh(host, "systemctl is-system-running").stdout.strip() == "running", host.name


def test_exporters_refused_from_every_other_host(converged, hosts):
    probe = ("python3 -c \"import socket, sys\n"
             "for target in sys.argv[1:]:\n"
             "    a, p = target.rsplit(':', 1)\n"
             "    try:\n"
             "        socket.create_connection((a, int(p)), timeout=1).close()\n"
             "        print('open', target)\n"
             "    except OSError:\n"
             "        print('closed', target)\n\" ")
    for src_name, src in hosts.items():
        targets = [f"{hosts[dst].address}:{port}" for dst, ports in EXPORTERS.items()
                   if dst != src_name for port in ports]
        lines = ssh(src, probe + " ".join(targets)).stdout.split()
        states = set(lines[0::2])
        assert states == ({"open"} if src_name == "m-mon1" else {"closed"}), (src_name, lines)


def test_prometheus_targets_all_up_with_labels(converged, hosts):
    def targets():
        active = _api(hosts, "targets?state=active")["activeTargets"]
        return active if len(active) == 9 and all(t["health"] == "up" for t in active) else None

    active = _wait(targets, timeout=30)
    assert active, _api(hosts, "targets?state=active")
    jobs = sorted((t["labels"]["job"], t["labels"]["host"]) for t in active)
    assert jobs == sorted([("node", n) for n in NAMES] + [("postgres", "m-db1"),
                          ("redis", "m-cache1"), ("prometheus", "m-mon1"),
                          ("alertmanager", "m-mon1")])
    app = next(t for t in active if t["labels"]["host"] == "m-app1")
    assert app["labels"]["env"] == "sandbox" and app["labels"]["group"] == "app"
    # Series of Debian's default config (first install, before keel's restart) lack `host`.
    up = _api(hosts, "query?query=up{host!=%22%22}")["result"]
    assert len(up) == 9 and all(r["value"][1] == "1" for r in up), up


def test_app_hosts_report_systemd_units(converged, hosts):
    app = hosts["m-app1"]
    ssh(app, "systemd-run --unit=app-demo sleep infinity")
    metrics = _get(hosts["m-mon1"], f"http://{app.address}:9100/metrics")
    assert 'node_systemd_unit_state{name="app-demo.service",state="active",type="simple"} 1' \
        in metrics
    assert "node_systemd_service_restart_total" in metrics
    db = _get(hosts["m-mon1"], f"http://{hosts['m-db1'].address}:9100/metrics")
    assert "node_systemd_unit_state" not in db


def test_edge_alerts_loaded_for_edge_hosts(converged, hosts):
    groups = {g["name"]: g for g in _api(hosts, "rules")["groups"]}
    edge = groups["keel-edge"]["rules"]
    assert [r["name"] for r in edge] == ["EdgeHigh5xxRate", "EdgeCertificateExpiresSoon",
                                         "EdgeCertificateExpired", "EdgeMetricsStale"]
    assert all(r["health"] == "ok" for r in edge), edge
    # The series they read reach Prometheus (textfile metrics through the node exporter).
    found = _wait(lambda: _api(hosts, "query?query=keel_edge_metrics_last_run_seconds")["result"],
                  timeout=30)
    assert sorted(r["metric"]["host"] for r in found) == ["m-app1", "m-app2"]


def _alert(hosts, name):
    return [a for a in _api(hosts, "alerts")["alerts"] if a["labels"]["alertname"] == name]


def test_redis_down_failed_backup_and_unhealthy_service_alert(converged, hosts):
    # A real pgBackRest backup that fails: the repository's backup directory unwritable, the
    # scheduled unit started (its failure writes keel_pg_backup_last_status{type="diff"} 0).
    db = hosts["m-db1"]
    ssh(db, "chmod 000 /var/lib/pgbackrest/backup")
    try:
        assert ssh(db, "systemctl start keel-pg-backup@diff.service").returncode != 0
    finally:
        ssh(db, "chmod 750 /var/lib/pgbackrest/backup && "
                "systemctl reset-failed keel-pg-backup@diff.service")
    # An app service whose container fails its health check (a stand-in engine answers).
    ssh(hosts["m-app1"], "printf '[Service]\\nExecStart=/usr/bin/podman start -a web\\n' "
                         "> /etc/systemd/system/app-web.service && "
                         "printf '#!/bin/sh\\necho unhealthy\\n' > /usr/local/bin/podman && "
                         "chmod 755 /usr/local/bin/podman && "
                         "systemctl start keel-service-health.service")
    ssh(hosts["m-cache1"], "systemctl stop redis-server")
    redis = f"http://{hosts['m-cache1'].address}:9121/metrics"
    assert "\nredis_up 0\n" in _get(hosts["m-mon1"], redis)
    down = _wait(lambda: [a for a in _alert(hosts, "RedisDown")
                          if a["state"] in ("pending", "firing")], timeout=30)
    assert down and down[0]["labels"]["host"] == "m-cache1"
    backup = _wait(lambda: _alert(hosts, "PostgresBackupFailed"), timeout=30)
    assert backup and backup[0]["labels"]["type"] == "diff"
    assert backup[0]["labels"]["host"] == "m-db1"
    unhealthy = _wait(lambda: _alert(hosts, "ServiceUnhealthy"), timeout=30)
    assert unhealthy and unhealthy[0]["labels"]["service"] == "web"
    assert unhealthy[0]["labels"]["host"] == "m-app1"


def _prometheus_pid(hosts):
    return ssh(hosts["m-mon1"], "systemctl show -p MainPID --value prometheus").stdout.strip()


def test_rules_change_reloads_and_bad_rule_fails_at_promtool(converged, harness, hosts):
    mon = ["--limit", "m-mon1"]
    pid = _prometheus_pid(hosts)
    good = {"prometheus_rules": [{"name": "extra", "rules": [
        {"record": "keel:up:sum", "expr": "sum(up)"}]}]}
    inv = harness.inventory({g: [hosts[n] for n in names] for g, names in GROUPS.items()},
                            data_files=[DATA, ALERTING], data=good, name="good")
    run = harness.converge(inv, "deploys/prometheus.py", args=mon)
    assert run.changed()["m-mon1"] == ["prometheus | Stage alert rules from data",
                                       "prometheus | Check config and rules (promtool), "
                                       "install, reload"]
    assert _wait(lambda: any(g["name"] == "extra" for g in _api(hosts, "rules")["groups"]), 15)
    assert _prometheus_pid(hosts) == pid, "a rules change restarted Prometheus"

    bad = {"prometheus_rules": [{"name": "broken", "rules": [
        {"alert": "Broken", "expr": "up ==== 1"}]}]}
    inv = harness.inventory({g: [hosts[n] for n in names] for g, names in GROUPS.items()},
                            data_files=[DATA, ALERTING], data=bad, name="bad")
    for _ in range(2):  # the second run checks again: a failed check is never forgotten
        run = harness.run(inv, "deploys/prometheus.py", args=mon)
        assert run.returncode != 0
        assert "could not parse expression" in run.output and "custom.yml" in run.output
    live = ssh(hosts["m-mon1"], "cat /etc/prometheus/rules/custom.yml").stdout
    assert "extra" in live and "Broken" not in live
    groups = [g["name"] for g in _api(hosts, "rules")["groups"]]
    assert "extra" in groups and "broken" not in groups
    assert _prometheus_pid(hosts) == pid
    reload_ok = _api(hosts, "query?query=prometheus_config_last_reload_successful")["result"]
    assert reload_ok[0]["value"][1] == "1"


# A webhook receiver: appends each POST body (one JSON document a line) to HOOK_LOG.
HOOK_LOG = "/var/tmp/keel-hook.jsonl"
HOOK = ("import http.server, json\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_POST(self):\n"
        "        body = json.loads(self.rfile.read(int(self.headers['Content-Length'])))\n"
        f"        with open('{HOOK_LOG}', 'a') as f:\n"
        "            f.write(json.dumps(body) + '\\n')\n"
        "        self.send_response(200)\n"
        "        self.end_headers()\n"
        "http.server.HTTPServer(('127.0.0.1', 9199), H).serve_forever()\n")


def _notifications(mon, alertname: str, status: str) -> list[dict]:
    """The alerts named `alertname` in state `status` the webhook has received so far."""
    lines = ssh(mon, f"cat {HOOK_LOG} 2>/dev/null").stdout.splitlines()
    return [alert for line in lines for alert in json.loads(line)["alerts"]
            if alert["labels"]["alertname"] == alertname and alert["status"] == status]


def test_stopped_postgres_reaches_the_webhook_then_resolves(converged, hosts):
    mon, db = hosts["m-mon1"], hosts["m-db1"]
    ssh(mon, f"rm -f {HOOK_LOG}; systemctl stop keel-test-hook 2>/dev/null; "
             f"systemd-run --unit=keel-test-hook python3 -c {shlex.quote(HOOK)}")
    assert _wait(lambda: ssh(mon, "ss -ltn | grep -q 127.0.0.1:9199").returncode == 0, 10)
    started = time.monotonic()
    ssh(db, "systemctl stop postgresql")
    # PostgresDown's `for` is 4s (test data), group_wait 1s; scrapes and evaluations every 2s.
    firing = _wait(lambda: _notifications(mon, "PostgresDown", "firing"), timeout=40)
    took = time.monotonic() - started
    assert firing, ssh(mon, f"cat {HOOK_LOG}; journalctl -u prometheus-alertmanager -n 20").stdout
    assert firing[0]["labels"]["host"] == "m-db1" and firing[0]["labels"]["severity"] == "critical"
    assert "First check:" in firing[0]["annotations"]["runbook"]
    print(f"PostgresDown reached the webhook {took:.0f}s after postgresql stopped")
    ssh(db, "systemctl start postgresql")
    resolved = _wait(lambda: _notifications(mon, "PostgresDown", "resolved"), timeout=40)
    assert resolved and resolved[0]["labels"]["host"] == "m-db1", \
        ssh(mon, f"cat {HOOK_LOG}").stdout
    print(f"resolved {time.monotonic() - started - took:.0f}s after postgresql started")
    # Warnings go by email: their route is not the webhook's.
    lines = ssh(mon, f"cat {HOOK_LOG}").stdout.splitlines()
    assert all(json.loads(line)["receiver"] == "hook" and
               all(a["labels"]["severity"] == "critical" for a in json.loads(line)["alerts"])
               for line in lines)


# An SMTP smarthost (Debian's aiosmtpd): STARTTLS required, then AUTH with the password the
# test hands it in tmpfs; each mail it accepts is appended to MAIL_LOG (never the password).
# AUTH PLAIN only: aiosmtpd's LOGIN prompts "User Name", and Alertmanager's LOGIN expects
# "Username:" as other servers send it.
SMTP_DIR, MAIL_LOG = "/run/keel-test-smtp", "/var/tmp/keel-mail.jsonl"
SMTP = f"""import json, ssl, time
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
expected = open('{SMTP_DIR}/password', 'rb').read().strip()
def authenticate(server, session, envelope, mechanism, data):
    ok = isinstance(data, LoginPassword) and data.password == expected
    return AuthResult(success=ok, auth_data=data.login.decode() if ok else None)
class Handler:
    async def handle_DATA(self, server, session, envelope):
        mail = {{'login': session.auth_data, 'from': envelope.mail_from,
                'to': envelope.rcpt_tos, 'body': envelope.content.decode(errors='replace')}}
        with open('{MAIL_LOG}', 'a') as f:
            f.write(json.dumps(mail) + '\\n')
        return '250 OK'
tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
tls.load_cert_chain('{SMTP_DIR}/cert.pem', '{SMTP_DIR}/key.pem')
Controller(Handler(), hostname='127.0.0.1', port=2525, tls_context=tls, require_starttls=True,
           authenticator=authenticate, auth_required=True,
           auth_exclude_mechanism=['LOGIN']).start()
while True:
    time.sleep(3600)
"""


def test_warning_is_mailed_through_the_smarthost_with_its_password(converged, hosts):
    """Alertmanager's email receiver (warnings, test data) delivers through a real smarthost
    on m-mon1's loopback that requires STARTTLS and AUTH: the mail arrives, so the login used
    the password from secrets."""
    from keel.core import ca

    mon = hosts["m-mon1"]
    ca.ensure("sandbox")  # another module of this worker may have made it
    key, cert = ca.issue("sandbox", [], ["127.0.0.1"])
    files = {"key.pem": key.decode(), "cert.pem": cert.decode(),
             "password": PASSWORDS["alertmanager_smtp_password"]}
    for name, content in files.items():  # tmpfs, root only; the content on stdin
        assert _login(mon, f"umask 077 && mkdir -p {SMTP_DIR} && cat > {SMTP_DIR}/{name} && "
                           "echo ok", content) == "ok"
    # The host trusts the smarthost's CA (as a real one's is trusted), before Alertmanager
    # starts: Go reads the system's roots once per process.
    assert _login(mon, "cat > /usr/local/share/ca-certificates/keel-sandbox-test.crt && "
                       "update-ca-certificates >/dev/null 2>&1 && "
                       "systemctl restart prometheus-alertmanager && echo ok",
                  ca.cert("sandbox")) == "ok"
    install = ssh(mon, "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
                       "--no-install-recommends python3-aiosmtpd >/dev/null", timeout=300)
    assert install.returncode == 0, install.stderr
    ssh(mon, f"rm -f {MAIL_LOG}; systemctl stop keel-test-smtp 2>/dev/null; "
             f"systemd-run --unit=keel-test-smtp python3 -c {shlex.quote(SMTP)}")
    assert _wait(lambda: ssh(mon, "ss -ltn | grep -q 127.0.0.1:2525").returncode == 0, 20)
    assert _wait(lambda: ssh(mon, f"curl -sf http://{mon.address}:9093/-/ready").returncode
                 == 0, 30)
    alert = [{"labels": {"alertname": "KeelMailTest", "severity": "warning", "host": "m-mon1"},
              "annotations": {"summary": "a warning for the mail route"}}]
    sent = time.monotonic()
    post = subprocess.run(mon.ssh_argv(f"curl -sSf -X POST -H 'Content-Type: application/json' "
                                       f"--data-binary @- http://{mon.address}:9093/api/v2/alerts"),
                          input=json.dumps(alert), capture_output=True, text=True, timeout=60)
    assert post.returncode == 0, post.stderr

    def mails():
        lines = ssh(mon, f"cat {MAIL_LOG} 2>/dev/null").stdout.splitlines()
        return [m for m in map(json.loads, lines) if "KeelMailTest" in m["body"]]

    mail = _wait(mails, timeout=60)
    print(f"the warning reached the smarthost {time.monotonic() - sent:.0f}s after it was posted")
    assert mail, ssh(mon, "journalctl -u prometheus-alertmanager -n 20 --no-pager; "
                          "journalctl -u keel-test-smtp -n 20 --no-pager").stdout
    assert (mail[0]["login"], mail[0]["from"], mail[0]["to"]) == \
        ("keel", "keel@example.net", ["ops@example.net"])
    assert ssh(mon, f"findmnt -no FSTYPE -T {SMTP_DIR}").stdout.strip() == "tmpfs"


def test_smtp_password_only_in_tmpfs(converged, hosts):
    mon = hosts["m-mon1"]
    password = PASSWORDS["alertmanager_smtp_password"]
    # Not on disk outside /run (tmpfs), not in any process's argv (grep reads it from stdin).
    assert _login(mon, "grep -rlsF -f - /etc /var /root /tmp /usr/local", password) == ""
    assert password not in ssh(mon, "ps -eo args").stdout
    assert _login(mon, "grep -cF -f - /run/keel/secrets/alertmanager/smtp_password", password) \
        == "1"
    assert ssh(mon, "stat -c '%U %a' /run/keel/secrets/alertmanager/smtp_password; "
                    "findmnt -no FSTYPE -T /run/keel/secrets").stdout.split() == \
        ["prometheus", "400", "tmpfs"]


def _alertmanager_pid(hosts):
    return ssh(hosts["m-mon1"],
               "systemctl show -p MainPID --value prometheus-alertmanager").stdout.strip()


def test_bad_alertmanager_config_refused_before_reload(converged, harness, hosts):
    mon = hosts["m-mon1"]
    pid = _alertmanager_pid(hosts)
    before = ssh(mon, "cat /etc/prometheus/alertmanager.yml").stdout
    # Valid data to keel's schema, refused by Alertmanager itself.
    inv = harness.inventory({g: [hosts[n] for n in names] for g, names in GROUPS.items()},
                            data_files=[DATA, ALERTING],
                            data={"alertmanager_repeat_interval": "0s"}, name="bad_am")
    for _ in range(2):  # the second run checks again: a failed check is never forgotten
        run = harness.run(inv, "deploys/alertmanager.py", args=["--limit", "m-mon1"])
        assert run.returncode != 0
        assert "repeat_interval cannot be zero" in run.output
    assert ssh(mon, "cat /etc/prometheus/alertmanager.yml").stdout == before
    assert _alertmanager_pid(hosts) == pid
    status = json.loads(_get(mon, f"http://{mon.address}:9093/api/v2/status"))
    assert "repeat_interval: 4h" in status["config"]["original"]
