"""pytest fixtures for tests on real sandbox hosts."""

from __future__ import annotations

import os
import shutil

import pytest

from keel import ROOT
from keel.lab import sandbox
from keel.lab.testing import Harness


def pytest_addoption(parser):
    parser.addoption("--keep-hosts", action="store_true",
                     help="leave the sandbox hosts that tests started running")


@pytest.fixture(scope="module")
def sandbox_hosts(request):
    """Start named sandbox hosts, fresh (any old container of that name is removed first).

    Each test module uses its own host names, so modules never share a host; its hosts are
    removed when the module ends (a worker would otherwise keep every module's hosts, and
    their services, running until the whole run ends).
    """
    started: list[str] = []

    def start(*names: str, privileged: bool = False) -> list[sandbox.Host]:
        started.extend(names)  # first: a host that fails to boot is removed too
        return sandbox.up(list(names), privileged=privileged, fresh=True, log=lambda m: None)

    yield start
    if started and not (request.config.getoption("--keep-hosts") or os.environ.get("KEEL_KEEP")):
        sandbox.down(started)


class SecretsEnv:
    """A throwaway secrets dir and identity for the sandbox environment."""

    def __init__(self, root):
        from keel.core import store

        self.root = root
        self.env = {"KEEL_SECRETS_DIR": str(root / "secrets"),
                    "KEEL_AGE_KEY_FILE": str(root / "age" / "keys.txt")}
        # The repo's other environments stay as committed (their values are never decrypted
        # in tests); the sandbox and the VM (per machine, not committed) get throwaway values.
        if (ROOT / "secrets").is_dir():
            shutil.copytree(ROOT / "secrets", root / "secrets",
                            ignore=shutil.ignore_patterns("sandbox.*", "vm.*"))
        os.environ.update(self.env)
        _, public, _ = store.create_identity()
        store.set_recipients("sandbox", [public])
        # group_data/sandbox.py turns app data backups on: their repository's password.
        store.put("sandbox", "restic_password", store.generate(32))

    def set(self, name: str, value: str) -> None:
        from keel.core import store

        store.put("sandbox", name, value)


@pytest.fixture(scope="session", autouse=True)
def secrets_env(tmp_path_factory) -> SecretsEnv:
    """Every test run uses its own sandbox secrets, never the developer's secrets/ dir."""
    return SecretsEnv(tmp_path_factory.mktemp("keel-secrets"))


@pytest.fixture(scope="module")
def harness(tmp_path_factory) -> Harness:
    return Harness(tmp_path_factory.mktemp("keel"))


_DURATIONS = pytest.StashKey[list]()


@pytest.fixture(scope="session")
def report_duration(request):
    """report_duration(what, seconds): a line in the summary at the end of the run (lines
    from xdist workers are not collected: run such modules without -n)."""
    lines = request.config.stash.setdefault(_DURATIONS, [])
    return lambda what, seconds: lines.append(f"{what}: {seconds / 60:.1f} min")


def pytest_terminal_summary(terminalreporter, config):
    lines = config.stash.get(_DURATIONS, [])
    if lines:
        terminalreporter.section("durations")
        for line in lines:
            terminalreporter.write_line(line)
