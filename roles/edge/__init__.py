"""edge: nginx as the TLS front for the app services, with certificates from secrets, the
environment's internal CA or ACME. A new nginx config is staged and tested (nginx -t) before
it replaces the running one."""

from __future__ import annotations

import time
from io import BytesIO

from pyinfra import host, inventory
from pyinfra.api import FactBase, FileUploadCommand, StringCommand, deploy
from pyinfra.operations import apt, files, server, systemd
from pyinfra.operations.util import any_changed

from keel.core import ca
from keel.core.render import render
from keel.core.roles import Role
from keel.core.schema import PortRule
from keel.core.secrets import RUN_DIR, SecretFile
from keel.deploy.ops import (
    config_file,
    dropin,
    managed_file,
    operation,
    service,
    start_after,
    unit_files,
)
from keel.deploy.secrets import deliver, store_commands
from roles.edge.alerts import EDGE_ALERTS
from roles.edge.schema import Settings, Vhost, cross_check

CONF_DIR = "/etc/nginx/keel"
STAGED, LIVE = f"{CONF_DIR}/staged", f"{CONF_DIR}/live"
EDGE_DIR = "/etc/keel/edge"
CERT_DIR = f"{EDGE_DIR}/certs"
CA_FILE = f"{EDGE_DIR}/ca.crt"
ACME_CA_FILE = f"{EDGE_DIR}/acme-ca.crt"
ACME_WEBROOT = "/var/lib/keel/acme"
STATUS_LOG = "/var/log/nginx/keel-status.log"
METRICS = "/usr/local/sbin/keel-edge-metrics"
RELEASE_TOOL = "/usr/local/sbin/keel-edge"


def ports(settings: Settings) -> list[PortRule]:
    if not settings.edge_vhosts:
        return []
    return [PortRule(port=80, sources=settings.edge_sources, comment="edge http (redirect, acme)"),
            PortRule(port=443, sources=settings.edge_sources, comment="edge https")]


def alerts() -> list[dict]:
    """Rule groups the prometheus role loads when the inventory has edge hosts."""
    return [EDGE_ALERTS]


def _key_file(vhost: Vhost, i: int = 0) -> SecretFile:
    if vhost.tls == "provided":
        return SecretFile(dest=f"edge/{vhost.name}.key", secret=vhost.key_secret,
                          named_by={vhost.key_secret: f"edge_vhosts[{i}].key_secret"})
    return SecretFile(dest=f"edge/{vhost.name}.key", generated=True)


def secrets(settings: Settings) -> list[SecretFile]:
    """Provided keys and chains from secrets; internal-CA keys are made by keel (generated)."""
    out = []
    for i, vhost in enumerate(settings.edge_vhosts):
        if vhost.tls == "provided":
            out += [SecretFile(dest=f"edge/{vhost.name}.crt", secret=vhost.cert_secret,
                               named_by={vhost.cert_secret: f"edge_vhosts[{i}].cert_secret"}),
                    _key_file(vhost, i)]
        elif vhost.tls == "internal":
            out.append(_key_file(vhost))
    return out


def cert_paths(vhost: Vhost) -> tuple[str, str]:
    """(certificate chain, key) that nginx reads for this vhost."""
    if vhost.tls == "acme":
        live = f"/etc/letsencrypt/live/{vhost.name}"
        return f"{live}/fullchain.pem", f"{live}/privkey.pem"
    cert = f"{RUN_DIR}/edge/{vhost.name}.crt" if vhost.tls == "provided" \
        else f"{CERT_DIR}/{vhost.name}.crt"
    return cert, f"{RUN_DIR}/edge/{vhost.name}.key"


def servers(settings: Settings) -> dict[str, list[tuple[str, str]]]:
    """Upstream name -> (host, address) of its servers, from inventory data (never by
    connecting)."""
    out = {}
    for name, upstream in settings.edge_upstreams.items():
        members = inventory.get_group(upstream.group, [])
        out[name] = upstream.servers(host.name, [(m.name, m.data.get("keel_address"))
                                                 for m in members])
    return out


class Certificate(FactBase):
    """{not_after (epoch), sans, key_match, verified} of a certificate, or None if absent.

    The key is only read for its public half, to check that it matches the certificate."""

    def command(self, path: str, key: str, ca: str | None = None) -> str:
        verify = (f'openssl verify -CAfile {ca} "$c" >/dev/null 2>&1 && echo verified; '
                  if ca else "")
        return (
            f'c={path}; k={key}; [ -f "$c" ] || exit 0; '
            'echo "end $(date -d "$(openssl x509 -in "$c" -noout -enddate | cut -d= -f2)" +%s)"; '
            'openssl x509 -in "$c" -noout -ext subjectAltName 2>/dev/null | tail -n +2 | '
            "tr -d ' ' | tr ',' '\\n' | sed 's/^/san /'; "
            'a=$(openssl x509 -in "$c" -noout -pubkey | sha256sum); '
            'b=$(openssl pkey -in "$k" -pubout 2>/dev/null | sha256sum); '
            '[ "$a" = "$b" ] && echo key-match; ' + verify + "true"
        )

    def process(self, output):
        info = {"not_after": 0, "sans": set(), "key_match": False, "verified": False}
        for line in output:
            word, _, rest = line.partition(" ")
            if word == "end":
                info["not_after"] = int(rest)
            elif word == "san":
                info["sans"].add(rest.replace("IPAddress:", "IP:").lower())
            elif word == "key-match":
                info["key_match"] = True
            elif word == "verified":
                info["verified"] = True
        return info if output else None


