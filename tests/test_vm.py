"""The whole site on a bare VM: Debian's kernel under QEMU, bootstrapped by cloud-init.

One VM, set up as a fresh cloud instance is (default user `debian`, keel's key, passwordless
sudo), is converged with `pyinfra inventories/vm.py deploys/site.py`, converged again (zero
changes), then rebooted. After the reboot, with no converge, everything must be back.
Slow (TCG): `make test-vm` runs it; the module prints how long each phase took.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import struct
import subprocess
import threading
import time

import pytest

from keel import ROOT
from keel.errors import KeelError
from keel.lab import vm
from keel.lab.testing import BIN

pytestmark = pytest.mark.vm
NAME = "vm-test"
INVENTORY = ROOT / "inventories/vm.py"
ADMIN = "ops"  # group_data/vm.py
RUN_TIMEOUT = 5400


class SntpServer(threading.Thread):
    """A minimal SNTP server on the controller's loopback. QEMU's user network maps the
    VM's NTP server (10.0.2.2) there, so time sync is real and no NTP leaves the machine."""

    EPOCH = 2208988800  # 1900 -> 1970

    def __init__(self):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 123))
        self.sock.settimeout(0.5)
        self.stopped = threading.Event()
        self.answered = 0

    def _stamp(self, t: float) -> bytes:
        return struct.pack("!II", int(t) + self.EPOCH, int((t % 1) * 2**32))

    def run(self):
        while not self.stopped.is_set():
            try:
                request, client = self.sock.recvfrom(512)
            except TimeoutError:
                continue
            received = time.time()
            if len(request) < 48 or request[0] & 7 != 3:  # only client requests
                continue
            version = (request[0] >> 3) & 7
            header = struct.pack("!BBbbII4s", version << 3 | 4, 1, request[2], -20, 0, 16,
                                 b"LOCL")
            self.sock.sendto(header + self._stamp(received) + request[40:48]
                             + self._stamp(received) + self._stamp(time.time()), client)
            self.answered += 1

    def stop(self):
        self.stopped.set()
        self.join()
        self.sock.close()


def _sh(machine: vm.VM, command: str, user: str = ADMIN, timeout: int = 300) -> str:
    proc = machine.ssh(user, command, timeout=timeout)
    assert proc.returncode == 0, f"{user}@{machine.name}: {command}: {proc.stderr}"
    return proc.stdout


def _snapshot(machine: vm.VM) -> dict:
    """What must survive a reboot."""
    state = {
        "services": set(_sh(machine, "systemctl list-units --type=service --state=running "
                                     "--no-legend --plain | cut -d' ' -f1").split()),
        "firewall": _sh(machine, "sudo nft list table inet keel"),
        # name -> owner, mode and a hash of the content (never the content itself)
        "secrets": dict(line.split(" ", 1) for line in _sh(
            machine, "sudo sh -c 'cd /run/keel/secrets 2>/dev/null || exit 0; "
                     "for f in $(find . -type f); do "
                     "echo \"$f $(stat -c %U:%G:%a $f) $(sha256sum < $f)\"; done'").splitlines()),
        "boot_id": _sh(machine, "cat /proc/sys/kernel/random/boot_id").strip(),
    }
    return state


def _boot_id(machine: vm.VM) -> str:
    try:
        return machine.ssh(ADMIN, "cat /proc/sys/kernel/random/boot_id", timeout=60).stdout
    except subprocess.TimeoutExpired:  # sshd accepts while the guest goes down or comes up
        return ""


