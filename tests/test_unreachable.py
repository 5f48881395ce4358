"""SSH refused and SSH hanging: bounded by the connect timeouts in group_data/all.py, the
host is named in the report and the run exits non-zero (issue #20). Loopback only."""

from __future__ import annotations

import socket
import threading
import time

from keel.lab.sandbox import Host


def test_refused_and_hanging_ssh_fail_within_the_connect_timeout(harness):
    hanging = socket.socket()
    hanging.bind(("127.0.0.1", 0))
    hanging.listen(8)  # accepts TCP (the kernel completes the handshake), never says a word
    held = []
    stop = threading.Event()

    def accept():
        hanging.settimeout(0.5)
        while not stop.is_set():
            try:
                held.append(hanging.accept()[0])
            except OSError:
                pass

    threading.Thread(target=accept, daemon=True).start()
    refused = socket.socket()
    refused.bind(("127.0.0.1", 0))
    refused_port = refused.getsockname()[1]
    refused.close()  # nothing listens there now: connections are refused
    hosts = [Host("hang1", "127.0.0.1", False, "running"),
             Host("refused1", "127.0.0.1", False, "running")]
    inventory = harness.inventory(
        {"app": hosts}, name="unreachable",
        host_data={"hang1": {"ssh_port": hanging.getsockname()[1]},
                   "refused1": {"ssh_port": refused_port}})
    try:
        started = time.monotonic()
        run = harness.run(inventory, "deploys/site.py", timeout=120)
        took = time.monotonic() - started
    finally:
        stop.set()
        for conn in held:
            conn.close()
        hanging.close()
    assert run.returncode != 0, run.output
    assert "hang1" in run.output and "refused1" in run.output, run.output
    assert took < 60, f"the run took {took:.0f}s"
    assert "internal exception" not in run.output.lower(), run.output
