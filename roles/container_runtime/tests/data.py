"""Test data for container_runtime (the sandbox environment adds crun, cgroupfs,
fuse-overlayfs and a host image: group_data/sandbox.py)."""

container_runtime_log_max_size = "10M"
# Both limits: once any is set, podman 4.3 sets the others it knows (nproc) to 1048576,
# above a sandbox host's hard limit, and without CAP_SYS_RESOURCE every container then fails
# ("setrlimit RLIMIT_NPROC: Operation not permitted").
container_runtime_default_ulimits = ["nofile=16384:16384", "nproc=16384:16384"]