class ConfigDirs(FactBase):
    """{"staged": {file: sha256}, "live": {...}} of keel's nginx config directories."""

    def command(self) -> str:
        return (f"for d in {STAGED} {LIVE}; do [ -d $d ] && (cd $d && sha256sum *.conf "
                "2>/dev/null | sed \"s|^|$(basename $d) |\"); done; true")

    def process(self, output):
        dirs = {"staged": {}, "live": {}}
        for line in output:
            which, digest, name = line.split(None, 2)
            dirs[which][name] = digest
        return dirs


def _wanted_sans(vhost: Vhost) -> set[str]:
    return {f"dns:{n}" for n in vhost.names} | {f"ip:{a}" for a in vhost.addresses}


def renewal_reason(info, sans: set[str], renew_days: int, need_verified: bool) -> str | None:
    """Why a certificate must be (re)issued, or None."""
    if info is None:
        return "missing"
    if not info["key_match"]:
        return "key missing or does not match"
    if info["sans"] != sans:
        return "names changed"
    if need_verified and not info["verified"]:
        return "not issued by the current CA"
    left = info["not_after"] - time.time()
    if left < renew_days * 86400:
        return f"{max(left, 0) / 86400:.1f} days left"
    return None


@operation()
def internal_cert(vhost: Vhost, days: int, renew_days: int, ca_changed: bool = False):
    """A certificate from the environment's CA; the key goes only to /run/keel/secrets."""
    cert, key = cert_paths(vhost)
    info = host.get_fact(Certificate, path=cert, key=key, ca=CA_FILE)
    reason = renewal_reason(info, _wanted_sans(vhost), renew_days, need_verified=True)
    if reason is None and not ca_changed:
        host.noop(f"certificate {vhost.name} is valid")
        return
    key_pem, cert_pem = ca.issue(host.data.keel_env, vhost.names, vhost.addresses, days)
    yield from store_commands(_key_file(vhost), key_pem)
    yield StringCommand("install", "-d", "-m", "0755", CERT_DIR)
    yield FileUploadCommand(BytesIO(cert_pem), f"{cert}.new")
    yield f"chmod 0644 {cert}.new && mv -f {cert}.new {cert}"


@deploy("edge")
def apply(settings: Settings) -> None:
    acme = [v for v in settings.edge_vhosts if v.tls == "acme"]
    packages = ["nginx", "openssl", *(["certbot"] if acme else [])]
    apt.packages(name="Install nginx", packages=packages, no_recommends=True)
    unit = start_after("nginx.service", "edge", ["keel-secrets.service"],
                       name="Start nginx after keel-secrets",
                       why="Certificate keys live in /run/keel/secrets, decrypted by keel-secrets "
                           "at boot.")
    systemd.daemon_reload(name="Reload systemd units (nginx)", _if=unit.did_change)
    certs = _certificates(settings)
    missing = {v.name for v in acme
               if host.get_fact(Certificate, path=cert_paths(v)[0], key=cert_paths(v)[1])
               is None}
    if missing:
        # nginx must serve the challenge path before the first ACME certificate exists.
        _publish(settings, [v for v in settings.edge_vhosts if v.name not in missing], certs,
                 " (without new ACME vhosts)")
        _acme(settings, acme, missing)
    _publish(settings, settings.edge_vhosts, certs)
    config_file("edge", "keel-edge", RELEASE_TOOL, mode="0755", live=LIVE,
                status_log=STATUS_LOG,
                name="Install keel-edge (drain, weights and smoke requests for keel rollout)")
    if acme:
        _acme(settings, acme, set())
    _metrics(settings)


def _certificates(settings: Settings) -> list:
    """Put every vhost's certificate and key in place; returns the operations."""
    ops = []
    if any(v.tls == "internal" for v in settings.edge_vhosts):
        ca_file = managed_file(name="Install the environment's CA certificate",
                               content=ca.cert(host.data.keel_env), dest=CA_FILE)
        ops.append(ca_file)
    for vhost in settings.edge_vhosts:
        if vhost.tls == "provided":
            for file in secrets(settings):
                if file.dest.startswith(f"edge/{vhost.name}."):
                    ops.append(deliver(name=f"Deliver {vhost.name} {file.dest[-3:]} (provided)",
                                       file=file))
        elif vhost.tls == "internal":
            ops.append(internal_cert(name=f"Certificate for {vhost.name} (internal CA)",
                                     vhost=vhost, days=settings.edge_cert_days,
                                     renew_days=settings.edge_renew_days,
                                     ca_changed=ops[0].will_change))
    return ops


