"""The agent group: hosts that run keel's reference agent (roles/agent) behind the edge.

The agent runs as the app user with the claude group, so both get fixed ids; its runs live in
PostgreSQL and it uses Redis with its own ACL user. storage declares both logins to the db
and cache hosts, so no environment lists them.
"""

storage_app_uid = 10001
storage_database = "postgresql"
storage_redis_user = "agent"
claude_cli_uid = 10002
claude_cli_group_read = True
# No registry is needed: the agent's image is built FROM an image each host makes of its own
# Debian files (agent_base_image); set agent_image to use a registry's build instead.
container_runtime_host_images = ["localhost/keel/debian-host:12"]
