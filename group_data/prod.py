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
# The agents' HTTPS front (edge, on the app hosts), with certificates from Let's Encrypt.
edge_upstreams = {"agents": {"group": "app", "port": 8080}}
edge_vhosts = [
    {"name": "agents", "server_name": "agents.example.net", "upstream": "agents", "tls": "acme"},
]
edge_acme = {"server": "https://acme-v02.api.letsencrypt.org/directory",
             "email": "ops@example.net"}
# The agents' storage in PostgreSQL on the db host (storage's defaults name this role, its
# database and the secret postgres_app_password).
storage_backend = "postgresql"
postgres_roles = [{"name": "app", "password_secret": "postgres_app_password"}]
postgres_databases = [{"name": "app", "owner": "app"}]
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
