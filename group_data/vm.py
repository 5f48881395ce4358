"""The vm environment: the all-in-one VM (`keel vm up`), bootstrapped like a cloud host."""

from keel import vm
from keel.sandbox import debian_mirror

# The VM installs from the same mirror the controller uses.
base_apt_mirror = debian_mirror()
# cloud-init made the image's default user with keel's key. base makes the admin `ops` with
# the same key and locks the default user; inventories/vm.py logs in as whichever can.
base_default_user = vm.DEFAULT_USER
base_default_user_lock = True
base_admin_users = [{"name": "ops", "ssh_keys": [vm.public_key()]}]
base_sshd_permit_root_login = "no"
# Time only from the controller (QEMU maps 10.0.2.2 to its loopback): no outside NTP traffic.
base_ntp_servers = [vm.CONTROLLER_ADDRESS]
# All in one: the edge fronts the app on this same host, with a certificate from the
# environment's internal CA (`keel ca init vm`).
edge_upstreams = {"app": {"group": "app", "port": 8000, "via": "loopback"}}
edge_vhosts = [{"name": "app", "server_name": "app.vm.internal", "upstream": "app"}]
