"""testinfra checks for app: units, files and modes; behaviour is in tests/test_containers.py."""

import pytest


@pytest.fixture(scope="module")
def units(host):
    out = host.check_output("grep -l '^# managed by keel: roles/app' "
                            "/etc/systemd/system/app-*.service")
    return [path.rsplit("/", 1)[1] for path in out.split()]


def test_each_service_is_an_enabled_running_unit(host, units):
    assert units
    for unit in units:
        assert host.service(unit).is_enabled and host.service(unit).is_running
        f = host.file(f"/etc/systemd/system/{unit}")
        assert f.user == "root" and f.mode == 0o644


def test_helper_and_state(host):
    helper = host.file("/usr/local/libexec/keel-app")
    assert helper.user == "root" and helper.mode == 0o755
    state = host.file("/var/lib/keel/app")
    assert state.is_directory and state.mode == 0o700


def test_no_secret_in_units_or_world_readable(host, units):
    for unit in units:
        content = host.file(f"/etc/systemd/system/{unit}").content_string
        # Secrets appear only as paths under /run/keel/secrets.
        assert "PASSWORD=" not in content
    found = host.run("find /run/keel -type f -perm /o=r 2>/dev/null").stdout.strip()
    assert found == ""


def test_configs_writable_by_nobody_and_not_world_readable(host):
    """Each service's config copies (if any): read-only for their owner, nothing for others."""
    found = host.run("find /etc/keel/app/configs -type f -perm /0222 -o -type f -perm /o=rwx "
                     "2>/dev/null").stdout.strip()
    assert found == ""