def _reboot(machine: vm.VM, old_boot_id: str) -> dict:
    """Reboot; returns systemd's state once booting ends and the failed units."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        machine.ssh(ADMIN, "sudo systemctl reboot", timeout=60)
    deadline = time.monotonic() + vm.BOOT_TIMEOUT
    while time.monotonic() < deadline:
        if _boot_id(machine).strip() not in ("", old_boot_id):
            break
        vm.wait_ssh(machine, timeout=int(deadline - time.monotonic()), what="reboot")
        time.sleep(2)
    else:
        raise KeelError(f"VM {machine.name} did not come back from reboot; serial console:\n"
                        f"{machine.console_tail()}")
    # Not asserted here: a failed unit must not hide what the other tests check.
    state = machine.ssh(ADMIN, "systemctl is-system-running --wait", timeout=vm.BOOT_TIMEOUT)
    return {"state": state.stdout.strip(),
            "failed": _sh(machine, "systemctl --failed --no-legend --plain").strip()}


@pytest.fixture(scope="module")
def site(harness, request, report_duration, secrets_env):
    """Boot, converge twice, snapshot, reboot, snapshot. Returns what the tests check."""
    phases: dict[str, float] = {}
    start = last = time.monotonic()

    def phase(name: str) -> None:
        nonlocal last
        now = time.monotonic()
        phases[name] = now - last
        last = now

    try:
        sntp = SntpServer()
        sntp.start()
    except OSError:
        sntp = None  # port 123 taken here: time sync is then only checked as enabled
    env = {"KEEL_VM": NAME}
    out: dict = {"phases": phases, "sntp": sntp}
    try:
        vm.build_image(log=lambda m: None)
        phase("image build (cached unless the recipe changed)")
        machine = vm.up(NAME, fresh=True, log=lambda m: None)
        phase("boot to cloud-init done")
        out["vm"] = machine
        _secrets(env)
        out["fresh"] = {
            "default_sudo": machine.ssh(vm.DEFAULT_USER, "sudo -n id -u").stdout.strip(),
            "admin_login": vm.can_login(machine, ADMIN),
            "root_login": vm.can_login(machine, "root"),
        }
        out["first"] = harness.run(INVENTORY, "deploys/site.py", env=env,
                                   timeout=RUN_TIMEOUT).check()
        phase("first converge (as debian)")
        out["second"] = harness.run(INVENTORY, "deploys/site.py", env=env,
                                    timeout=RUN_TIMEOUT).check()
        phase("second converge (as ops)")
        out["before"] = _snapshot(machine)
        out["postgres"] = _write_postgres(machine)
        phase("snapshot")
        out["boot"] = _reboot(machine, out["before"]["boot_id"])
        phase("reboot")
        out["after"] = _snapshot(machine)
        out["plan"] = harness.run(INVENTORY, "deploys/site.py", dry=True, diff=True, env=env,
                                  timeout=RUN_TIMEOUT).check()
        phase("plan after reboot")
        yield out
    finally:
        phases["whole module"] = time.monotonic() - start
        for name, seconds in phases.items():
            report_duration(f"test_vm: {name}", seconds)
        if sntp is not None:
            sntp.stop()
        if not (request.config.getoption("--keep-hosts") or os.environ.get("KEEL_KEEP")):
            vm.down([NAME])


def _secrets(env: dict) -> None:
    """The vm environment's secrets and CA, throwaway (secrets_env), made as a user does."""
    from keel.core import store

    _, public, _ = store.create_identity()  # secrets_env's identity
    store.set_recipients("vm", [public])
    for argv in (["ca", "init", "vm"], ["secrets", "ensure", "vm", str(INVENTORY)]):
        proc = subprocess.run([str(BIN / "keel"), *argv], cwd=ROOT, capture_output=True,
                              text=True, env={**os.environ, **env})
        assert proc.returncode == 0, f"keel {' '.join(argv)}: {proc.stderr}"


def _write_postgres(machine: vm.VM) -> str | None:
    """A row written before the reboot, if the site runs PostgreSQL; returns its token."""
    if machine.ssh(ADMIN, "systemctl is-active --quiet postgresql").returncode != 0:
        return None
    token = secrets.token_hex(8)
    _sh(machine, "cd /tmp && sudo -u postgres psql -v ON_ERROR_STOP=1 -qc "
                 "'CREATE TABLE IF NOT EXISTS keel_vm_reboot (token text); "
                 f"INSERT INTO keel_vm_reboot VALUES ($$ {token} $$)'")
    return token


# --- a fresh instance, converged --------------------------------------------------------

def test_fresh_instance_is_a_cloud_host(site):
    """Before keel: cloud-init's default user with keel's key and passwordless sudo."""
    assert site["fresh"] == {"default_sudo": "0", "admin_login": False, "root_login": False}


def test_converges_then_no_changes(site):
    assert site["first"].changed()[NAME]
    assert site["second"].changed() == {}


def test_default_user_locked_admin_logs_in(site):
    machine = site["vm"]
    refused = machine.ssh(vm.DEFAULT_USER, "true")
    assert refused.returncode == 255 and "Permission denied" in refused.stderr
    assert _sh(machine, "sudo -n id -u").strip() == "0"
    home = _sh(machine, f"getent passwd {vm.DEFAULT_USER} | cut -d: -f6").strip()
    assert _sh(machine, f"sudo test -e {home}/.ssh/authorized_keys || echo gone") == "gone\n"
    assert _sh(machine, f"sudo passwd -S {vm.DEFAULT_USER}").split()[1] == "L"
    assert f"denyusers {vm.DEFAULT_USER}" in _sh(machine, "sudo sshd -T").splitlines()
    assert "permitrootlogin no" in _sh(machine, "sudo sshd -T").splitlines()


