"""Hostile input: no value from data can add a line to a rendered file (issue #20).

Every one-line string of every role's schema refuses control characters (keel.core.schema:
Model); multi-line text is an explicit type (MultiLine). Each case puts a value with one control
character where a role renders it (a config file, a unit, an env-file, a script) and expects
one clear line naming host, key and file, before any host is contacted. All cases are hosts of
one inventory, loaded once (in-process) and run once through pyinfra (exit 2, no connection).
Values that are legal are rendered by the per-format helpers of keel.core.render.
"""

from __future__ import annotations

import subprocess

import pytest
import yaml

from keel.core import render
from keel.core.inventory import load
from keel.lab.sandbox import Host
from roles.node_exporter.schema import Settings as NodeSettings

NOWHERE = "198.51.100.250"  # nothing listens there
# A newline and a carriage return add a line; NUL truncates; tab, ESC, DEL, NEL (U+0085) and
# U+2028 are read as separators or garbage by one format or another.
CONTROLS = {"LF": "\n", "CR": "\r", "NUL": "\0", "TAB": "\t", "ESC": "\x1b", "DEL": "\x7f",
            "NEL": "\x85", "LSEP": "\u2028"}
INJECT = "requirepass hunter2"

# Where a role renders a string from data: (groups, key as a problem names it, data(value)).
TARGETS = {
    "redis.conf directive (redis_settings)": (
        ("cache",), "redis_settings.maxclients",
        lambda v: {"redis_settings": {"maxclients": f"100{v}{INJECT}"}}),
    "redis.conf bind": (
        ("cache",), "redis_bind[0]", lambda v: {"redis_bind": [f"127.0.0.1{v}{INJECT}"]}),
    "postgresql.conf parameter (postgres_settings)": (
        ("db",), "postgres_settings.application_name",
        lambda v: {"postgres_settings": {"application_name": f"x{v}ssl = off"}}),
    "postgres backup timer (OnCalendar=)": (
        ("db",), "postgres_backup_full_schedule",
        lambda v: {"postgres_backup_full_schedule": f"daily{v}ExecStart=/bin/sh"}),
    "sysctl.conf key": (
        ("app",), "base_sysctl", lambda v: {"base_sysctl": {f"vm.swappiness{v}kernel.x": 1}}),
    "nftables rule comment": (
        ("app",), "base_firewall_ports[0].comment",
        lambda v: {"base_firewall_ports": [{"port": 8080, "comment": f"web{v}accept"}]}),
    "apt package list": (
        ("app",), "base_extra_packages[0]", lambda v: {"base_extra_packages": [f"htop{v}nmap"]}),
    "timesyncd.conf servers": (
        ("app",), "base_ntp_servers[0]", lambda v: {"base_ntp_servers": [f"ntp.example{v}x"]}),
    "journald.conf size": (
        ("app",), "base_journald_max_use", lambda v: {"base_journald_max_use": f"1G{v}x=y"}),
    "storage env-file (DATA_DIR)": (
        ("app",), "storage_data_dir", lambda v: {"storage_data_dir": f"/srv/data{v}X=1"}),
    "registries.conf search list": (
        ("app",), "container_runtime_search_registries[0]",
        lambda v: {"container_runtime_search_registries": [f"docker.io{v}[x]"]}),
    "node exporter /etc/default ARGS": (
        ("app",), "node_exporter_systemd_units",
        lambda v: {"node_exporter_systemd_units": f"keel-.*{v}OTHER=1"}),
    "sub-agent file (description)": (
        ("app",), "claude_cli_subagents[0].description",
        lambda v: {"claude_cli_subagents": [{"name": "rev", "description": f"reviews{v}tools: *",
                                             "prompt": "Review."}]}),
    "nginx proxy_pass upstream": (
        ("edge",), "edge_vhosts[0].upstream",
        lambda v: {"edge_vhosts": [{"name": "api", "server_name": "api.example.net",
                                    "upstream": f"agent{v}return 200"}]}),
    "pg_hba.conf user": (
        ("db",), "postgres_hba[0].users[0]",
        lambda v: {"postgres_hba": [{"sources": ["10.0.0.0/8"], "users": [f"app{v}all"]}]}),
    "pgbackrest.conf S3 region": (
        ("db",), "postgres_backup_s3.region",
        lambda v: {"postgres_backup_s3": {"bucket": "keel-backups", "region": f"eu{v}x=y",
                                          "access_key_secret": "s3_access_key",
                                          "secret_key_secret": "s3_secret_key"}}),
    "restic s3.env region": (
        ("app",), "restic_s3.region",
        lambda v: {"restic_s3": {"bucket": "keel-backups", "region": f"eu{v}AWS_X=1",
                                 "access_key_secret": "s3_access_key",
                                 "secret_key_secret": "s3_secret_key"}}),
    "Prometheus rule label (rules YAML)": (
        ("mon",), "prometheus_rules[0].rules[0].labels.team",
        lambda v: {"prometheus_rules": [{"name": "g", "rules": [
            {"alert": "X", "expr": "up == 0", "labels": {"team": f"ops{v}severity: none"}}]}]}),
    "Alertmanager SMTP username (YAML)": (
        ("mon",), "alertmanager_smtp.username",
        lambda v: {"alertmanager_smtp": {"smarthost": "mail.example.net:587",
                                         "from": "keel@example.net", "username": f"keel{v}x",
                                         "password_secret": "smtp_password"}}),
    "app unit ExecStart (service environment)": (
        ("app",), "app_services.web.environment.MODE",
        lambda v: {"app_services": {"web": {"image": "docker.io/library/nginx:1",
                                            "environment": {"MODE": f"on{v}ExecStartPre=/x"}}}}),
}
CASES = {f"{target}, {name}": (target, char) for target in TARGETS
         for name, char in CONTROLS.items()}
