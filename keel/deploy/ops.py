"""Small shared operations for roles."""

from __future__ import annotations

import difflib
import functools
import hashlib
import secrets
import shlex
from io import BytesIO, StringIO
from pathlib import PurePosixPath

from paramiko import SSHException
from pyinfra import host, logger
from pyinfra.api import FactBase, FileUploadCommand, StringCommand
from pyinfra.api import operation as pyinfra_operation
from pyinfra.api.output import format_text
from pyinfra.api.util import get_file_io
from pyinfra.context import state
from pyinfra.facts.files import File, FileContents
from pyinfra.operations import server, systemd
from pyinfra.operations.util import any_changed
from pyinfra.operations.util.files import chmod, chown, generate_color_diff

from keel.core.data import MASK
from keel.core.render import render

# --- a lost host fails alone ---------------------------------------------------------------
# When a fact's command fails (the host went away, or the command broke), pyinfra marks the
# host failed and returns the fact's default (often None). Code that reads that value would
# raise (a TypeError on None): inside an operation or a role's deploy, any exception ends the
# run for every host. keel's operations and role deploys therefore stop quietly for a host
# that has failed, after one clear line; the others carry on and the run exits non-zero.

# What a connection that dies under a command raises. pyinfra fails the host for the last
# three itself, but not for paramiko's EOFError (a transport closed while a channel opens).
CONNECTION_ERRORS = (EOFError, OSError, TimeoutError, SSHException)


def host_failed(exc: BaseException | None = None) -> bool:
    """Whether the current host has failed in this run (pyinfra took it out of the run), or
    exc is its connection dying, in which case it is failed now."""
    if host not in state.failed_hosts and isinstance(exc, CONNECTION_ERRORS):
        state.fail_hosts({host})
    return host in state.failed_hosts


def report_lost(where: str, exc: BaseException | None = None) -> None:
    cause = f" ({type(exc).__name__}: {exc})" if exc is not None else ""
    host.log_styled(f"keel: host {host.name} failed during {where}: a command or fact could "
                    f"not run there (host lost?); its run stops, the others go on{cause}",
                    fg="red", log_func=logger.error)


def operation(*args, **kwargs):
    """pyinfra's @operation for keel's own operations, which stop for a host that failed
    while they read its facts instead of raising (see above)."""
    def decorator(func):
        @functools.wraps(func)
        def guarded(*a, **k):
            try:
                yield from func(*a, **k)
            except Exception as exc:
                if not host_failed(exc):
                    raise
                report_lost(func.__name__, exc)
        return pyinfra_operation(*args, **kwargs)(guarded)
    return decorator


class ManagedFile(FactBase):
    """Owner, group, mode and SHA-1 of a file in one round trip (None if it is absent)."""

    def command(self, path: str) -> str:
        q = shlex.quote(path)
        return f"[ -f {q} ] && stat -c '%U %G %a' {q} && sha1sum {q} | cut -c1-40 || true"

    def process(self, output):
        if len(output) < 2:
            return None
        user, group, mode = output[0].split()
        return {"user": user, "group": group, "mode": int(mode, 8), "sha1": output[1].strip()}


class ManagedFiles(FactBase):
    """ManagedFile of many paths in one round trip: {path: state} of those that exist."""

    default = dict

    def command(self, paths: list[str]) -> str:
        return ("for p in " + " ".join(shlex.quote(p) for p in paths) + "; do "
                '[ -f "$p" ] && s=$(stat -c \'%U %G %a\' "$p") && '
                'h=$(sha1sum < "$p" | cut -c1-40) && printf \'%s %s %s\\n\' "$h" "$s" "$p"; '
                "done; true")

    def process(self, output) -> dict:
        states = {}
        for line in output:
            if line.count(" ") < 4:
                continue  # not a line of ours (a truncated read)
            sha1, user, group, mode, path = line.split(" ", 4)
            states[path] = {"user": user, "group": group, "mode": int(mode, 8), "sha1": sha1}
        return states


# A no-op run spends most of its time in round trips, one per operation. Every managed file
# a host will get is known once the deploy is loaded (before any operation runs), so the first
# check reads them all at once. The batch is trusted only while no operation has executed a
# command on the host since it was read; after that a check reads again.
_declared: dict[str, set[str]] = {}
_batch: dict[str, tuple[int, set[str], dict]] = {}


def _executed_ops() -> int:
    return sum(1 for op in state.ops[host].values() if op.operation_meta.executed)