# --- after the reboot, with no converge -------------------------------------------------

def test_rebooted(site):
    assert site["after"]["boot_id"] != site["before"]["boot_id"]


def test_system_running_after_reboot(site):
    assert site["boot"] == {"state": "running", "failed": ""}


def test_services_back(site):
    sessions = {s for s in site["before"]["services"] if s.startswith("user@")}
    missing = site["before"]["services"] - site["after"]["services"] - sessions
    assert not missing, f"not running after the reboot: {sorted(missing)}"


def test_firewall_back(site):
    assert "policy drop" in site["after"]["firewall"]
    assert site["after"]["firewall"] == site["before"]["firewall"]


def test_secrets_back(site):
    before, after = site["before"]["secrets"], site["after"]["secrets"]
    if not before:
        pytest.skip("no role of the site delivers secrets to /run/keel/secrets yet")
    changed = sorted(name for name in before if after.get(name) != before[name])
    assert not changed, "secrets missing or different after the reboot"


def test_postgres_data_intact(site):
    if site["postgres"] is None:
        pytest.skip("the site runs no PostgreSQL yet")
    rows = _sh(site["vm"], "cd /tmp && sudo -u postgres psql -Atc "
                           "'SELECT token FROM keel_vm_reboot'")
    assert site["postgres"] in rows.split()


def test_sysctl_hardening_live(site):
    """On a real kernel the values base writes to sysctl.d are in force after boot."""
    wanted = vm.host_data(site["vm"])["base_sysctl"]
    live = _sh(site["vm"], "/usr/sbin/sysctl " + " ".join(wanted))
    assert dict(line.split(" = ", 1) for line in live.splitlines()) == {
        key: str(value) for key, value in wanted.items()}


def test_time_sync(site):
    machine = site["vm"]
    assert _sh(machine, "systemctl is-active systemd-timesyncd").strip() == "active"
    if site["sntp"] is None:
        pytest.skip("port 123 on the controller's loopback is taken: no NTP server to sync")
    synced = _sh(machine, "for i in $(seq 60); do timedatectl show -p NTPSynchronized "
                          "--value | grep -qx yes && echo yes && exit; sleep 2; done; echo no")
    assert synced.strip() == "yes", _sh(machine, "timedatectl timesync-status")
    assert "10.0.2.2" in _sh(machine, "timedatectl show-timesync -p ServerAddress")


def test_hostname_kept(site):
    """cloud-init would reset the provider's name (ip-10-0-2-15) at boot; base stops it."""
    assert _sh(site["vm"], "hostname").strip() == NAME


def test_no_drift_after_reboot(site):
    assert site["plan"].changed() == {}


# --- hardening on a real kernel (roles/base/hardening.py) --------------------------------

def test_blacklisted_modules_refuse_to_load(site):
    machine = site["vm"]
    for module in ("dccp", "sctp", "cramfs"):
        proc = machine.ssh(ADMIN, f"sudo modprobe {module}")
        assert proc.returncode != 0, f"{module} loaded"
        assert module not in _sh(machine, "cut -d' ' -f1 /proc/modules").split()


def test_audit_records_a_write_to_passwd(site):
    machine = site["vm"]
    assert _sh(machine, "systemctl is-active auditd").strip() == "active"
    assert "-w /etc/passwd -p wa -k identity" in _sh(machine, "sudo auditctl -l")
    _sh(machine, "sudo touch /etc/passwd")
    # --input-logs: without a terminal, ausearch reads stdin instead of the logs.
    found = _sh(machine, "for i in $(seq 20); do sudo ausearch --input-logs -k identity "
                         "-f /etc/passwd -i 2>/dev/null | grep -q passwd && echo yes && exit; "
                         "sleep 1; done; echo no")
    assert found.strip() == "yes"


def test_core_dumps_off_on_the_kernel(site):
    assert _sh(site["vm"], "/usr/sbin/sysctl -n fs.suid_dumpable").strip() == "0"
    assert _sh(site["vm"], "ulimit -Hc").strip() == "0"
