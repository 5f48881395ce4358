"""testinfra checks for container_runtime: the engine runs containers as configured."""

import pytest


@pytest.fixture(scope="module")
def engine(host):
    return "docker" if host.exists("dockerd") else "podman"


def test_engine_configured(host, engine):
    if engine == "podman":
        conf = host.file("/etc/containers/containers.conf")
        assert conf.user == "root" and conf.mode == 0o644
        assert conf.content_string.startswith("# managed by keel")
        runtime = host.check_output("podman info --format '{{.Host.OCIRuntime.Name}}'")
        assert f'runtime = "{runtime}"' in conf.content_string
        assert "log_size_max = 10485760" in conf.content_string
        assert host.file("/etc/containers/registries.conf.d/50-keel.conf").exists
    else:
        assert host.service("docker").is_running and host.service("docker").is_enabled
        assert host.check_output("docker info --format '{{.LoggingDriver}}'") == "json-file"


def test_host_image_holds_no_host_secrets(host, engine):
    image = "localhost/keel/debian-host:12"
    listing = host.check_output(f"{engine} run --rm {image} ls -a /etc /root")
    for private in ("shadow", "gshadow", "ssh", "keel", "sudoers"):
        assert private not in listing.split()
    assert host.run(f"{engine} run --rm {image} python3 -c 'print(1)'").stdout.strip() == "1"