def _file_state(dest: str):
    declared = _declared.get(host.name, set())
    if dest not in declared:
        return host.get_fact(ManagedFile, path=dest)
    executed = _executed_ops()
    batch = _batch.get(host.name)
    if batch is None or batch[0] != executed:
        batch = _batch[host.name] = (executed, set(), {})
    if dest not in batch[1]:
        # Only paths not read yet: a plan checks each file as it is declared.
        new = declared - batch[1]
        batch[2].update(host.get_fact(ManagedFiles, paths=sorted(new)))
        batch[1].update(new)
    return batch[2].get(dest)


def managed_file(*, name: str, dest: str, content: str, mode: str = "0644", user: str = "root",
                 group: str = "root", check: str | None = None, **kwargs):
    """A file with exactly this content, owner and mode: no round trip of its own when in
    place (see _file_state). `check`: a command that tests the software's configuration
    once the new file is in place (`visudo -cf <dest>`, `sshd -t`); if it fails, the old file
    is put back (or the new one removed) and the host fails, before anything reloads."""
    _declared.setdefault(host.name, set()).add(dest)
    return _managed_file(name=name, dest=dest, content=content, mode=mode, user=user,
                         group=group, check=check, **kwargs)


@operation()
def _managed_file(dest: str, content: str, mode: str = "0644", user: str = "root",
                  group: str = "root", check: str | None = None):
    body = content.encode()
    current = _file_state(dest)
    if current is not None and current["sha1"] == hashlib.sha1(body).hexdigest():
        if current["mode"] != int(mode, 8):
            yield chmod(dest, mode)
        if (current["user"], current["group"]) != (user, group):
            yield chown(dest, user, group)
        if current["mode"] == int(mode, 8) and (current["user"], current["group"]) == (user, group):
            host.noop(f"file {dest} is up to date")
        return
    if state.config.DIFF:
        _log_diff(dest, current, content)
    if current is None:
        yield StringCommand("mkdir", "-p", str(PurePosixPath(dest).parent))
    # Replaced atomically: written beside it, then renamed over it. A run cut short
    # (controller killed, host lost, disk full) leaves the old file whole. The new copy has
    # its owner and mode before the first byte is written: never world-readable in between.
    temp = temp_path(dest)
    yield StringCommand("install", "-m", mode, "-o", user, "-g", group, "/dev/null", temp)
    # Under sudo, pyinfra uploads to a temp file of the login user's and root copies it in.
    yield FileUploadCommand(BytesIO(body), temp)
    if check is None:
        yield StringCommand("mv", "-f", temp, dest)
        return
    d, t, old = shlex.quote(dest), shlex.quote(temp), shlex.quote(temp + ".old")
    failed = shlex.quote(f"keel: {check} failed with the new {dest}: the old file stays")
    yield StringCommand(
        f"if [ -e {d} ]; then cp -p {d} {old}; fi; mv -f {t} {d}; "
        f"if ! ( {check} ); then echo {failed} >&2; "
        f"if [ -e {old} ]; then mv -f {old} {d}; else rm -f {d}; fi; exit 1; fi; rm -f {old}")


def temp_path(dest: str) -> str:
    """Where a new version of dest is written before it is renamed over dest: the same
    directory (so the rename is atomic), a name no glob of a config directory reads
    (*.conf, *.service, sudoers.d skips names with a dot)."""
    path = PurePosixPath(dest)
    return str(path.parent / f".{path.name}.keel-new")


def _log_diff(dest: str, current, content: str) -> None:
    before = []
    if current is not None:
        before = [line + "\n" for line in host.get_fact(FileContents, path=dest) or []]
    host.log(f"Will {'modify' if current else 'create'} {format_text(dest, bold=True)}",
             logger.info)
    with get_file_io(StringIO(content), "r") as f:
        for line in generate_color_diff(before, f.readlines()):
            logger.info("  %s", line)
    logger.info("")


def config_file(role: str, template: str, dest: str, *, name: str, mode: str = "0644",
                user: str = "root", group: str = "root", check: str | None = None, **context):
    """templates/<role>/<template>.j2, rendered with exactly `context`, written to dest
    (`check`: see managed_file)."""
    return managed_file(name=name, dest=dest, content=render(role, template, **context),
                        mode=mode, user=user, group=group, check=check)


def unit_files(role: str, units: list[str], *, label: str, **context) -> list:
    """The role's systemd units (templates/<role>/<unit>.j2) in /etc/systemd/system, with
    one daemon-reload when any of them changed; returns their operations."""
    written = [config_file(role, unit, f"/etc/systemd/system/{unit}", name=f"Install {unit}",
                           **context) for unit in units]
    systemd.daemon_reload(name=f"Reload systemd units ({label})", _if=any_changed(*written))
    return written


