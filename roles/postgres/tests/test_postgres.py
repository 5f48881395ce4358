"""testinfra checks for postgres: behaviour on the host, run by the suite."""


def test_cluster_running_and_listening(host):
    assert host.service("postgresql@15-main").is_running
    assert host.service("postgresql").is_enabled
    assert host.socket("tcp://127.0.0.1:5432").is_listening
    assert host.check_output("pg_lsclusters -h").split()[:4] == ["15", "main", "5432", "online"]


def test_scram_everywhere(host):
    hba = host.file("/etc/postgresql/15/main/pg_hba.conf")
    assert hba.user == "postgres" and hba.mode == 0o640
    methods = {line.split()[-1] for line in hba.content_string.splitlines()
               if line.strip() and not line.startswith("#")}
    assert methods == {"peer", "scram-sha-256"}
    assert "local all postgres peer" in hba.content_string
    sql = "select rolname from pg_authid where rolpassword is not null " \
          "and rolpassword not like 'SCRAM-SHA-256$%'"
    assert host.check_output(f"cd / && runuser -u postgres -- psql -XAtc \"{sql}\"") == ""


def test_data_checksums(host):
    assert host.check_output(
        "cd / && runuser -u postgres -- psql -XAtc 'show data_checksums'") == "on"


def test_password_files(host):
    for role in ("app", "reporting"):
        f = host.file(f"/run/keel/secrets/postgres/{role}.password")
        assert f.user == "postgres" and f.mode == 0o400
    assert host.file("/usr/local/sbin/keel-pg-password").mode == 0o755


def test_backup_unit_and_timer(host):
    assert host.service("keel-pg-backup.timer").is_enabled
    assert host.service("keel-pg-backup.timer").is_running
    backups = host.file("/var/backups/postgresql")
    assert backups.user == "root" and backups.mode == 0o700
    unit = host.file("/etc/systemd/system/keel-pg-backup.service").content_string
    assert "After=postgresql.service keel-secrets.service" in unit


def test_system_dirs_owned_by_root(host):
    for path in ("/etc", "/usr", "/var", "/etc/postgresql-common"):
        assert host.file(path).user == "root"
