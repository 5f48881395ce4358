"""Bare VMs: Debian 12 under QEMU, bootstrapped by cloud-init like a fresh cloud instance.

The disk image is built here (debootstrap from the controller's Debian mirror, Debian's
kernel, GRUB, cloud-init), cached, and rebuilt only when its recipe changes. Each VM boots a
copy-on-write overlay of it under TCG (KVM hangs Debian's kernel on this machine), with a
NoCloud seed that gives the image's default user `debian` keel's SSH key, and SSH forwarded
from a port on 127.0.0.1.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from keel.errors import KeelError
from keel.lab import sandbox

HERE = Path(__file__).parent
SUITE = sandbox.SUITE
# On top of debootstrap's minbase: what a Debian 12 cloud image boots with.
PACKAGES = [
    "systemd", "systemd-sysv", "dbus", "udev", "libpam-systemd", "linux-image-amd64",
    "grub-pc-bin", "grub2-common", "cloud-init", "cloud-guest-utils", "netplan.io",
    "systemd-resolved", "libnss-myhostname", "openssh-server", "sudo", "python3",
    "ca-certificates", "iproute2", "netbase", "systemd-timesyncd", "unattended-upgrades",
]
ROOT_LABEL = "keel-root"
IMAGE_SIZE_MIB = 2048  # the root filesystem in the image; cloud-init grows it to DISK_SIZE
PART_START = 2048  # sectors: the partition starts at 1 MiB, GRUB's core.img sits before it
DISK_SIZE = "16G"
MEMORY_MIB = 2048
CPUS = 2
PORTS = range(22220, 22230)  # SSH forwarded from 127.0.0.1
GUEST_ADDRESS = "10.0.2.15"  # QEMU user networking: the guest
CONTROLLER_ADDRESS = "10.0.2.2"  # QEMU user networking: the controller's loopback
DEFAULT_USER = "debian"  # the image's cloud-init default user
ADMIN = "ops"  # the admin base makes, with keel's key (lab_data)
DEFAULT_NAME = "vm-aio"
BOOT_TIMEOUT = 900  # seconds from start to cloud-init done; TCG is slow
CONSOLE_TAIL = 40
# Serial console lines after which the VM will not come up: stop waiting at once.
FATAL_CONSOLE = re.compile(r"Kernel panic|Gave up waiting for root|ALERT! .* does not exist|"
                           r"error: (?:file|disk) .* not found")


@dataclass(frozen=True)
class VM:
    name: str
    port: int
    pid: int | None
    image: str

    @property
    def running(self) -> bool:
        return self.pid is not None

    @property
    def directory(self) -> Path:
        return vms_dir() / self.name

    @property
    def console(self) -> Path:
        return self.directory / "console.log"

    def ssh_argv(self, user: str, *command: str, timeout: int = 20) -> list[str]:
        return ["ssh", "-i", str(sandbox.key_path()), "-p", str(self.port),
                "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                "-o", f"ConnectTimeout={timeout}", "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                f"{user}@127.0.0.1", *command]

    def ssh(self, user: str, command: str, timeout: int = 120) -> subprocess.CompletedProcess:
        """Run a shell command on the VM as user."""
        return subprocess.run(self.ssh_argv(user, command), capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def console_tail(self, lines: int = CONSOLE_TAIL) -> str:
        if not self.console.exists():
            return "(no console output)"
        text = self.console.read_text(errors="replace")
        text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text).replace("\r", "")
        return "\n".join(text.splitlines()[-lines:])


def images_dir() -> Path:
    path = sandbox.state_dir("vm") / "images"
    path.mkdir(exist_ok=True)
    return path


def vms_dir() -> Path:
    path = sandbox.state_dir("vm") / "machines"
    path.mkdir(exist_ok=True)
    return path


def public_key() -> str:
    """The controller's key (shared with sandbox hosts) that VMs' users accept."""
    return sandbox.key_path().with_suffix(".pub").read_text().strip()


# --- image -----------------------------------------------------------------------------

RECIPE_FILES = ["setup-image.sh", "grub.cfg", "grub-defaults.cfg", "cloud.cfg", "timesyncd.conf"]


def _recipe() -> dict[str, bytes]:
    files = {name: (HERE / name).read_bytes() for name in RECIPE_FILES}
    # As in sandbox hosts: the controller's CA bundle lets the VM reach PyPI/npm here.
    if sandbox.CONTROLLER_CA.exists():
        files["keel-controller.crt"] = sandbox.CONTROLLER_CA.read_bytes()
    # Debian's cloud images are built with the updates and security suites, as is this one.
    files["sources.list"] = sandbox.image_sources().encode()
    return files


def image_path() -> Path:
    digest = hashlib.sha256()
    digest.update(json.dumps([SUITE, PACKAGES, sandbox.debian_mirror(), ROOT_LABEL,
                              IMAGE_SIZE_MIB, PART_START]).encode())
    for name, content in sorted(_recipe().items()):
        digest.update(name.encode() + b"\0" + content)
    return images_dir() / f"keel-debian12-{digest.hexdigest()[:12]}.qcow2"


def build_image(log=print) -> Path:
    """Build the VM disk image unless one from the same recipe exists. Returns its path."""
    image = image_path()
    if image.exists():
        return image
    with open(images_dir() / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time; others then reuse it
        if not image.exists():
            _build(image, log)
            _remove_stale_images(keep=image)
    return image


def _build(image: Path, log) -> None:
    for tool, package in [("debootstrap", "debootstrap"), ("mkfs.ext4", "e2fsprogs"),
                          ("qemu-img", "qemu-utils"), ("unshare", "util-linux")]:
        if shutil.which(tool) is None:
            raise KeelError(f"VM image build, step 'tools': {tool} is missing "
                            f"(package {package}; run `make setup`)")
    work = Path(tempfile.mkdtemp(prefix="keel-vm-image-", dir="/var/tmp"))
    rootfs, disk = work / "rootfs", work / "disk.raw"

    def step(name: str, argv: list[str]) -> None:
        log(f"  {name}")
        sandbox.run_step("VM image build", name, argv, work.parent / f"keel-vm-image-{name}.log")

    try:
        log(f"building VM image {image.name} (debootstrap {SUITE}, kernel, cloud-init; "
            "a few minutes)")
        step("debootstrap", ["debootstrap", "--variant=minbase", SUITE, str(rootfs),
                             sandbox.debian_mirror()])
        files = _recipe()
        for name, dest in [("cloud.cfg", "etc/cloud/cloud.cfg.d/90-keel-image.cfg"),
                           ("grub-defaults.cfg", "etc/default/grub.d/90-keel-image.cfg"),
                           ("grub.cfg", "boot/grub/grub.cfg"),
                           ("timesyncd.conf", "etc/systemd/timesyncd.conf.d/90-keel-image.conf"),
                           ("keel-controller.crt",
                            "usr/local/share/ca-certificates/keel-controller.crt"),
                           ("sources.list", "etc/apt/sources.list"),
                           ("setup-image.sh", "tmp/setup-image.sh")]:
            if name in files:
                (rootfs / dest).parent.mkdir(parents=True, exist_ok=True)
                (rootfs / dest).write_bytes(files[name])
        # apt and initramfs need /proc; a private mount namespace unmounts it on exit.
        step("packages", ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                          'mount -t proc proc "$0/proc" && exec chroot "$0" /bin/sh '
                          '/tmp/setup-image.sh "$@"', str(rootfs), *PACKAGES])
        boot_img = (rootfs / "tmp/boot.img").read_bytes()
        core_img = (rootfs / "tmp/core.img").read_bytes()
        for name in ("boot.img", "core.img", "setup-image.sh"):
            (rootfs / "tmp" / name).unlink()
        step("filesystem", ["mkfs.ext4", "-q", "-F", "-L", ROOT_LABEL,
                            "-E", f"offset={PART_START * 512}", "-d", str(rootfs), str(disk),
                            f"{IMAGE_SIZE_MIB}M"])
        log("  bootloader")
        _write_boot_sectors(disk, boot_img, core_img)
        step("convert", ["qemu-img", "convert", "-O", "qcow2", str(disk), f"{image}.part"])
        os.replace(f"{image}.part", image)
        log(f"built {image}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        Path(f"{image}.part").unlink(missing_ok=True)


def _write_boot_sectors(disk: Path, boot_img: bytes, core_img: bytes) -> None:
    """An MBR with one bootable Linux partition, GRUB's boot code, core.img right after it.

    GRUB's defaults fit this layout: boot.img loads sector 1, and core.img's first sector
    reads the rest of it, so no grub-install (and no loop device) is needed.
    """
    if len(core_img) > (PART_START - 1) * 512:
        raise KeelError("VM image build failed at step 'bootloader': core.img is too large")
    sectors = IMAGE_SIZE_MIB * 2048
    entry = struct.pack("<B3sB3sII", 0x80, b"\xfe\xff\xff", 0x83, b"\xfe\xff\xff",
                        PART_START, sectors)
    mbr = boot_img[:440] + os.urandom(4) + b"\0\0" + entry + bytes(48) + b"\x55\xaa"
    with open(disk, "r+b") as f:
        f.write(mbr)
        f.write(core_img)


def _remove_stale_images(keep: Path) -> None:
    used = {keep.name} | {vm.image for vm in vms().values()}
    for path in images_dir().glob("keel-debian12-*.qcow2"):
        if path.name not in used:
            path.unlink()


# --- machines --------------------------------------------------------------------------

def _pid(directory: Path, name: str) -> int | None:
    """The QEMU process of this VM, if it runs (checked by its command line, not just pid)."""
    try:
        pid = int((directory / "qemu.pid").read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    return pid if f"process=keel-vm-{name}".encode() in b",".join(cmdline) else None


def vms() -> dict[str, VM]:
    """keel's VMs, running or stopped."""
    found = {}
    for directory in sorted(vms_dir().iterdir()):
        try:
            spec = json.loads((directory / "vm.json").read_text())
        except (OSError, ValueError):
            continue
        found[spec["name"]] = VM(spec["name"], spec["port"], _pid(directory, spec["name"]),
                                 spec["image"])
    return found


