"""The Claude Code tarball (172 MB) kept on the controller, so only the first test run on a
machine downloads it: copied into a host's cache dir, where claude_cli verifies it against the
registry's integrity before using it (tests/test_claude_cli.py, tests/test_storage.py)."""

from __future__ import annotations

from keel.lab import sandbox

VERSION = "2.1.328"
TARBALL = f"claude-code-linux-x64-{VERSION}.tgz"
HOST_CACHE = "/var/cache/keel/claude-code"  # claude_cli_cache_dir in the tests' data


def _cached():
    path = sandbox.state_dir().parent / "cache" / "claude-code"
    path.mkdir(parents=True, exist_ok=True)
    return path / TARBALL


def seed(host: sandbox.Host) -> None:
    """Before the converge: the controller's copy, if any, into the host's cache dir."""
    if _cached().exists():
        container = sandbox.container_name(host.name)
        sandbox.podman("exec", container, "install", "-d", "-m", "0700", "/var/cache/keel",
                       HOST_CACHE)
        sandbox.podman("cp", str(_cached()), f"{container}:{HOST_CACHE}/{TARBALL}")


def keep(host: sandbox.Host) -> None:
    """After the converge: the host's verified download, if the controller has none yet."""
    cached = _cached()
    if not cached.exists():
        part = cached.with_suffix(".part")
        sandbox.podman("cp", f"{sandbox.container_name(host.name)}:{HOST_CACHE}/{TARBALL}",
                       str(part))
        part.rename(cached)
