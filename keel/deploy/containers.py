"""Container engine facts and helpers shared by container_runtime and app.

podman and docker take the same commands for what keel does (images, networks, volumes,
inspect), so one fact serves both: each takes the engine's binary name.
"""

from __future__ import annotations

import json
import shlex

from pyinfra.api import FactBase

ENGINES = ("podman", "docker")
# Where registry logins live: tmpfs, so credentials never rest on disk unencrypted.
AUTH_DIR = "/run/keel/container-auth"


# The variable that points each engine's CLI at keel's logins, and its value.
AUTH_ENV = {"podman": ("REGISTRY_AUTH_FILE", f"{AUTH_DIR}/auth.json"),
            "docker": ("DOCKER_CONFIG", f"{AUTH_DIR}/docker")}


def auth_env(engine: str) -> str:
    """Shell prefix that points the engine's CLI at keel's registry logins, when there are any."""
    var, path = AUTH_ENV[engine]
    return f"[ -e {path} ] && export {var}={path}; "


class ImageLabel(FactBase):
    """A local image's label value ("" if it has none), or None when the image is absent."""

    def requires_command(self, engine: str, image: str, label: str) -> str:
        return engine

    def command(self, engine: str, image: str, label: str) -> str:
        fmt = shlex.quote(f'{{{{index .Config.Labels "{label}"}}}}')
        return f"{engine} image inspect --format {fmt} {shlex.quote(image)} 2>/dev/null || true"

    def process(self, output) -> str | None:
        if not output:
            return None
        value = output[0].strip()
        return "" if value == "<no value>" else value


class ImageExists(FactBase):
    """Whether the engine has the image locally (False without the engine)."""

    default = bool

    def requires_command(self, engine: str, image: str) -> str:
        return engine

    def command(self, engine: str, image: str) -> str:
        return f"{engine} image inspect {shlex.quote(image)} >/dev/null 2>&1 && echo yes || true"

    def process(self, output) -> bool:
        return "yes" in output


class Networks(FactBase):
    """{network name: {label: value}} for the engine's networks."""

    default = dict

    def requires_command(self, engine: str) -> str:
        return engine

    def command(self, engine: str) -> str:
        return (f"for n in $({engine} network ls --format '{{{{.Name}}}}'); do "
                f"echo \"$n $({engine} network inspect --format '{{{{json .Labels}}}}' \"$n\")\";"
                " done")

    def process(self, output) -> dict[str, dict[str, str]]:
        found = {}
        for line in output:
            name, _, labels = line.partition(" ")
            found[name] = json.loads(labels) if labels.strip() not in ("", "null") else {}
        return found


class Volumes(FactBase):
    """{volume name: {"owner": "uid:gid", "mode": "755", "path": mountpoint}}."""

    default = dict

    def requires_command(self, engine: str) -> str:
        return engine

    def command(self, engine: str) -> str:
        return (f"for v in $({engine} volume ls -q); do "
                f"m=$({engine} volume inspect --format '{{{{.Mountpoint}}}}' \"$v\"); "
                "echo \"$v $(stat -c '%u:%g %a' \"$m\") $m\"; done")

    def process(self, output) -> dict[str, dict[str, str]]:
        found = {}
        for line in output:
            parts = line.split()
            if len(parts) == 4:
                found[parts[0]] = {"owner": parts[1], "mode": parts[2], "path": parts[3]}
        return found


class PathModes(FactBase):
    """{path: "uid:gid mode"} for the paths that exist (numeric owners, unlike files.File)."""

    default = dict

    def command(self, paths: list[str]) -> str:
        quoted = " ".join(shlex.quote(p) for p in paths)
        return f"stat -c '%n %u:%g %a' {quoted} 2>/dev/null || true"

    def process(self, output) -> dict[str, str]:
        found = {}
        for line in output:
            path, owner, mode = line.rsplit(" ", 2)
            found[path] = f"{owner} {mode}"
        return found
