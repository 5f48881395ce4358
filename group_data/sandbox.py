"""The sandbox environment: local podman hosts (keel sandbox up prod)."""

from keel.sandbox import debian_mirror

# Hosts install from the same mirror the controller uses.
base_apt_mirror = debian_mirror()

# Containers inside sandbox hosts (privileged, nested): only crun with cgroupfs works there,
# / is overlayfs (so storage needs fuse-overlayfs), and no registry is reachable, so images
# start from one made of the host's own files.
container_runtime_oci_runtime = "crun"
container_runtime_cgroup_manager = "cgroupfs"
container_runtime_storage_driver = "fuse-overlayfs"
container_runtime_host_images = ["localhost/keel/debian-host:12"]