def _publish(settings: Settings, vhosts: list[Vhost], certs: list, label: str = "") -> None:
    """Stage the config, test it with nginx -t, and only then make it live and reload."""
    context = {"vhosts": vhosts, "servers": servers(settings), "paths": cert_paths,
               "webroot": ACME_WEBROOT, "status_log": STATUS_LOG}
    staged = [
        config_file("edge", "http.conf", f"{STAGED}/http.conf",
                    name=f"Stage nginx TLS, upstreams and port 80{label}", **context,
                    settings=settings),
        config_file("edge", "servers.conf", f"{STAGED}/servers.conf",
                    name=f"Stage nginx HTTPS vhosts{label}", **context, settings=settings),
        config_file("edge", "nginx.conf", f"{CONF_DIR}/test.conf", include=STAGED,
                    name=f"Stage nginx.conf for the test{label}", settings=settings),
    ]
    dirs = host.get_fact(ConfigDirs)
    pending = any(op.will_change for op in staged) or dirs["staged"] != dirs["live"]
    files.directory(name="ACME challenge directory", path=ACME_WEBROOT, mode="0755")
    if pending:
        server.shell(name=f"Test the staged nginx config (nginx -t){label}",
                     commands=[f"nginx -t -q -c {CONF_DIR}/test.conf"])
    main = config_file("edge", "nginx.conf", "/etc/nginx/nginx.conf", include=LIVE,
                       name=f"Write nginx.conf{label}", settings=settings)
    if pending:
        server.shell(name=f"Make the tested nginx config live{label}", commands=[
            f"rm -rf {LIVE}.new && cp -a {STAGED} {LIVE}.new && rm -rf {LIVE} && "
            f"mv {LIVE}.new {LIVE}"])
    service(name=f"Run nginx{label}", service="nginx", running=True, enabled=True)
    if pending or main.will_change:
        systemd.service(name=f"Reload nginx{label}", service="nginx", reloaded=True)
    elif certs:
        systemd.service(name=f"Reload nginx for new certificates{label}", service="nginx",
                        reloaded=True, _if=any_changed(*certs))


def _acme(settings: Settings, vhosts: list[Vhost], missing: set[str]) -> None:
    """certbot: the first certificate now (webroot via port 80), renewals by certbot.timer."""
    env = {}
    if settings.edge_acme.ca_cert:
        managed_file(name="Trust the ACME server's CA", content=settings.edge_acme.ca_cert,
                     dest=ACME_CA_FILE)
        env = {"REQUESTS_CA_BUNDLE": ACME_CA_FILE}
    if missing:
        for vhost in vhosts:
            if vhost.name in missing:
                server.shell(name=f"Obtain the ACME certificate for {vhost.name}",
                             commands=[_certbot(settings, vhost)], _env=env)
        return
    for vhost in vhosts:
        info = host.get_fact(Certificate, path=cert_paths(vhost)[0], key=cert_paths(vhost)[1])
        if info is not None and info["sans"] != _wanted_sans(vhost):
            server.shell(name=f"Re-issue the ACME certificate for {vhost.name} (names changed)",
                         commands=[_certbot(settings, vhost)], _env=env)
    unit = dropin("certbot.service",
                  render("edge", "certbot-unit.conf", ca_file=ACME_CA_FILE, settings=settings),
                  name="certbot renewals trust the ACME server")
    systemd.daemon_reload(name="Reload systemd units (certbot)", _if=unit.did_change)
    service(name="Renew ACME certificates on a timer (certbot.timer)",
            service="certbot.timer", running=True, enabled=True)


def _certbot(settings: Settings, vhost: Vhost) -> str:
    account = f"-m {settings.edge_acme.email}" if settings.edge_acme.email else \
        "--register-unsafely-without-email"
    domains = " ".join(f"-d {n}" for n in vhost.names)
    return (f"certbot certonly --non-interactive --agree-tos {account} --webroot "
            f"-w {ACME_WEBROOT} --cert-name {vhost.name} {domains} "
            f"--server {settings.edge_acme.server} --key-type ecdsa --force-renewal "
            "--deploy-hook 'systemctl reload nginx'")


def _metrics(settings: Settings) -> None:
    """keel_edge_* metrics for the node exporter's textfile collector (see README)."""
    certs = [{"vhost": v.name, "source": v.tls, "path": cert_paths(v)[0]}
             for v in settings.edge_vhosts]
    script = config_file("edge", "keel-edge-metrics", METRICS, mode="0755",
                         name="Install the edge metrics script", certs=certs,
                         status_log=STATUS_LOG, settings=settings)
    units = unit_files("edge", ["keel-edge-metrics.service", "keel-edge-metrics.timer"],
                       label="edge metrics", script=METRICS, settings=settings)
    service(name="Run the edge metrics timer", service="keel-edge-metrics.timer",
            running=True, enabled=True)
    systemd.service(name="Write edge metrics now", service="keel-edge-metrics", running=None,
                    restarted=True, _if=any_changed(script, units[0]))


ROLE = Role(name="edge", settings=Settings, apply=apply, groups=("edge",), ports=ports,
            secrets=secrets, alerts=alerts, cross_check=cross_check)
