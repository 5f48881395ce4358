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
