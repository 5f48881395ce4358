"""testinfra checks for secrets: the host's own identity, private, and the decrypt unit."""


def test_host_identity_is_root_only(host):
    assert host.file("/etc/keel/age").mode == 0o700
    key = host.file("/etc/keel/age/host.key")
    assert (key.user, key.mode) == ("root", 0o600)
    assert key.contains("AGE-SECRET-KEY-")
    assert host.file("/etc/keel/age/host.pub").content_string.startswith("age1")
    assert host.file("/etc/keel/secrets").mode == 0o700


def test_decrypt_unit_ran_into_tmpfs(host):
    unit = host.service("keel-secrets")
    assert unit.is_enabled and unit.is_running  # a oneshot that remains active
    assert host.file("/usr/local/sbin/keel-secrets").mode == 0o755
    assert host.check_output("stat -f -c %T /run") == "tmpfs"
