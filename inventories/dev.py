"""dev: one all-in-one host (every group), e.g. a VM on a developer's machine."""

from keel.core.inventory import groups

_DEV1 = ("dev1", {"ssh_hostname": "dev1.dev.example.net", "keel_address": "10.30.0.10"})

globals().update(groups("dev", {
    group: [_DEV1] for group in ("app", "agent", "edge", "db", "cache", "mon")
}, source=__file__))
