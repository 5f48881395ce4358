"""The pyinfra CLI with a trace: each remote command and file transfer, counted and timed, and
each role's time, per host. pyinfra's --json has neither.

    python bench/trace.py TRACE.json [pyinfra arguments...]

A role's time is its prepare time (its `apply` running: facts, templates, data) plus the
execution of its operations. Remote commands are attributed to the role whose deploy or
operation issued them; anything else (connecting, facts outside a role) to "(pyinfra)".
On one host the parts add up to the run; on a fleet pyinfra interleaves hosts (gevent), so
read per-role seconds on a single host.
"""

from __future__ import annotations

import atexit
import json
import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from functools import wraps
from pathlib import Path

from pyinfra.api import operations
from pyinfra.api.host import Host
from pyinfra.context import state as current_state
from pyinfra_cli.main import main

OTHER = "(pyinfra)"
START = time.monotonic()
roles: dict = defaultdict(lambda: {"prepare_s": 0.0, "execute_s": 0.0, "remote_s": 0.0,
                                   "commands": 0, "uploads": 0, "execute_commands": 0})
# (host, operation) -> [seconds, remote commands] of its execution, to find what dominates.
ops: dict = defaultdict(lambda: [0.0, 0])
phases = {"execute_start": None}


def _role_of_name(name: str | None) -> str:
    return name.split(" | ")[0] if name else OTHER


def _op_name(op_hash: str) -> str:
    return sorted(current_state.op_meta[op_hash].names or ["?"])[0]


def role_of(host: Host) -> str:
    if host.executing_op_hash:
        name = _op_name(host.executing_op_hash)
        return _role_of_name(name) if " | " in name else OTHER
    return _role_of_name(host.current_deploy_name)


def _counted(method, kind: str):
    @wraps(method)
    def wrapper(self: Host, *args, **kwargs):
        start = time.monotonic()
        try:
            return method(self, *args, **kwargs)
        finally:
            entry = roles[(self.name, role_of(self))]
            entry["remote_s"] += time.monotonic() - start
            entry[kind] += 1
            if self.executing_op_hash:
                entry["execute_commands"] += 1
                ops[(self.name, _op_name(self.executing_op_hash))][1] += 1
    return wrapper


Host.run_shell_command = _counted(Host.run_shell_command, "commands")
Host.put_file = _counted(Host.put_file, "uploads")
Host.get_file = _counted(Host.get_file, "commands")

_deploy = Host.deploy


@contextmanager
def _timed_deploy(self: Host, name, *args, **kwargs):
    top = not self.current_deploy_name and name
    start = time.monotonic()
    with _deploy(self, name, *args, **kwargs):
        yield
    if top:
        roles[(self.name, name)]["prepare_s"] += time.monotonic() - start


Host.deploy = _timed_deploy

_run_host_op = operations.run_host_op


def _timed_run_host_op(state, host, op_hash):
    if phases["execute_start"] is None:
        phases["execute_start"] = time.monotonic() - START
    start = time.monotonic()
    try:
        return _run_host_op(state, host, op_hash)
    finally:
        name = _op_name(op_hash)
        role = _role_of_name(name) if " | " in name else OTHER
        roles[(host.name, role)]["execute_s"] += time.monotonic() - start
        ops[(host.name, name)][0] += time.monotonic() - start


operations.run_host_op = _timed_run_host_op


def _write(path: Path) -> None:
    hosts: dict = defaultdict(dict)
    for (host, role), entry in roles.items():
        hosts[host][role] = {k: round(v, 3) if isinstance(v, float) else v
                             for k, v in entry.items()}
    operations: dict = defaultdict(dict)
    for (host, name), (seconds, commands) in ops.items():
        operations[host][name] = {"execute_s": round(seconds, 3), "commands": commands}
    path.write_text(json.dumps({"total_s": round(time.monotonic() - START, 3),
                                "execute_start_s": phases["execute_start"],
                                "hosts": hosts, "operations": operations}, indent=2))


if __name__ == "__main__":
    out = Path(sys.argv.pop(1))
    atexit.register(_write, out)
    sys.argv[0] = "pyinfra"
    sys.exit(main())
