"""Each format's escaping helper (keel.core.render) against the software that reads the format,
on one sandbox host (issue #20): a legal value with quotes, spaces, '#', ';', '%', '$', braces
and a backslash is rendered through the helper (or the role's own template), the software's
own check accepts the file, and the value it reads back is the value given.
"""

from __future__ import annotations

import hashlib
import json
import subprocess

import pytest
import yaml

from keel.core import render
from keel.core.roles import role
from keel.lab.testing import ssh
from roles.alertmanager import config as alertmanager_config
from roles.postgres import HBA_CHECK
from roles.prometheus import rules_yaml
from roles.prometheus.schema import RuleGroup
from roles.redis.schema import Settings as RedisSettings
from roles.redis.schema import User

pytestmark = pytest.mark.sandbox
AWKWARD = "it's \"quoted\"; #no-comment 50% {x} $HOME ${y} `id` back\\slash, a=b"
AWKWARD_NGINX = AWKWARD.replace("$", "")  # nginx expands '$' everywhere: refused by its helper
PACKAGES = "nginx-light redis-server postgresql prometheus prometheus-alertmanager"
PG = "/etc/postgresql/15/main"


@pytest.fixture(scope="module")
def host(sandbox_hosts):
    (one,) = sandbox_hosts("fmt1")
    installed = ssh(one, "export DEBIAN_FRONTEND=noninteractive; apt-get update -q && "
                         f"apt-get install -y -q --no-install-recommends {PACKAGES}", timeout=1800)
    assert installed.returncode == 0, installed.stdout[-2000:] + installed.stderr
    return one


def put(host, path: str, content: str) -> None:
    subprocess.run(host.ssh_argv(f"cat > {path}"), input=content, text=True, check=True,
                   capture_output=True, timeout=60)


def ok(host, command: str, timeout: int = 120) -> str:
    proc = ssh(host, command, timeout=timeout)
    assert proc.returncode == 0, f"{command}: {proc.stdout}{proc.stderr}"
    return proc.stdout


def test_nginx_returns_the_value(host):
    put(host, "/etc/nginx/conf.d/keel-fmt.conf",
        "server {\n    listen 127.0.0.1:8081;\n    default_type text/plain;\n"
        f"    add_header X-Keel {render.nginx(AWKWARD_NGINX)};\n"
        f"    location / {{ return 200 {render.nginx(AWKWARD_NGINX)}; }}\n}}\n")
    ok(host, "nginx -t && systemctl reload nginx")
    body = ok(host, "python3 -c \"import urllib.request as u; r = u.urlopen("
                    "'http://127.0.0.1:8081/'); print(r.headers['X-Keel']); "
                    "print(r.read().decode())\"")
    assert body.splitlines() == [AWKWARD_NGINX, AWKWARD_NGINX]


def test_redis_reads_back_acl_rules_and_settings(host):
    """redis.conf and users.conf from the role's own templates."""
    settings = RedisSettings(redis_settings={"masteruser": AWKWARD})
    user = User(name="keel", password_secret="redis_keel_password",
                keys=['~cache:"x"#y', "~plain:*"], commands=["+@all"])
    users = render.render("redis", "users.conf", users=[user], default_secret=None,
                          sha256=lambda v: hashlib.sha256(v.encode()).hexdigest(),
                          secret=lambda name: "pw", disabled=["-flushall"])
    put(host, "/etc/redis/keel-users.conf", users)
    put(host, "/etc/redis/redis.conf", render.render(
        "redis", "redis.conf", bind=["127.0.0.1"], maxmemory="64mb",
        users="/etc/redis/keel-users.conf", settings=settings))
    ok(host, "chown redis:redis /etc/redis/keel-users.conf && systemctl restart redis-server")
    cli = "redis-cli --user keel --pass pw --no-auth-warning"
    acl = ok(host, f"{cli} ACL LIST && {cli} CONFIG GET masteruser")
    assert '~cache:"x"#y' in acl and "~plain:*" in acl, acl
    assert AWKWARD in acl.splitlines(), acl
    assert ok(host, "systemctl is-active redis-server").strip() == "active"


