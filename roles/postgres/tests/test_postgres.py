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


def test_backups_and_archiving(host):
    for timer in ("keel-pg-backup-full.timer", "keel-pg-backup-diff.timer",
                  "keel-pg-backup-metrics.timer"):
        assert host.service(timer).is_enabled and host.service(timer).is_running
    unit = host.file("/etc/systemd/system/keel-pg-backup@.service").content_string
    assert "After=postgresql.service keel-secrets.service" in unit
    repo = host.file("/var/lib/pgbackrest")
    assert repo.user == "postgres" and repo.mode == 0o750
    conf = host.file("/run/keel/secrets/postgres/pgbackrest.conf")
    assert conf.user == "postgres" and conf.mode == 0o400
    sql = "cd / && runuser -u postgres -- psql -XAtc 'show {}'"
    assert host.check_output(sql.format("archive_mode")) == "on"
    assert "pgbackrest" in host.check_output(sql.format("archive_command"))
    assert host.run("cd / && runuser -u postgres -- pgbackrest --stanza=main "
                    "--config=/run/keel/secrets/postgres/pgbackrest.conf check").rc == 0


def test_system_dirs_owned_by_root(host):
    for path in ("/etc", "/usr", "/var", "/etc/postgresql-common"):
        assert host.file(path).user == "root"
