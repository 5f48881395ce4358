"""pytest fixtures for tests on real sandbox hosts."""

from __future__ import annotations

import os

import pytest

from keel import sandbox
from keel.testing import Harness


def pytest_addoption(parser):
    parser.addoption("--keep-hosts", action="store_true",
                     help="leave the sandbox hosts that tests started running")


@pytest.fixture(scope="session")
def sandbox_hosts(request):
    """Start named sandbox hosts, fresh (any old container of that name is removed first).

    Each test module uses its own host names, so modules never share a host.
    """
    started: list[str] = []

    def start(*names: str, privileged: bool = False) -> list[sandbox.Host]:
        hosts = sandbox.up(list(names), privileged=privileged, fresh=True, log=lambda m: None)
        started.extend(names)
        return hosts

    yield start
    if started and not (request.config.getoption("--keep-hosts") or os.environ.get("KEEL_KEEP")):
        sandbox.down(started)


@pytest.fixture(scope="module")
def harness(tmp_path_factory) -> Harness:
    return Harness(tmp_path_factory.mktemp("keel"))


_DURATIONS = pytest.StashKey[list]()


@pytest.fixture(scope="session")
def report_duration(request):
    """report_duration(what, seconds): a line in the summary at the end of the run."""
    lines = request.config.stash.setdefault(_DURATIONS, [])
    return lambda what, seconds: lines.append(f"{what}: {seconds / 60:.1f} min")


def pytest_terminal_summary(terminalreporter, config):
    lines = config.stash.get(_DURATIONS, [])
    if lines:
        terminalreporter.section("durations")
        for line in lines:
            terminalreporter.write_line(line)
