"""The prod topology on local sandbox hosts (`keel sandbox up prod`), over SSH.

Hosts that are not running are left out. KEEL_SANDBOX_PREFIX names hosts with a prefix
(`e-` gives e-app1, e-app2, e-db1, ...), so several people can share one machine. KEEL_DATA
names extra data files (colon-separated), applied last, e.g. an example stack:
`KEEL_DATA=examples/app/web_stack.py`.
"""

import os
from pathlib import Path

from keel.core.inventory import groups
from keel.lab import sandbox

_PREFIX = os.environ.get("KEEL_SANDBOX_PREFIX", "")
_LAYOUT = {"app": ["app1", "app2"], "agent": ["app1", "app2"], "edge": ["app1", "app2"],
           "db": ["db1"], "cache": ["cache1"], "mon": ["mon1"]}
_running = {name: h for name, h in sandbox.hosts().items() if h.address}

globals().update(groups("sandbox", {
    group: [(_PREFIX + name, sandbox.ssh_data(_running[_PREFIX + name]))
            for name in names if _PREFIX + name in _running]
    for group, names in _LAYOUT.items()
}, source=__file__,
    extra_files=[Path(p) for p in os.environ.get("KEEL_DATA", "").split(":") if p]))