def dropin(unit: str, content: str, *, name: str):
    """keel's drop-in for a systemd unit (/etc/systemd/system/<unit>.d/keel.conf). Follow it
    with `systemd.daemon_reload(_if=any_changed(...))` before the unit is (re)started."""
    return managed_file(name=name, dest=f"/etc/systemd/system/{unit}.d/keel.conf",
                        content=content)


def start_after(unit: str, role: str, units: list[str], *, name: str, why: str = ""):
    """A drop-in that starts the unit after (and with) `units`: keel-secrets.service for
    what it reads from /run/keel/secrets, network-online.target to bind a private address."""
    comment = "".join(f"# {line}\n" for line in why.splitlines())
    return dropin(unit, f"# managed by keel: roles/{role}\n{comment}[Unit]\n"
                        f"After={' '.join(units)}\nWants={' '.join(units)}\n", name=name)


class UnitState(FactBase):
    """Whether a systemd unit runs and is enabled, in one round trip (pyinfra's
    systemd.service asks twice). Same reading as pyinfra's SystemdStatus/SystemdEnabled."""

    def command(self, unit: str) -> str:
        return f"systemctl show --property SubState --property UnitFileState {shlex.quote(unit)}"

    def process(self, output) -> dict[str, bool]:
        props = dict(line.strip().split("=", 1) for line in output if "=" in line)
        return {"running": props.get("SubState") in
                ("running", "waiting", "exited", "listening", "mounted"),
                "enabled": props.get("UnitFileState") in ("enabled", "static")}


@operation()
def service(service: str, running: bool | None = None, enabled: bool | None = None):
    """Start/stop and enable/disable a systemd unit (restarts and reloads: systemd.service)."""
    current = host.get_fact(UnitState, unit=service)
    if current is None or host_failed():
        return
    q = shlex.quote(service)
    if running is not None and running != current["running"]:
        yield f"systemctl {'start' if running else 'stop'} {q}"
    if enabled is not None and enabled != current["enabled"]:
        yield f"systemctl {'enable' if enabled else 'disable'} {q}"


def text(content: str) -> StringIO:
    """In-memory file content for files.put."""
    return StringIO(content)


# --- masked diffs ------------------------------------------------------------------------
# One function, run here on the desired content and on the host (python3, which base
# installs) on the current content: each line becomes its key part and a 16-bit fingerprint
# salted per run. That is enough to see which lines change and far too little to recover a
# value, even from pyinfra's -vvv output of facts.
FINGERPRINT = r'''
import hashlib, re, sys
KEY = re.compile(r"""^(\s*(?:export\s+)?["']?[A-Za-z_][\w.\-]*["']?\s*[=:]\s*"""
                 r"""|\s*\[[^\]=]*\]\s*$|\s*$)""")
def fingerprint(lines, salt):
    for line in lines:
        match = KEY.match(line)
        key = match.group(1) if match else "~"  # no key: the whole line is masked
        yield key + "\t" + hashlib.sha256(salt + line.encode()).hexdigest()[:4]
if __name__ == "__main__":
    try:
        lines = open(sys.argv[1], encoding="utf-8", errors="replace").read().splitlines()
    except FileNotFoundError:
        sys.exit(0)
    print("\n".join(fingerprint(lines, sys.argv[2].encode())))
'''
_namespace: dict = {}
exec(compile(FINGERPRINT, "keel.deploy.ops.FINGERPRINT", "exec"), _namespace)
_SALT = secrets.token_hex(8)


class MaskedLines(FactBase):
    """A file's lines as (key part, salted fingerprint): values never leave the host."""

    def command(self, path):
        return f"python3 -c {shlex.quote(FINGERPRINT)} {shlex.quote(path)} {_SALT}"

    def process(self, output):
        return [tuple(line.rsplit("\t", 1)) for line in output]


def masked_lines(lines: list[str]) -> list[tuple[str, str]]:
    return [tuple(entry.rsplit("\t", 1))
            for entry in _namespace["fingerprint"](lines, _SALT.encode())]


