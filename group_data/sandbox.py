"""The sandbox environment: local podman hosts (keel sandbox up prod).

Each host's own data (keel.lab.sandbox.ssh_data) adds its address and the controller's apt
mirror.
"""

# Containers inside sandbox hosts (privileged, nested): only crun with cgroupfs works there,
# / is overlayfs (so storage needs fuse-overlayfs), and no registry is reachable, so images
# start from one made of the host's own files.
container_runtime_oci_runtime = "crun"
container_runtime_cgroup_manager = "cgroupfs"
container_runtime_storage_driver = "fuse-overlayfs"
container_runtime_host_images = ["localhost/keel/debian-host:12"]
# The agent behind the edge, with a certificate from the sandbox's CA.
agent_server_name = "agents.sandbox.internal"
# App data backups (restic role) on app hosts, as in prod and staging: the agents' DATA_DIR
# (local storage backend). The password is the secret restic_password (keel secrets ensure).
restic_enabled = True
