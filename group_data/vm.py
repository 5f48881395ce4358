"""The vm environment: the all-in-one VM (`keel vm up`), bootstrapped like a cloud host.

What depends on the machine (its apt mirror, the admin's key) is the VM's own data, from
inventories/vm.py (keel.lab.vm.lab_data).
"""

# cloud-init made the image's default user with keel's key. base makes the admin `ops` with
# the same key and locks the default user; inventories/vm.py logs in as whichever can.
base_default_user = "debian"
base_default_user_lock = True
base_sshd_permit_root_login = "no"
# Time only from the controller (QEMU maps 10.0.2.2 to its loopback): no outside NTP traffic.
base_ntp_servers = ["10.0.2.2"]
# All in one: the edge fronts the agent on this same host, with a certificate from the
# environment's internal CA (`keel ca init vm`).
agent_server_name = "agents.vm.internal"