assert len(CASES) >= 80


def _host(index: int) -> str:
    return f"bad{index}"


@pytest.fixture(scope="module")
def inventory(harness):
    groups: dict[str, list[Host]] = {}
    data = {}
    for index, (target, char) in enumerate(CASES.values()):
        host_groups, _, make = TARGETS[target]
        for group in host_groups:
            groups.setdefault(group, []).append(Host(_host(index), NOWHERE, False, "running"))
        data[_host(index)] = make(char)
    return harness.inventory(groups, host_data=data, name="bad_input")


@pytest.fixture(scope="module")
def problems(inventory) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for problem in load(inventory).problems:
        found.setdefault(problem.host, []).append(str(problem))
    return found


@pytest.mark.parametrize("name", CASES)
def test_control_character_is_one_clear_problem(problems, name):
    index = list(CASES).index(name)
    target, char = CASES[name]
    _, key, _ = TARGETS[target]
    lines = problems.get(_host(index), [])
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith(f"{_host(index)}: {key}"), line
    assert "(set in " in line and "bad_input.py" in line, line  # the file that set it
    assert f"U+{ord(char):04X}" in line and "expected one line of text" in line, line


def test_pyinfra_stops_before_contacting_any_host(harness, inventory):
    run = harness.run(inventory, "deploys/site.py")
    assert run.returncode == 2, run.output
    assert "Connecting to hosts" not in run.output
    assert "no host was contacted" in run.stderr
    assert INJECT not in run.stdout  # no plan, no diff of the injected line


def test_multi_line_text_is_legal_where_the_schema_says_so(harness):
    """A sub-agent's prompt is multi-line text: accepted as it is."""
    app = Host("good1", NOWHERE, False, "running")
    prompt = "Review the diff.\nList the risks.\n"
    inventory = harness.inventory({"app": [app]}, host_data={"good1": {"claude_cli_subagents": [
        {"name": "rev", "description": "reviews", "prompt": prompt}]}}, name="multiline")
    env = load(inventory)
    assert env.problems == []
    assert env.host("good1").settings("claude_cli").claude_cli_subagents[0].prompt == prompt


# --- legal values are escaped for their format ----------------------------------------------

ESCAPED = [
    (render.redis_conf, "100", "100"),
    (render.redis_conf, 'a "b" c', '"a \\"b\\" c"'),
    (render.redis_conf, "#not-a-comment", '"#not-a-comment"'),
    (render.pg_conf, "it's", "'it''s'"),
    (render.pg_conf, "C:\\x", "'C:\\\\x'"),
    (render.pg_conf, 64, "64"),
    (render.pg_conf, True, "on"),
    (render.systemd_spec, "50% of %h", "50%% of %%h"),
    (render.systemd_arg, "$HOME", "$$HOME"),
    (render.systemd_arg, "two words", '"two words"'),
    (render.env_value, 'a "$b" `c` \\', '"a \\"\\$b\\" \\`c\\` \\\\"'),
    (render.shell, "a b'c", "'a b'\"'\"'c'"),
    (render.nginx, "a;b", '"a;b"'),
    (render.json_value, "a\nb", '"a\\nb"'),
    (render.pg_hba, "all", "all"),
    (render.pg_hba, "+admins", "+admins"),
    (render.pg_hba, "app db#1,x", '"app db#1,x"'),
    (render.pg_hba, "@file", '"@file"'),
    (render.redis_conf, '~cache:"x"#y', '"~cache:\\"x\\"#y"'),
    (render.nginx, "api.example.net", "api.example.net"),
]


