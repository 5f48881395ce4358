"""Sandbox hosts: real Debian 12 machines (systemd as PID 1) as local podman containers.

The image is built here with debootstrap from the controller's Debian mirror, because no
registry can be reached. Every podman call goes through keel's own containers.conf.
"""

from __future__ import annotations

import fcntl
import hashlib
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from keel.errors import KeelError

HERE = Path(__file__).parent
CONTAINERS_CONF = HERE.parent / "containers.conf"
IMAGE_REPO = "localhost/keel-debian12"
NETWORK = "keel-sandbox"
SUBNET = "198.51.100.0/24"
LABEL = "keel.sandbox"
CONTAINER_PREFIX = "keel-"
CONTROLLER_CA = Path("/etc/ssl/certs/ca-certificates.crt")
SUITE = "bookworm"
PACKAGES = [
    "systemd", "systemd-sysv", "dbus", "python3", "openssh-server", "sudo",
    "ca-certificates", "iproute2",
    # base's hardening packages (about 80 s of installs per host otherwise: perl, binutils);
    # base still installs them, as a no-op here and for real on VMs and cloud hosts.
    "needrestart", "debsums", "aide", "libpam-pwquality",
]

# Named topologies; privileged hosts can run containers inside (nested podman/docker).
TOPOLOGIES: dict[str, dict[str, bool]] = {
    "prod": {"app1": True, "app2": True, "db1": False, "cache1": False, "mon1": False},
}

BOOT_TIMEOUT = 180


def state_dir(kind: str = "sandbox") -> Path:
    """keel's private state on the controller ($KEEL_STATE_DIR), one folder per kind."""
    base = os.environ.get("KEEL_STATE_DIR") or Path.home() / ".local/share/keel"
    path = Path(base) / kind
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def key_path() -> Path:
    """The controller's sandbox SSH key, made on first use."""
    key = state_dir() / "id_ed25519"
    if not key.exists():
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519

        private = ed25519.Ed25519PrivateKey.generate()
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.OpenSSH,
                serialization.NoEncryption(),
            ))
        public = private.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        key.with_suffix(".pub").write_bytes(public + b" keel-sandbox\n")
    return key


def podman(*args: str, check: bool = True, input: bytes | None = None,
           capture: bool = True) -> subprocess.CompletedProcess:
    if shutil.which("podman") is None:
        raise KeelError("podman is not installed: run `make up` (it installs podman from Debian)")
    env = dict(os.environ, CONTAINERS_CONF=str(CONTAINERS_CONF))
    proc = subprocess.run(
        ["podman", *args], env=env, input=input,
        stdout=subprocess.PIPE if capture else None, stderr=subprocess.PIPE,
    )
    if check and proc.returncode != 0:
        raise KeelError(
            f"podman {' '.join(args[:3])} failed ({proc.returncode}): "
            f"{proc.stderr.decode(errors='replace').strip()}"
        )
    return proc


def ssh_config() -> Path:
    """An ssh_config for sandbox hosts: root, keel's key, and host keys that change per host."""
    path = state_dir() / "ssh_config"
    content = (f"Host *\n  User root\n  IdentityFile {key_path()}\n  IdentitiesOnly yes\n"
               "  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n")
    if not path.exists() or path.read_text() != content:
        path.write_text(content)
    return path


# --- image -----------------------------------------------------------------------------

