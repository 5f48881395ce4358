"""Rollback: services that run the data's current definition go back to the one it replaced."""

from __future__ import annotations

import hashlib

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import Sha1File
from pyinfra.operations import server, systemd
from pyinfra.operations.util import any_changed

from roles.app import record_release
from roles.app.schema import Settings, start_order
from roles.app.units import UNIT_DIR, built_image, render_unit, unit_name


@deploy("app rollback")
def rollback(settings: Settings) -> None:
    """Return services that run the data's current definition to the one they replaced.

    Hosts that a failed rolling update never reached still run the old definition, so they
    are left alone; hosts it updated go back. Revert the data afterwards (a plan shows drift).
    """
    images = {name: svc.image or built_image(svc.build)
              for name, svc in settings.app_services.items()}
    restore = {}
    for name in start_order(settings.app_services):
        path = f"{UNIT_DIR}/{unit_name(name)}"
        previous = f"{settings.app_state_dir}/previous/{unit_name(name)}"
        content = render_unit(settings, name, settings.app_services[name], images[name])
        if host.get_fact(Sha1File, path=path) == hashlib.sha1(content.encode()).hexdigest() \
                and host.get_fact(Sha1File, path=previous):
            restore[name] = server.shell(name=f"Restore previous definition of {name}",
                                         commands=[f"mv {previous} {path}"])
    if restore:
        systemd.daemon_reload(name="Reload systemd units", _if=any_changed(*restore.values()))
    for name in restore:
        server.shell(name=f"Recreate {name} on its previous definition (waits for health)",
                     commands=[f"systemctl restart {unit_name(name)}"])
    if restore:
        record_release(settings, list(restore.values()))
