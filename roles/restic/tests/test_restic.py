"""testinfra checks for restic: behaviour on the host, run by the suite."""


def test_repository_and_password(host):
    repo = host.file("/var/backups/restic")
    assert repo.user == "root" and repo.mode == 0o700
    password = host.file("/run/keel/secrets/restic/password")
    assert password.user == "root" and password.mode == 0o400
    assert host.run("keel-restic initialised").rc == 0


def test_timer(host):
    assert host.service("keel-restic.timer").is_enabled
    assert host.service("keel-restic.timer").is_running


def test_settings_hold_no_secret(host):
    settings = host.file("/etc/keel/restic.json")
    assert settings.mode == 0o644 and "password_file" in settings.content_string
    assert host.file("/usr/local/sbin/keel-restic").mode == 0o755
