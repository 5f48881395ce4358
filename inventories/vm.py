"""The all-in-one VM (`keel vm up`): one Debian 12 VM in every group, reached as a fresh
cloud host is: SSH as the image's default user with sudo until base has made keel's admin,
then as that admin. KEEL_VM names the VM (default vm-aio)."""

import os

from keel.lab import vm

globals().update(vm.inventory(os.environ.get("KEEL_VM", vm.DEFAULT_NAME), source=__file__))
