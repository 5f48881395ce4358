"""The prod topology on local sandbox hosts (`keel sandbox up prod`), over SSH.

Hosts that are not running are left out.
"""

from keel import sandbox
from keel.inventory import groups

_LAYOUT = {"app": ["app1", "app2"], "edge": ["app1", "app2"], "db": ["db1"], "cache": ["cache1"],
           "mon": ["mon1"]}
_running = {name: h for name, h in sandbox.hosts().items() if h.address}

globals().update(groups("sandbox", {
    group: [(name, sandbox.ssh_data(_running[name])) for name in names if name in _running]
    for group, names in _LAYOUT.items()
}, source=__file__))
