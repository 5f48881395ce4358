"""claude_cli on a real host: the pinned CLI as its own user, settings and sub-agents from data,
and the headless wrapper's exact argv (captured from /proc) with the key only in its environment.

The 172 MB tarball comes from the controller's cache when it has one (tests/claude_cache.py).
"""

import hashlib
import json
import re
import secrets as random
import shlex
import subprocess

import claude_cache
import pytest
from claude_cache import VERSION

from keel import ROOT
from keel.lab.testing import run_testinfra, ssh

pytestmark = pytest.mark.sandbox
DEPLOY = "tests/deploys/claude_cli.py"
DATA = ROOT / "roles/claude_cli/tests/data.py"

@pytest.fixture(scope="module")
def key(secrets_env):
    value = "sk-ant-keel-canary-" + random.token_hex(16)
    secrets_env.set("claude_api_key", value)
    return value


@pytest.fixture(scope="module")
def converged(sandbox_hosts, harness, key):
    (host,) = sandbox_hosts("k-cli1")
    claude_cache.seed(host)
    inventory = harness.inventory({"app": [host]}, data_files=[DATA])
    runs = harness.assert_idempotent(inventory, DEPLOY)
    claude_cache.keep(host)
    return host, inventory, runs


def test_cli_runs_as_claude_at_the_pinned_version(converged):
    host, _, _ = converged
    out = ssh(host, "runuser -u claude -- claude --version")
    assert out.stdout.strip() == f"{VERSION} (Claude Code)", out.stderr
    assert ssh(host, "id -u claude").stdout.strip() != "0"


def test_settings_and_subagents_from_data(converged):
    host, _, _ = converged
    settings = json.loads(ssh(host, "cat /var/lib/claude/.claude/settings.json").stdout)
    assert settings["model"] == "opus"
    assert settings["permissions"] == {"allow": ["Read", "Grep", "Glob", "Bash(git diff:*)"],
                                       "deny": ["WebFetch"]}
    assert settings["env"]["DISABLE_AUTOUPDATER"] == "1"
    agents = ssh(host, "ls /var/lib/claude/.claude/agents").stdout.split()
    assert agents == ["planner.md", "reviewer.md"]
    planner = ssh(host, "cat /var/lib/claude/.claude/agents/planner.md").stdout
    assert planner.startswith("---\n") and "\nname: planner\n" in planner
    assert "\ntools: Read, Grep\n" in planner and "\nmodel: sonnet\n---\n" in planner
    env = ssh(host, "cat /etc/keel/app/claude-cli.env").stdout
    assert "DEFAULT_MODEL=opus\n" in env and "ENABLE_SUBAGENTS=true\n" in env
    assert "DEFAULT_ALLOWED_TOOLS=Read,Grep,Glob,Bash(git diff:*)\n" in env


def test_testinfra_checks(converged):
    host, _, _ = converged
    result = run_testinfra([host], ROOT / "roles/claude_cli/tests")
    assert result.returncode == 0, result.stdout + result.stderr


CAPTURE = """
nft add table inet ktest
nft 'add chain inet ktest out { type filter hook output priority 0; }'
nft add rule inet ktest out meta skuid claude oif != lo counter reject
cd /tmp
timeout 12 setpriv --reuid=nobody --regid=nogroup --clear-groups -- \
    claude-headless ARGS >/tmp/h.out 2>/tmp/h.err &
w=$!
end=$((SECONDS + 8))
while [ $SECONDS -lt $end ]; do
    for d in /proc/[0-9]*; do
        c=$(tr '\\0' '\\037' < $d/cmdline 2>/dev/null) || continue
        [ -n "$c" ] && echo "${d#/proc/} $(stat -c %U $d) $c"
        case "$c" in /usr/local/bin/claude$'\\037'*)
            # Only its own user may read its environment (no CAP_SYS_PTRACE here).
            echo "env-key $(setpriv --reuid=claude --regid=claude --clear-groups cat $d/environ |
                tr '\\0' '\\n' | sed -n 's/^ANTHROPIC_API_KEY=//p' | sha256sum | cut -c1-64)";;
        esac
    done
done
wait $w; echo "rc=$?"
echo "stderr=$(cat /tmp/h.err)"
nft list table inet ktest | grep -o 'packets [0-9]*'
nft delete table inet ktest
"""


def test_wrapper_argv_from_process_capture(converged, key):
    host, _, _ = converged
    agents = json.dumps({"planner": {"description": "Plans", "prompt": "Plan it."}})
    wanted = ["--model", "sonnet", "--allowedTools", "Read,Grep", "--agents", agents,
              "--", "Summarize the repo; don't edit"]
    script = CAPTURE.replace("ARGS", shlex.join(wanted))
    out = subprocess.run(host.ssh_argv("bash -s"), input=script, capture_output=True,
                         text=True, timeout=60).stdout
    argvs = {tuple(line.split(" ", 2)[2].split("\x1f")[:-1]) for line in out.splitlines()
             if re.match(r"^\d+ claude /usr/local/bin/claude\x1f", line)}
    assert argvs == {("/usr/local/bin/claude", "-p", "--output-format", "json",
                      "--dangerously-skip-permissions", "--model", "sonnet",
                      "--allowedTools", "Read,Grep", "--agents", agents, "--",
                      "Summarize the repo; don't edit")}, out
    assert key not in out, "the key is on some process's argv"
    digest = hashlib.sha256(key.encode() + b"\n").hexdigest()
    assert f"env-key {digest}" in out, "the CLI did not get the key in its environment"
    # No network: the CLI itself kept trying (reject counter), until the test's timeout.
    assert "rc=124" in out and "stderr=\n" in out, out
    packets = int(re.search(r"packets (\d+)", out).group(1))
    assert packets > 0, "the CLI never tried the network"


def test_wrapper_rejects_bad_usage(converged):
    host, _, _ = converged
    out = ssh(host, "claude-headless --bogus x; echo rc=$?")
    assert "unknown option --bogus" in out.stderr and "rc=64" in out.stdout


def test_changing_the_pin_plans_an_upgrade(converged, harness):
    host, _, _ = converged
    inventory = harness.inventory({"app": [host]}, data_files=[DATA],
                                  data={"claude_cli_version": "2.1.327"}, name="upgrade")
    plan = harness.run(inventory, DEPLOY, dry=True).check()
    assert {"claude_cli | Install Claude Code 2.1.327", "claude_cli | claude -> 2.1.327",
            "claude_cli | Remove other Claude Code versions"} <= set(plan.changed()["k-cli1"])
