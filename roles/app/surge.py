"""Surge: a service's new definition beside the running one, for releases where its host is
the only server of its edge upstream (keel rollout). Its unit lives in /run/systemd/system,
so it is never part of the converged state and is gone after a reboot."""

from __future__ import annotations

import hashlib

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import FindFiles, Sha1File
from pyinfra.operations import files, server, systemd

from keel.deploy.ops import text
from roles.app import accounts, configs, ensure_images
from roles.app.schema import Settings, start_order
from roles.app.units import UNIT_DIR, render_unit, surge_unit, unit_name

SURGE_DIR = "/run/systemd/system"


def _surge_unit_name(name: str) -> str:
    return unit_name(f"{name}-surge")


@deploy("app surge")
def start(settings: Settings) -> None:
    """Start <name>-surge for each service with a surge port whose definition changes, and
    wait for its health; the running service is not touched."""
    images = ensure_images(settings)
    # The new definition's config copies: new paths, so the running service keeps its own.
    configs(settings, accounts(settings))
    for name in start_order(settings.app_services):
        svc = settings.app_services[name]
        content = render_unit(settings, name, svc, images[name])
        unit = surge_unit(settings, name, svc, images[name])
        current = host.get_fact(Sha1File, path=f"{UNIT_DIR}/{unit_name(name)}")
        if unit is None or current == hashlib.sha1(content.encode()).hexdigest():
            continue
        files.put(name=f"Surge unit for {name}", src=text(unit),
                  dest=f"{SURGE_DIR}/{_surge_unit_name(name)}")
        systemd.daemon_reload(name=f"Reload systemd units (surge of {name})")
        server.shell(name=f"Start {name}-surge beside {name} (waits for health)",
                     commands=[f"systemctl restart {_surge_unit_name(name)}"])


@deploy("app surge end")
def stop(settings: Settings) -> None:
    """Stop and remove every surge copy."""
    for path in host.get_fact(FindFiles, path=SURGE_DIR, fname="app-*-surge.service", maxdepth=1):
        unit = path.rsplit("/", 1)[1]
        server.shell(name=f"Stop {unit.removesuffix('.service')}",
                     commands=[f"systemctl stop {unit}", f"rm -f {path}",
                               "systemctl daemon-reload"])