def debian_mirror() -> str:
    """The mirror this machine's apt uses, so hosts install from the same place."""
    for source in [Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")]:
        if not source.exists():
            continue
        for line in source.read_text().splitlines():
            words = line.split()
            if words[:1] == ["URIs:"] and not words[1].endswith("-security"):
                return words[1]
            if words[:1] == ["deb"] and "security" not in words[1]:
                return words[1]
    return "http://deb.debian.org/debian"


def security_mirror() -> str:
    """The controller's Debian security mirror (the image gets its updates at build time)."""
    for source in [Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")]:
        if source.exists():
            for word in source.read_text().split():
                if word.startswith("http") and word.rstrip("/").endswith("-security"):
                    return word
    return "http://deb.debian.org/debian-security"


def image_sources() -> str:
    """The image's /etc/apt/sources.list: the suites base's debian.sources lists."""
    return (f"deb {debian_mirror()} {SUITE} main\n"
            f"deb {debian_mirror()} {SUITE}-updates main\n"
            f"deb {security_mirror()} {SUITE}-security main\n")


def _recipe_files() -> dict[str, bytes]:
    files = {
        "setup-rootfs.sh": (HERE / "setup-rootfs.sh").read_bytes(),
        "keel-sshd-keygen.service": (HERE / "keel-sshd-keygen.service").read_bytes(),
    }
    # The controller's CA bundle lets hosts reach PyPI/npm over HTTPS here (a trait of this
    # test environment, not something roles rely on).
    if CONTROLLER_CA.exists():
        files["keel-controller.crt"] = CONTROLLER_CA.read_bytes()
    return files


def image_tag() -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps([SUITE, PACKAGES, debian_mirror(), security_mirror()]).encode())
    for name, content in sorted(_recipe_files().items()):
        digest.update(name.encode() + b"\0" + content)
    return f"{IMAGE_REPO}:{digest.hexdigest()[:12]}"


def image_exists(tag: str) -> bool:
    return podman("image", "exists", tag, check=False).returncode == 0


def build_image(log=print) -> str:
    """Build the host image unless one from the same recipe exists. Returns its tag."""
    tag = image_tag()
    if image_exists(tag):
        return tag
    if shutil.which("debootstrap") is None:
        raise KeelError("image build, step 'debootstrap': debootstrap is not installed "
                        "(run `make up`)")
    work = Path(tempfile.mkdtemp(prefix="keel-image-", dir="/var/tmp"))
    rootfs = work / "rootfs"
    try:
        log(f"building sandbox image {tag} (debootstrap {SUITE}, about a minute)")
        _step("debootstrap", [
            "debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}",
            SUITE, str(rootfs), debian_mirror(),
        ], work)
        files = _recipe_files()
        (rootfs / "etc/systemd/system/keel-sshd-keygen.service").write_bytes(
            files["keel-sshd-keygen.service"])
        if "keel-controller.crt" in files:
            (rootfs / "usr/local/share/ca-certificates/keel-controller.crt").write_bytes(
                files["keel-controller.crt"])
        # The image carries bookworm's security and point updates, so a host's first converge
        # applies only those published since the build. Its sources keep all three suites:
        # a host converged without base (whose debian.sources replaces this file) must still
        # install packages that depend on the updated libraries' exact versions.
        (rootfs / "etc/apt/sources.list").write_text(image_sources())
        (rootfs / "tmp/setup-rootfs.sh").write_bytes(files["setup-rootfs.sh"])
        _step("setup-rootfs", ["chroot", str(rootfs), "/bin/sh", "/tmp/setup-rootfs.sh"], work)
        (rootfs / "tmp/setup-rootfs.sh").unlink()
        _step("import", ["sh", "-c",
                         f"tar -C {rootfs} -c . | CONTAINERS_CONF={CONTAINERS_CONF} podman import "
                         f"--change 'CMD [\"/sbin/init\"]' - {tag}"], work)
        podman("tag", tag, f"{IMAGE_REPO}:latest")
        return tag
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _step(name: str, argv: list[str], work: Path) -> None:
    run_step("image build", name, argv, work.parent / f"keel-image-{name}.log")


def run_step(what: str, name: str, argv: list[str], logfile: Path) -> None:
    """Run one build step with its output in logfile; a failure names the step, log tail."""
    with open(logfile, "wb") as out:
        proc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        tail = logfile.read_text(errors="replace").splitlines()[-15:]
        raise KeelError(f"{what} failed at step '{name}' (exit {proc.returncode}); "
                        f"log {logfile}:\n  " + "\n  ".join(tail))


# --- hosts -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Host:
    name: str
    address: str
    privileged: bool
    state: str

    def ssh_argv(self, *command: str) -> list[str]:
        return ["ssh", "-F", str(ssh_config()), self.address, *command]


def namespace() -> str:
    """KEEL_SANDBOX_NS keeps several developers' (or worktrees') hosts apart on one machine:
    their containers are keel-<ns>-<name> and carry the namespace as a label; host names, and
    so inventories and tests, stay the same."""
    return os.environ.get("KEEL_SANDBOX_NS", "")


def container_name(host: str) -> str:
    return CONTAINER_PREFIX + (f"{namespace()}-" if namespace() else "") + host


def ensure_network() -> None:
    if podman("network", "exists", NETWORK, check=False).returncode != 0:
        podman("network", "create", "--subnet", SUBNET, "--label", f"{LABEL}=1", NETWORK)


def hosts() -> dict[str, Host]:
    """keel's sandbox hosts that podman knows of, running or not."""
    out = podman("ps", "-a", "--filter", f"label={LABEL}=1", "--format", "json").stdout
    found = {}
    for entry in json.loads(out or b"[]"):
        name = entry["Labels"].get(f"{LABEL}.host")
        if not name or entry["Labels"].get(f"{LABEL}.ns", "") != namespace():
            continue
        address = ""
        networks = entry.get("Networks") or []
        if entry.get("State") == "running" and NETWORK in networks:
            address = network_address(entry["Id"])
            if address is None:
                continue  # removed since `ps` (tests run in parallel)
        found[name] = Host(name, address, entry["Labels"].get(f"{LABEL}.privileged") == "1",
                           entry.get("State", ""))
    return found


def network_address(container: str) -> str | None:
    """A running container's address on the sandbox network (None if it is gone)."""
    inspect = podman("inspect", container, check=False)
    if inspect.returncode != 0:
        return None
    info = json.loads(inspect.stdout)[0]
    return info["NetworkSettings"]["Networks"][NETWORK]["IPAddress"]


def expand(names: list[str]) -> dict[str, bool]:
    """Host names and topology names -> {host: privileged}."""
    wanted: dict[str, bool] = {}
    for name in names:
        if name in TOPOLOGIES:
            wanted.update(TOPOLOGIES[name])
        else:
            wanted[name] = wanted.get(name, False)
    return wanted


def up(names: list[str], privileged: bool = False, fresh: bool = False, log=print,
       image: str | None = None) -> list[Host]:
    """Start hosts (reusing running ones unless fresh) and wait until each has booted.

    `image`: start them from another image than keel's (e.g. a committed host)."""
    wanted = expand(names)
    if privileged:
        wanted = {name: True for name in wanted}
    pub = key_path().with_suffix(".pub")
    os.chmod(pub, 0o600)
    started = []
    # One process at a time builds the image, picks addresses and starts containers.
    with _lock():
        tag = image or build_image(log)
        ensure_network()
        existing = hosts()
        for name, priv in wanted.items():
            current = existing.get(name)
            if current and current.state == "running" and current.privileged == priv \
                    and not fresh:
                continue
            podman("rm", "-f", "-t", "0", container_name(name), check=False)
            argv = [
                "create", "--name", container_name(name), "--hostname", name,
                "--systemd=always", "--network", NETWORK, "--no-hosts",
                "--label", f"{LABEL}=1", "--label", f"{LABEL}.host={name}",
                "--label", f"{LABEL}.privileged={int(priv)}",
                "--label", f"{LABEL}.ns={namespace()}",
                "--cap-add", "NET_ADMIN",
            ]
            if priv:
                argv += ["--privileged", "--cgroupns=host"]
            _start_with_fixed_address(name, argv, tag, pub)
            started.append(name)
    for name in started:
        wait_booted(container_name(name))
    current = hosts()
    result = [current[name] for name in wanted]
    for host in result:
        wait_ssh(host)
    return result


@contextmanager
def _lock():
    with open(state_dir() / "lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _addresses_in_use() -> set[str]:
    """Addresses of every running container on the sandbox network, in any namespace."""
    ids = podman("ps", "-q", "--filter", f"network={NETWORK}").stdout.split()
    if not ids:
        return set()
    found = json.loads(podman("inspect", *[i.decode() for i in ids], check=False).stdout or b"[]")
    return {entry["NetworkSettings"]["Networks"][NETWORK]["IPAddress"] for entry in found
            if NETWORK in entry["NetworkSettings"].get("Networks", {})}


def _start_with_fixed_address(name: str, argv: list[str], tag: str, pub: Path) -> None:
    """Create and start with a fixed address, so a restart (a reboot) keeps it: hosts and
    inventories know each other by address. Starts from a slot derived from the name; skips
    taken ones. podman allocates the address at start, and hosts made elsewhere (molecule's)
    take theirs without keel's lock, so a start that finds it taken moves on too."""
    taken = _addresses_in_use()
    network = ipaddress.ip_network(SUBNET)
    slots = list(network.hosts())[9:250]
    digest = hashlib.sha256((f"{namespace()}/{name}" if namespace() else name).encode()).digest()
    start = int.from_bytes(digest, "big") % len(slots)
    # A fixed MAC too: the controller's ARP entry for the address stays right when the host
    # is recreated (with a new MAC it kept the old one for up to a minute: "sshd does not
    # answer").
    mac = "02:" + ":".join(f"{b:02x}" for b in digest[:5])
    container = container_name(name)
    for address in slots[start:] + slots[:start]:
        if str(address) in taken:
            continue
        proc = podman(*argv, "--ip", str(address), "--mac-address", mac, tag, check=False)
        if proc.returncode == 0:
            podman("cp", str(pub), f"{container}:/root/.ssh/authorized_keys")
            proc = podman("start", container, check=False)
            if proc.returncode == 0:
                return
            podman("rm", "-f", "-t", "0", container, check=False)
        if not any(words in proc.stderr for words in
                   (b"in use", b"already allocated", b"is not available")):
            raise KeelError(f"podman create/start {name} failed: {proc.stderr.decode().strip()}")
    raise KeelError(f"no free address left in {SUBNET}")


def wait_booted(container: str) -> None:
    """Wait until systemd in the container is up (molecule instances use this too)."""
    deadline = time.monotonic() + BOOT_TIMEOUT
    state = ""
    while time.monotonic() < deadline:
        proc = podman("exec", container, "systemctl", "is-system-running", check=False)
        state = proc.stdout.decode().strip()
        if state in ("running", "degraded"):
            return
        time.sleep(0.5)
    journal = podman("exec", container, "journalctl", "-b", "--no-pager", "-n", "30",
                     check=False).stdout.decode(errors="replace")
    if not journal.strip():
        journal = podman("logs", "--tail", "30", container,
                         check=False).stdout.decode(errors="replace")
    raise KeelError(f"sandbox host {container} did not boot within {BOOT_TIMEOUT}s "
                    f"(systemd state: {state or 'unknown'}); last journal lines:\n{journal}")


def wait_ssh(host: Host) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host.address, 22), timeout=2) as sock:
                if sock.recv(64).startswith(b"SSH-"):
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise KeelError(f"sandbox host {host.name} ({host.address}) booted but sshd does not answer")


