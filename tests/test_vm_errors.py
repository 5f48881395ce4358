"""VM image build and boot failures say what failed, without booting anything."""

import json
import subprocess
import sys
import time

import pytest

from keel.errors import KeelError
from keel.lab import sandbox, vm

PANIC = "Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)"


@pytest.fixture
def machine(tmp_path, monkeypatch):
    monkeypatch.setenv("KEEL_STATE_DIR", str(tmp_path))
    directory = vm.vms_dir() / "vm-err"
    directory.mkdir()
    (directory / "vm.json").write_text(json.dumps({"name": "vm-err", "port": 1, "image": "x"}))
    (directory / "console.log").write_text("\x1b[0;32m  OK  \x1b[0m] booting\r\n" + PANIC + "\n")
    return vm.vms()["vm-err"]


def test_build_failure_names_the_step(tmp_path):
    with pytest.raises(KeelError) as error:
        sandbox.run_step("VM image build", "debootstrap",
                         ["sh", "-c", "echo 'E: Failed getting release file'; exit 1"],
                         tmp_path / "debootstrap.log")
    assert "VM image build failed at step 'debootstrap' (exit 1)" in str(error.value)
    assert "E: Failed getting release file" in str(error.value)


def test_qemu_gone_shows_the_console(machine):
    assert not machine.running
    with pytest.raises(KeelError) as error:
        vm.wait_ssh(machine, timeout=5)
    assert "QEMU exited during boot; serial console:" in str(error.value)
    assert PANIC in str(error.value) and "\x1b" not in str(error.value)


def test_panic_stops_the_wait_at_once(machine):
    # A stand-in for QEMU: a process whose command line names the VM, no sshd anywhere.
    fake = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)",
                             "process=keel-vm-vm-err"])
    try:
        (machine.directory / "qemu.pid").write_text(str(fake.pid))
        # Popen returns once exec began; the new command line shows a moment later.
        deadline = time.monotonic() + 10
        while not vm.vms()["vm-err"].running and time.monotonic() < deadline:
            time.sleep(0.05)
        assert vm.vms()["vm-err"].running
        with pytest.raises(KeelError) as error:
            vm.wait_ssh(machine, timeout=60)
        assert "VM vm-err failed to boot (Kernel panic)" in str(error.value)
        assert PANIC in str(error.value)
    finally:
        fake.kill()
        fake.wait()
