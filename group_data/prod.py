"""prod: data for every production host. Secrets are not kept here (secrets/prod.yaml)."""

# Admins: passwordless sudo, SSH by key. (Example key: replace with your team's keys.)
base_admin_users = [
    {"name": "ops", "ssh_keys": [
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILDsxtjr5aYAGU0NwQPKKfNu6z551Jul6smkkQgYeQ2F "
        "ops@example.net",
    ]},
]
# sshd answers the private network and the operators' VPN only.
base_sshd_sources = ["10.20.0.0/16", "203.0.113.0/28"]
edge_acme = {"server": "https://acme-v02.api.letsencrypt.org/directory",
             "email": "ops@example.net"}
# The agent behind the edge, with a certificate from Let's Encrypt (edge_acme).
agent_server_name = "agents.example.net"
agent_tls = "acme"
# A real deployment runs the agent image its registry holds (same contract as
# roles/agent/image): agent_image = "registry.example.net/keel/agent:1.0".
# Transcripts in PostgreSQL on the db host (storage declares the login and the database).
storage_backend = "postgresql"
# Alerts: critical ones to the on-call webhook, warnings to the team chat's webhook. (Example
# URLs: replace them.) For email add {"name": "ops-mail", "email_to": ["ops@example.net"]}, a
# route to it, and alertmanager_smtp = {"smarthost": "smtp.example.net:587",
# "from": "keel@example.net", "username": "keel", "password_secret": "alertmanager_smtp_password"}
# with that secret in secrets/prod.yaml.
alertmanager_receivers = [
    {"name": "default"},
    {"name": "oncall", "webhook_urls": ["https://oncall.example.net/hooks/keel"]},
    {"name": "team-chat", "webhook_urls": ["https://chat.example.net/hooks/keel-alerts"]},
]
alertmanager_routes = [
    {"severity": "critical", "receiver": "oncall", "continue": True},
    {"severity": "critical", "receiver": "team-chat"},
    {"severity": "warning", "receiver": "team-chat", "repeat_interval": "12h"},
]
