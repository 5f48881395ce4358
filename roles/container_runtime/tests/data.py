"""Test data for container_runtime (the sandbox environment adds crun, cgroupfs,
fuse-overlayfs and a host image: group_data/sandbox.py)."""

container_runtime_log_max_size = "10M"
container_runtime_default_ulimits = ["nofile=16384:16384"]