def restart(name: str) -> Host:
    """Restart a host (a reboot for its systemd) and wait until it is back."""
    podman("restart", "-t", "10", container_name(name))
    wait_booted(container_name(name))
    host = hosts()[name]
    wait_ssh(host)
    return host


def down(names: list[str] | None = None) -> list[str]:
    """Remove keel's sandbox containers (all, or the named ones) and, when all, its network."""
    existing = hosts()
    targets = list(expand(names)) if names else list(existing)
    removed = []
    for name in targets:
        if name in existing:
            podman("rm", "-f", "-t", "0", container_name(name))
            removed.append(name)
    # The network goes with the last host of every namespace.
    others = podman("ps", "-a", "--filter", f"label={LABEL}=1", "-q").stdout.strip()
    if not names and not others \
            and podman("network", "exists", NETWORK, check=False).returncode == 0:
        podman("network", "rm", NETWORK, check=False)
    return removed


def ssh_data(host: Host) -> dict:
    """A sandbox host's own data: pyinfra's connection (SSH, as production uses), its
    address, and the controller's apt mirror (hosts install from the same place)."""
    return {
        "ssh_hostname": host.address,
        "ssh_user": "root",
        "ssh_key": str(key_path()),
        "ssh_known_hosts_file": "/dev/null",
        "ssh_strict_host_key_checking": "no",
        "keel_address": host.address,
        "base_apt_mirror": debian_mirror(),
    }