def masked_diff(current: list[tuple[str, str]], desired: list[tuple[str, str]]):
    """pyinfra-style unified diff lines of two masked files."""
    def show(entry):
        key = entry[0]
        if key == "~":
            return MASK
        return key if not key.strip() or key.rstrip().endswith("]") else key + MASK

    for group in difflib.SequenceMatcher(None, current, desired).get_grouped_opcodes(2):
        first, last = group[0], group[-1]
        yield (f"@@ -{_range(first[1], last[2])} +{_range(first[3], last[4])} @@ "
               "(values masked)")
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                yield from ("  " + show(entry) for entry in current[i1:i2])
                continue
            yield from ("- " + show(entry) for entry in current[i1:i2])
            yield from ("+ " + show(entry) for entry in desired[j1:j2])


def _range(start: int, stop: int) -> str:
    """A unified diff range, as difflib and pyinfra write it."""
    length = stop - start
    return f"{start + 1}" if length == 1 else f"{start if not length else start + 1},{length}"


def log_masked_diff(path: str, content: str) -> None:
    """Under --diff, log how a file that carries secrets would change, every value masked.

    keel.deploy.secrets.deliver calls this: pyinfra's own diffs print whole files.
    """
    if not state.config.DIFF:
        return
    remote = host.get_fact(File, path=path)
    current = host.get_fact(MaskedLines, path=path) if remote else []
    host.log(f"Will {'modify' if remote else 'create'} {path}", logger.info)
    for line in masked_diff(current, masked_lines(content.splitlines())):
        logger.info("  %s", line)
    logger.info("")


@operation()
def restart_readers(path: str):
    """Restart the running units whose unit file names `path` (EnvironmentFile=, --env-file):
    the services that read it, found on the host when the operation runs, and no others.
    Stopped units are left alone (they read the file when they start). Pass `_if=`."""
    yield StringCommand(
        "rc=0; for f in $(grep -lF -- " + shlex.quote(path) + " /etc/systemd/system/*.service "
        "2>/dev/null); do u=${f##*/}; if systemctl is-active --quiet \"$u\"; then "
        "systemctl restart \"$u\" || rc=1; fi; done; exit $rc")


@operation()
def live_check(command: StringCommand, ok: str, failed: str, show_output: bool = False):
    """Run a read-only check on the host while executing: success is no change (`ok` is the
    note, followed by the check's output if `show_output`), failure fails the operation with
    `failed: <the check's output>`. Skipped in a plan: what it checks may not be set up yet.
    Serves storage's probe, the agent's health and postgres's `pgbackrest check`."""
    from pyinfra.api.arguments import CONNECTOR_ARGUMENT_KEYS

    if not state.is_executing:
        return
    # With the run's own connection settings (e.g. _sudo on a cloud host).
    connector = {key: value for key, value in (host.current_op_global_arguments or {}).items()
                 if key in CONNECTOR_ARGUMENT_KEYS}
    success, output = host.run_shell_command(command, **connector)
    detail = " ".join(line.line for line in output if line.line).strip() or "no output"
    if success:
        host.noop(f"{ok}: {detail[:200]}" if show_output else ok)
        return
    yield StringCommand(f"echo {shlex.quote(f'{failed}: {detail[:500]}')} >&2; exit 1")


class StagedDiffers(FactBase):
    """Whether any staged path differs from its live copy (e.g. a check failed last run)."""

    def command(self, pairs: str) -> str:
        checks = [f"diff -rq {src} {dest} >/dev/null 2>&1"
                  for src, dest in (pair.split("=") for pair in pairs.split())]
        return " && ".join(checks) + " && echo same || echo differs"

    def process(self, output) -> bool:
        return "same" not in output


def checked_install(*, name: str, staged: list, pairs: list[tuple[str, str]], check: str,
                    reload: str | None):
    """Copy checked staged config live, as Prometheus and Alertmanager need it.

    When a staged file (`staged`: their operations) changed, or a staged path differs from
    its live copy (`pairs`: (staged, live), files or directories), run `check` on the staged
    copy; only if it passes copy every pair into place and run `reload` (None: no reload,
    e.g. a restart follows). A failed check stops the run and leaves the live config alone;
    the next run checks again."""
    pairs_arg = " ".join(f"{src}={dest}" for src, dest in pairs)
    if not (any(op.will_change for op in staged) or host.get_fact(StagedDiffers, pairs=pairs_arg)):
        return None
    commands = [check]
    # -p: the staged modes, not the session's umask (base gives root's logins 027).
    commands += [f"rm -rf {dest}.new && cp -rp {src} {dest}.new" for src, dest in pairs]
    commands += [f"rm -rf {dest} && mv {dest}.new {dest}" for _, dest in pairs]
    if reload:
        commands.append(reload)
    return server.shell(name=name, commands=commands)
