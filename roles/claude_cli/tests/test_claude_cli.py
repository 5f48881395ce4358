"""testinfra: the CLI, its user, its files (run by tests/test_claude_cli.py)."""

import json


def test_cli_user_is_not_root(host):
    user = host.user("claude")
    assert user.uid != 0 and user.home == "/var/lib/claude" and user.shell == "/usr/sbin/nologin"


def test_pinned_binary_and_link(host):
    link = host.file("/usr/local/bin/claude")
    assert link.is_symlink and link.linked_to == "/opt/claude-code/2.1.328/claude"
    assert host.file("/opt/claude-code/2.1.328/claude").user == "root"
    assert host.file("/opt/claude-code/2.1.328/claude").mode == 0o755


def test_files_owned_by_claude_and_private(host):
    for path, mode in (("/var/lib/claude/.claude", 0o700),
                       ("/var/lib/claude/.claude/settings.json", 0o600),
                       ("/var/lib/claude/.claude/agents/planner.md", 0o600),
                       ("/run/keel/secrets/claude/auth", 0o400)):
        f = host.file(path)
        assert (f.user, f.group, f.mode) == ("claude", "claude", mode), path


def test_settings_json(host):
    settings = json.loads(host.file("/var/lib/claude/.claude/settings.json").content_string)
    assert settings["env"]["DISABLE_AUTOUPDATER"] == "1"


def test_sudoers_valid(host):
    assert host.run("visudo -cf /etc/sudoers.d/keel-claude-cli").rc == 0