def test_pg_hba_names_read_back(host):
    rules = [("host", ["app db#1", "replication"], ["o'brien, x", "+pg_monitor", "all"],
              "10.9.0.0/16", "scram-sha-256")]
    put(host, f"{PG}/pg_hba.conf", render.render("postgres", "pg_hba.conf", rules=rules))
    ok(host, f"chown postgres:postgres {PG}/pg_hba.conf && "
             "su postgres -c \"psql -Atc 'select pg_reload_conf()'\"")
    got = ok(host, "su postgres -c \"psql -Atc \\\"select json_agg(json_build_object("
                   "'d', database, 'u', user_name, 'e', error)) from pg_hba_file_rules "
                   "where address = '10.9.0.0'\\\"\"")
    assert json.loads(got) == [{"d": ["app db#1", "replication"],
                                "u": ["o'brien, x", "+pg_monitor", "all"], "e": None}]
    ok(host, HBA_CHECK)  # the role's check before a reload accepts it


def test_pg_hba_check_refuses_a_broken_file(host):
    hba = f"{PG}/pg_hba.conf"
    ok(host, f"cp -p {hba} /root/pg_hba.keep && echo 'host all all 10.0.0.0/99 md5' >> {hba}")
    try:
        assert ssh(host, HBA_CHECK).returncode != 0
    finally:
        ok(host, f"mv /root/pg_hba.keep {hba}")


def test_postgresql_conf_value_reads_back(host):
    put(host, f"{PG}/conf.d/keel-fmt.conf", f"log_line_prefix = {render.pg_conf(AWKWARD)}\n")
    try:
        got = ok(host, "su postgres -c '/usr/lib/postgresql/15/bin/postgres -C log_line_prefix "
                       f"-c config_file={PG}/postgresql.conf'")
    finally:
        ssh(host, f"rm -f {PG}/conf.d/keel-fmt.conf")
    assert got.rstrip("\n") == AWKWARD


def test_promtool_accepts_rules(host):
    group = RuleGroup.model_validate({"name": "keel-fmt", "rules": [
        {"alert": "Fmt", "expr": "up == 0", "labels": {"team": AWKWARD},
         "annotations": {"summary": AWKWARD}}]})
    text = rules_yaml([group])
    assert yaml.safe_load(text)["groups"][0]["rules"][0]["labels"]["team"] == AWKWARD
    put(host, "/tmp/keel-fmt.rules.yml", text)
    ok(host, "promtool check rules /tmp/keel-fmt.rules.yml")


def test_amtool_accepts_config(host):
    alertmanager = role("alertmanager")
    settings = alertmanager.validate({**alertmanager.defaults, "alertmanager_smtp": {
        "smarthost": "mail.example.net:587", "from": "keel@example.net", "username": AWKWARD,
        "password_secret": "smtp_password"}})
    text = alertmanager_config(settings)
    assert yaml.safe_load(text)["global"]["smtp_auth_username"] == AWKWARD
    put(host, "/tmp/keel-fmt.alertmanager.yml", text)
    ok(host, "mkdir -p /run/keel/secrets/alertmanager && "
             "touch /run/keel/secrets/alertmanager/smtp_password && "
             "amtool check-config /tmp/keel-fmt.alertmanager.yml")


def test_systemd_reads_back_arguments_and_environment(host):
    """Exec arguments (systemd_arg), Description (systemd_spec) and an EnvironmentFile
    value (env_value): systemd-analyze verify accepts the unit, and it prints them back."""
    put(host, "/etc/keel-fmt.env", f"KEEL_FMT={render.env_value(AWKWARD)}\n")
    argv = " ".join(render.systemd_arg(a) for a in ["/usr/bin/printf", "%s|", AWKWARD])
    put(host, "/etc/systemd/system/keel-fmt.service",
        f"[Unit]\nDescription={render.systemd_spec(AWKWARD)}\n\n[Service]\nType=oneshot\n"
        f"EnvironmentFile=/etc/keel-fmt.env\nExecStart={argv} ${{KEEL_FMT}}\n"
        "StandardOutput=file:/tmp/keel-fmt.out\n")
    ok(host, "systemd-analyze verify /etc/systemd/system/keel-fmt.service && "
             "systemctl daemon-reload && systemctl start keel-fmt")
    assert ok(host, "cat /tmp/keel-fmt.out") == f"{AWKWARD}|{AWKWARD}|"
    assert ok(host, "systemctl show -P Description keel-fmt").rstrip("\n") == AWKWARD


def test_sh_reads_back_a_word(host):
    assert ok(host, f"sh -c {render.shell('printf %s ' + render.shell(AWKWARD))}") == AWKWARD
