"""testinfra checks for redis: behaviour on the host, run by the suite."""


def test_running_and_listening(host):
    assert host.service("redis-server").is_running
    assert host.service("redis-server").is_enabled
    assert host.socket("tcp://127.0.0.1:6379").is_listening


def test_config_files(host):
    conf = host.file("/etc/redis/redis.conf")
    assert conf.user == "root" and conf.group == "redis" and conf.mode == 0o640
    assert "protected-mode yes" in conf.content_string
    assert "include /run/keel/secrets/redis/users.conf" in conf.content_string
    users = host.file("/run/keel/secrets/redis/users.conf")
    assert users.user == "redis" and users.mode == 0o400
    assert "user default reset off" in users.content_string
    dropin = host.file("/etc/systemd/system/redis-server.service.d/keel.conf").content_string
    assert "After=keel-secrets.service" in dropin


def test_system_dirs_owned_by_root(host):
    for path in ("/etc", "/usr", "/var"):
        assert host.file(path).user == "root"
