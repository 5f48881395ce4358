"""testinfra checks for edge (run by tests/test_edge.py against the edge host)."""


def test_nginx_runs_and_listens(host):
    assert host.service("nginx").is_running and host.service("nginx").is_enabled
    assert host.socket("tcp://0.0.0.0:443").is_listening
    assert host.socket("tcp://0.0.0.0:80").is_listening


def test_config_is_managed_and_tested(host):
    assert host.file("/etc/nginx/nginx.conf").contains("managed by keel")
    assert host.file("/etc/nginx/nginx.conf").contains("include /etc/nginx/keel/live/")
    assert host.run("nginx -t").rc == 0


def _vhost_names(host):
    """Each HTTPS vhost's first server name, from the live config."""
    lines = host.check_output("grep -h '^ *server_name ' /etc/nginx/keel/live/servers.conf")
    return [line.split()[1].rstrip(";") for line in lines.splitlines()]


def test_keys_are_root_only_in_tmpfs(host):
    keys = host.check_output("ls /run/keel/secrets/edge/*.key").split()
    assert keys
    for path in keys:
        key = host.file(path)
        assert key.user == "root" and key.mode == 0o400, path
    # Internal-CA keys are made by keel: at rest only encrypted, next to a public certificate.
    for cert in host.check_output("ls /etc/keel/edge/certs/*.crt").split():
        name = cert.rsplit("/", 1)[1].removesuffix(".crt")
        assert host.file(cert).mode == 0o644
        assert host.file(f"/etc/keel/secrets/edge/{name}.key.age").mode == 0o600


def test_every_vhost_proxies_to_its_upstream(host):
    names = _vhost_names(host)
    assert names
    for name in names:
        status = host.check_output(
            f"curl -sk -o /dev/null -w '%{{http_code}}' --max-time 5 "
            f"--resolve {name}:443:127.0.0.1 https://{name}/health")
        assert status == "200", name


def test_nginx_waits_for_secrets(host):
    unit = host.file("/etc/systemd/system/nginx.service.d/keel.conf")
    assert unit.contains("After=keel-secrets.service")
