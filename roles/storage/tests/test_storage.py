"""testinfra checks for storage (default user and paths): the consumers' environment file,
private to the app user, and with the local backend its data tree."""

import pytest

ENV = "/run/keel/secrets/app/storage.env"


@pytest.fixture(scope="module")
def env(host):
    return host.file(ENV)


def test_env_file_private_to_the_app_user(host, env):
    assert (env.user, env.group, env.mode) == ("app", "app", 0o400)
    assert "STORAGE_BACKEND=" in env.content_string


def test_local_backend_tree_owner_and_modes(host, env):
    if "STORAGE_BACKEND=local\n" not in env.content_string:
        pytest.skip("not the local backend")
    for path, mode in ((".", 0o750), ("db", 0o750), ("credentials", 0o700),
                       ("config", 0o750), ("config/agents", 0o750), ("config/skills", 0o750)):
        f = host.file(f"/srv/app/data/{path}")
        assert (f.user, f.group, f.mode) == ("app", "app", mode), path