def get(name: str) -> VM:
    vm = vms().get(name)
    if vm is None or not vm.running:
        raise KeelError(f"VM {name} is not running: start it with `keel vm up {name}`")
    return vm


def _free_port(taken: set[int]) -> int:
    for port in PORTS:
        if port in taken:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise KeelError(f"no free port for a VM's SSH in {PORTS.start}-{PORTS.stop - 1}")


def _check_name(name: str) -> None:
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", name):
        raise KeelError(f"VM name {name!r}: use lowercase letters, digits and '-'")


def up(name: str = DEFAULT_NAME, fresh: bool = False, log=print) -> VM:
    """Start a VM (a fresh cloud instance: new overlay and seed) and wait for cloud-init.

    A running VM is reused unless fresh; a stopped one boots its existing disk again.
    """
    _check_name(name)
    for tool, package in [("qemu-system-x86_64", "qemu-system-x86"),
                          ("genisoimage", "genisoimage")]:
        if shutil.which(tool) is None:
            raise KeelError(f"{tool} is missing (package {package}; run `make setup`)")
    existing = vms().get(name)
    if existing and fresh:
        down([name])
        existing = None
    if existing and existing.running:
        return existing
    directory = vms_dir() / name
    if existing is None:
        image = build_image(log)
        port = _free_port({vm.port for vm in vms().values()})
        if directory.exists():
            shutil.rmtree(directory)
        directory.mkdir(mode=0o700)
        _run("create disk", ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(image),
                             "-F", "qcow2", str(directory / "disk.qcow2"), DISK_SIZE])
        _seed(directory)
        (directory / "vm.json").write_text(json.dumps(
            {"name": name, "port": port, "image": image.name}))
        existing = VM(name, port, None, image.name)
    log(f"booting VM {name} (TCG; ssh on 127.0.0.1:{existing.port})")
    _start(existing)
    vm = vms()[name]
    try:
        _wait_cloud_init(vm)
    except KeelError:
        down([name])
        raise
    return vm