@pytest.mark.parametrize("helper, value, expected", ESCAPED)
def test_legal_value_is_escaped_for_its_format(helper, value, expected):
    assert helper(value) == expected


@pytest.mark.parametrize("helper", [h for h in render.FILTERS.values()
                                    if h is not render.json_value])
@pytest.mark.parametrize("char", CONTROLS.values(), ids=CONTROLS)
def test_format_helpers_refuse_control_characters(helper, char):
    """Defence in depth: a value that did not come through a schema is refused when rendered."""
    with pytest.raises(ValueError, match="control character"):
        helper(f"x{char}y")


# A legal value with the characters formats treat specially: quotes, space, '#', ';', '%',
# '$', braces, a backslash and a comma. AWKWARD_NGINX leaves out '$' (nginx has no escape).
AWKWARD = "it's \"quoted\"; #no-comment 50% {x} $HOME ${y} `id` back\\slash, a=b"
AWKWARD_NGINX = AWKWARD.replace("$", "")

@pytest.mark.parametrize("helper, value", [(render.pg_hba, 'a"b'), (render.nginx, "a$b")])
def test_a_value_a_format_cannot_hold_is_refused(helper, value):
    with pytest.raises(ValueError, match="cannot be written|would expand"):
        helper(value)


def test_hba_name_with_a_double_quote_is_one_clear_problem(harness):
    db = Host("hba1", NOWHERE, False, "running")
    inventory = harness.inventory({"db": [db]}, host_data={"hba1": {"postgres_hba": [
        {"sources": ["10.0.0.0/8"], "users": ['o"brien']}]}}, name="hba_quote")
    lines = [str(p) for p in load(inventory).problems]
    assert len(lines) == 1 and lines[0].startswith("hba1: postgres_hba[0].users[0]"), lines
    assert "without '\"'" in lines[0], lines


def test_shell_word_reads_back_in_sh():
    out = subprocess.run(["sh", "-c", f"printf %s {render.shell(AWKWARD)}"],
                         capture_output=True, text=True, check=True).stdout
    assert out == AWKWARD


def test_yaml_document_reads_back():
    value = {"labels": {"team": AWKWARD, "yes": "no", "on": "*alias"}, "list": ["- x", "#"]}
    assert yaml.safe_load(render.yaml_document(value)) == value


# Every shell script keel renders, with awkward values in every variable it takes: `sh -n`
# (bash -n for claude-headless) parses it.
SCRIPTS = [
    ("sh", "app", "keel-app.sh", lambda: {"engine": "pod man's"}),
    ("sh", "secrets", "keel-secrets.sh", lambda: {
        "run_dir": "/run/keel/my secrets", "store_dir": "/var/lib/keel/it's #1",
        "host_key": "/etc/keel/k$y;x"}),
    ("sh", "node_exporter", "keel-service-health.sh", lambda: {
        "settings": NodeSettings(node_exporter_textfile_dir="/var/lib/text files; #1")}),
    ("sh", "base", "keel-base-metrics", lambda: {
        "metrics_dir": "/var/lib/my metrics", "integrity": False, "flag": "/var/lib/a b/flag"}),
    ("sh", "base", "keel-lock-system-accounts", lambda: {
        "nologin": "/usr/sbin/no login", "exempt": ["sync", "it's"],
        "shells": "getent passwd", "unlocked": "true"}),
    ("sh", "edge", "keel-edge", lambda: {
        "live": "/etc/nginx/keel/live $x", "status_log": "/var/log/nginx/it's.log"}),
    ("bash", "claude_cli", "claude-headless", lambda: {
        "user_name": "claude", "auth_file": "/run/keel/secrets/it's key",
        "wrapper": "/usr/local/bin/claude headless", "bin": "/opt/claude/2.1 x/claude",
        "home": "/var/lib/claude home", "cli_env": {"A": AWKWARD}, "auth_env": "API_KEY"}),
]


@pytest.mark.parametrize("shell, role, template, context", SCRIPTS,
                         ids=[f"{r}/{t}" for _, r, t, _ in SCRIPTS])
def test_rendered_script_parses(shell, role, template, context):
    script = render.render(role, template, **context())
    checked = subprocess.run([shell, "-n"], input=script, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr + script
