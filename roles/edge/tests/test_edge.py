"""testinfra checks for edge (run by tests/test_edge.py against the edge host)."""


def test_nginx_runs_and_listens(host):
    assert host.service("nginx").is_running and host.service("nginx").is_enabled
    assert host.socket("tcp://0.0.0.0:443").is_listening
    assert host.socket("tcp://0.0.0.0:80").is_listening


def test_config_is_managed_and_tested(host):
    assert host.file("/etc/nginx/nginx.conf").contains("managed by keel")
    assert host.file("/etc/nginx/nginx.conf").contains("include /etc/nginx/keel/live/")
    assert host.run("nginx -t").rc == 0


def test_keys_are_root_only_in_tmpfs(host):
    for name in ("proxy", "provided"):
        key = host.file(f"/run/keel/secrets/edge/{name}.key")
        assert key.user == "root" and key.mode == 0o400
    assert host.file("/etc/keel/secrets/edge/proxy.key.age").mode == 0o600
    assert host.file("/etc/keel/edge/certs/proxy.crt").mode == 0o644


def test_nginx_waits_for_secrets(host):
    unit = host.file("/etc/systemd/system/nginx.service.d/keel.conf")
    assert unit.contains("After=keel-secrets.service")
