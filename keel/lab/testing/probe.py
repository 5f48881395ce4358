"""Helpers for roles' testinfra tests (roles/<name>/tests/test_*.py): HTTP from the host, and
what a service's processes look like."""

from __future__ import annotations

import time


def address(host) -> str:
    """The address testinfra reaches the host at: its keel_address on the sandbox network."""
    return host.backend.get_hostname()


def http_get(host, port: int, path: str = "/metrics", *, until: str | None = None,
             timeout: float = 30) -> str:
    """GET http://<address>:<port><path> with the host's curl. With `until`, retry (services
    that have just started, first scrapes) until the body contains it or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        result = host.run(f"curl -gsf --max-time 5 'http://{address(host)}:{port}{path}'")
        if result.rc == 0 and (until is None or until in result.stdout):
            return result.stdout
        if until is None or time.monotonic() > deadline:
            raise AssertionError(f"GET :{port}{path}: rc {result.rc}, wanted {until!r}:\n"
                                 f"{result.stdout[-2000:]}{result.stderr}")
        time.sleep(1)


def runs_as_after_secrets(host, service: str, user: str) -> None:
    """The service is running and enabled, as `user`, and keel's drop-in orders it after
    keel-secrets (so its secret files exist when it starts)."""
    assert host.service(service).is_running and host.service(service).is_enabled
    assert host.check_output(f"ps -o user= -C {service}") == user
    dropin = host.file(f"/etc/systemd/system/{service}.service.d/keel.conf")
    assert dropin.contains("After=keel-secrets.service")


def cmdline(host, service: str) -> str:
    """The command line of the service's oldest process, arguments separated by spaces."""
    return host.check_output(f"cat /proc/$(pgrep -o -f {service})/cmdline | tr '\\0' ' '")
