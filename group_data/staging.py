"""staging: data for every staging host. Secrets are not kept here (secrets/staging.yaml)."""

# Admins: passwordless sudo, SSH by key. (Example key: replace with your team's keys.)
base_admin_users = [
    {"name": "ops", "ssh_keys": [
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILDsxtjr5aYAGU0NwQPKKfNu6z551Jul6smkkQgYeQ2F "
        "ops@example.net",
    ]},
]
# sshd answers the private network and the operators' VPN only.
base_sshd_sources = ["10.10.0.0/16", "203.0.113.0/28"]
edge_acme = {"server": "https://acme-staging-v02.api.letsencrypt.org/directory",
             "email": "ops@example.net"}
# The agent behind the edge, with a certificate from Let's Encrypt (edge_acme).
agent_server_name = "agents.staging.example.net"
agent_tls = "acme"
# A real deployment runs the agent image its registry holds (same contract as
# roles/agent/image): agent_image = "registry.example.net/keel/agent:1.0".
# Transcripts in PostgreSQL on the db host (storage declares the login and the database).
storage_backend = "postgresql"