def _run(what: str, argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise KeelError(f"VM {what} failed: {' '.join(argv[:2])}: "
                        f"{(proc.stderr or proc.stdout).strip()}")


def _seed(directory: Path) -> None:
    """A NoCloud seed, as a cloud gives an instance: its id, host name and the user's key."""
    seed = directory / "seed"
    seed.mkdir()
    # Like a cloud, the provider's host name; base sets the inventory's.
    (seed / "meta-data").write_text(
        f"instance-id: i-{secrets.token_hex(8)}\n"
        f"local-hostname: ip-{GUEST_ADDRESS.replace('.', '-')}\n")
    (seed / "user-data").write_text(
        f"#cloud-config\nssh_authorized_keys:\n  - {public_key()}\n")
    _run("seed", ["genisoimage", "-quiet", "-output", str(directory / "seed.iso"),
                  "-volid", "cidata", "-joliet", "-rock",
                  str(seed / "user-data"), str(seed / "meta-data")])


def _start(vm: VM) -> None:
    directory = vm.directory
    vm.console.unlink(missing_ok=True)
    argv = [
        "qemu-system-x86_64", "-name", f"{vm.name},process=keel-vm-{vm.name}",
        "-machine", "q35", "-accel", "tcg", "-cpu", "max",
        "-smp", str(CPUS), "-m", str(MEMORY_MIB),
        "-nodefaults", "-display", "none", "-monitor", "none",
        "-serial", f"file:{vm.console}",
        "-drive", f"file={directory / 'disk.qcow2'},if=virtio,format=qcow2,discard=unmap",
        "-drive", f"file={directory / 'seed.iso'},if=virtio,format=raw,readonly=on",
        "-netdev", f"user,id=net0,hostfwd=tcp:127.0.0.1:{vm.port}-:22",
        "-device", "virtio-net-pci,netdev=net0,romfile=",
        "-device", "virtio-rng-pci",
        "-pidfile", str(directory / "qemu.pid"), "-daemonize",
    ]
    _run(f"{vm.name} start", argv)


def _ssh_banner(port: int) -> bool:
    """sshd answers (QEMU accepts on the port before the guest listens, then closes)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.settimeout(10)
            return sock.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def wait_ssh(vm: VM, timeout: int = BOOT_TIMEOUT, what: str = "boot") -> None:
    """Wait until the VM's sshd answers; a failure shows the serial console's tail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _pid(vm.directory, vm.name) is None:
            raise KeelError(f"VM {vm.name}: QEMU exited during {what}; serial console:\n"
                            f"{vm.console_tail()}")
        if _ssh_banner(vm.port):
            return
        fatal = vm.console.exists() and FATAL_CONSOLE.search(vm.console.read_text(errors="replace"))
        if fatal:
            raise KeelError(f"VM {vm.name} failed to {what} ({fatal.group(0)}); serial console:\n"
                            f"{vm.console_tail()}")
        time.sleep(2)
    raise KeelError(f"VM {vm.name} did not {what} within {timeout}s (sshd does not answer on "
                    f"127.0.0.1:{vm.port}); serial console:\n{vm.console_tail()}")


def _wait_cloud_init(vm: VM) -> None:
    start = time.monotonic()
    wait_ssh(vm)
    # A VM that base has converged takes its admin; a fresh one only the default user.
    user = login_user(vm, login_candidates(host_data(vm)))
    left = max(60, BOOT_TIMEOUT - int(time.monotonic() - start))
    proc = vm.ssh(user, "cloud-init status --wait --long", timeout=left)
    if proc.returncode == 255:
        raise KeelError(f"VM {vm.name}: sshd answers but {user} cannot log in with "
                        f"keel's key ({proc.stderr.strip()}): cloud-init did not apply the "
                        f"seed; serial console:\n{vm.console_tail()}")
    if not re.search(r"^status: done$", proc.stdout, re.M):
        raise KeelError(f"VM {vm.name}: cloud-init did not finish cleanly:\n"
                        f"{proc.stdout.strip()}\n{proc.stderr.strip()}")


def down(names: list[str] | None = None) -> list[str]:
    """Stop and remove keel's VMs (all, or the named ones): QEMU, overlay and seed."""
    existing = vms()
    removed = []
    for name in names or list(existing):
        vm = existing.get(name)
        if vm is None:
            continue
        if vm.pid is not None:
            os.kill(vm.pid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            while _pid(vm.directory, name) is not None and time.monotonic() < deadline:
                time.sleep(0.2)
            if _pid(vm.directory, name) is not None:
                os.kill(vm.pid, signal.SIGKILL)
        shutil.rmtree(vm.directory, ignore_errors=True)
        removed.append(name)
    _remove_stale_images(keep=image_path())  # images of older recipes no VM uses now
    return removed


# --- connecting ------------------------------------------------------------------------

def can_login(vm: VM, user: str) -> bool:
    return vm.ssh(user, "true", timeout=60).returncode == 0


def login_user(vm: VM, candidates: list[str]) -> str:
    """The first of candidates that can log in (admins once base made them, then the
    image's default user); the last one if none can, so the error names it."""
    for user in candidates[:-1]:
        if can_login(vm, user):
            return user
    return candidates[-1]


def ssh_data(vm: VM, user: str) -> dict:
    """pyinfra connection data: SSH through the forwarded port, sudo as on a cloud host."""
    return {
        "ssh_hostname": "127.0.0.1",
        "ssh_port": vm.port,
        "ssh_user": user,
        "ssh_key": str(sandbox.key_path()),
        "ssh_known_hosts_file": "/dev/null",
        "ssh_strict_host_key_checking": "no",
        "_sudo": True,
        "keel_address": GUEST_ADDRESS,
        **lab_data(),
    }


def lab_data() -> dict:
    """The VM's data that depends on this machine: its apt mirror, and the admin `ops` with
    keel's key (base makes it and locks the image's default user)."""
    return {"base_apt_mirror": sandbox.debian_mirror(),
            "base_admin_users": [{"name": ADMIN, "ssh_keys": [public_key()]}]}


def login_candidates(values: dict) -> list[str]:
    """Users keel may log in as, from a host's data: admins holding keel's key, then the
    image's default user."""
    mine = public_key().split()[:2]
    admins = [user["name"] for user in values.get("base_admin_users") or []
              if user.get("state", "present") == "present"
              and any(key.split()[:2] == mine for key in user.get("ssh_keys", []))]
    return [*admins, values.get("base_default_user") or DEFAULT_USER]


def _groups() -> list[str]:
    from keel.core.roles import all_groups

    return ["vm", *sorted(all_groups())]


def host_data(vm: VM) -> dict:
    """The VM's merged data (env "vm"), unvalidated: enough to pick the login user."""
    from keel import ROOT
    from keel.core.inventory import hosts_data

    spec = {group: [(vm.name, lab_data())] for group in _groups()}
    return hosts_data("vm", spec, str(ROOT / "inventories/vm.py"))[0].values


def inventory(name: str, source: str) -> dict[str, list]:
    """pyinfra groups for the all-in-one VM: env "vm", in every group a role applies to."""
    import sys

    from keel.core.inventory import groups

    try:
        vm = get(name)
    except KeelError as exc:
        print(f"keel: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    user = login_user(vm, login_candidates(host_data(vm)))
    return groups("vm", {group: [(name, ssh_data(vm, user))] for group in _groups()},
                  source=source)
