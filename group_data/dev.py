"""dev: the all-in-one developer host. Secrets are not kept here (secrets/dev.yaml)."""

base_admin_users = [
    {"name": "dev", "ssh_keys": [
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILBr/uTQTVBPdkUhRDoUdqhNaCESoVyKwOYov92v4kZl "
        "dev@example.net",
    ]},
]
# A developer's VM installs upgrades when the developer says so.
base_unattended_upgrades = False
# The agent behind the edge, with a certificate from the environment's CA (`keel ca init dev`).
agent_server_name = "agents.dev.internal"
