"""What the app role reads from a host: its services' units, their state, and host accounts."""

from __future__ import annotations

from pyinfra.api import FactBase

from roles.app.units import CONFIG_DIR, MARKER, UNIT_DIR


class Units(FactBase):
    """Names of the services whose units keel's app role wrote."""

    default = list

    def command(self) -> str:
        return (f"grep -l '^{MARKER}' {UNIT_DIR}/app-*.service 2>/dev/null "
                "| sed 's|.*/app-||; s|\\.service$||' || true")

    def process(self, output) -> list[str]:
        return [line.strip() for line in output if line.strip()]


class ConfigCopies(FactBase):
    """Config copies on the host, and the ones each service's unit mounts, in its current and
    in its previous definition (kept for a rollback): {"present": [path], "current":
    {service: [path]}, "previous": {service: [path]}}."""

    @staticmethod
    def default() -> dict:
        return {"present": [], "current": {}, "previous": {}}

    def command(self, state_dir: str) -> str:
        refs = f"grep -o '{CONFIG_DIR}/[^:]*' \"$f\" | sed \"s|^|$k $s |\""
        return (f"find {CONFIG_DIR} -type f 2>/dev/null | sed 's|^|present - |'; "
                f"for f in {UNIT_DIR}/app-*.service {state_dir}/previous/app-*.service; do "
                "[ -f \"$f\" ] || continue; k=current; "
                f"case \"$f\" in {state_dir}/*) k=previous;; esac; "
                f"s=$(basename \"$f\" .service); s=${{s#app-}}; {refs}; done; true")

    def process(self, output) -> dict:
        found = self.default()
        for line in output:
            kind, service, path = line.split(" ", 2)
            if kind == "present":
                found["present"].append(path)
            else:
                found[kind].setdefault(service, []).append(path)
        return found


class Status(FactBase):
    """{service: {unit, restarts, image, state, health, id, started}} for keel's services."""

    default = dict

    def command(self) -> str:
        fmt = ("{{.Config.Image}}|{{.State.Status}}|"
               "{{if .State.Health}}{{.State.Health.Status}}{{end}}|{{.Id}}|{{.State.StartedAt}}")
        return (f"for f in $(grep -l '^{MARKER}' {UNIT_DIR}/app-*.service 2>/dev/null); do "
                "u=$(basename \"$f\" .service); s=${u#app-}; "
                "e=podman; grep -q '^ExecStart.*/docker ' \"$f\" && e=docker; "
                "p=$(systemctl show -p ActiveState -p NRestarts \"$u\" | sort | tr '\\n' ' '); "
                f"i=$($e inspect --format '{fmt}' \"$s\" 2>/dev/null) "
                "&& [ -n \"$i\" ] && [ \"$i\" != '[]' ] || i='|absent|||'; "
                "echo \"$s|$e|$p|$i\"; done")

    def process(self, output) -> dict[str, dict]:
        found = {}
        for line in output:
            parts = line.split("|")
            if len(parts) != 8:  # a container removed while it was read: absent
                parts = [*parts[:3], "", "absent", "", "", ""]
            service, engine, props, image, state, health, cid, started = parts
            prop = dict(p.split("=", 1) for p in props.split())
            found[service] = {
                "engine": engine, "unit": prop.get("ActiveState", ""),
                "restarts": int(prop.get("NRestarts", "0") or 0), "image": image,
                "state": state, "health": health or "-", "id": cid[:12], "started": started,
            }
        return found


class Accounts(FactBase):
    """{"u:<uid>": name, "g:<gid>": name} for the ids that have a host account."""

    default = dict

    def command(self, uids: list[str], gids: list[str]) -> str:
        lookups = [f"getent passwd {u} | cut -d: -f1 | sed 's/^/u:{u} /'" for u in uids]
        lookups += [f"getent group {g} | cut -d: -f1 | sed 's/^/g:{g} /'" for g in gids]
        return "; ".join([*lookups, "true"])

    def process(self, output) -> dict[str, str]:
        return dict(line.split(" ", 1) for line in output if " " in line)


class Releases(FactBase):
    """{"current": {config, time, images: {service: "image id"}}, "previous": {...}}: the
    release records the app role keeps (keel-app record)."""

    default = dict

    def command(self, state_dir: str = "/var/lib/keel/app") -> str:
        return (f"for r in current previous; do [ -f {state_dir}/releases/$r ] && "
                f"sed \"s/^/$r /\" {state_dir}/releases/$r; done; true")

    def process(self, output) -> dict[str, dict]:
        found: dict[str, dict] = {}
        for line in output:
            which, key, rest = (line.split(" ", 2) + ["", ""])[:3]
            record = found.setdefault(which, {"config": "", "time": "", "images": {}})
            if key == "service":
                service, _, image = rest.partition(" ")
                record["images"][service] = image
            elif key in ("config", "time"):
                record[key] = rest
        return found
