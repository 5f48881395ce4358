"""edge on real sandbox hosts: the ClaudeCodeProxy stand-in on two app hosts behind nginx,
with one vhost per certificate source (internal CA, provided chain, ACME via pebble)."""

import datetime
import http.client
import json
import socket
import ssl
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from keel import ROOT
from keel.core import ca
from keel.lab.testing import run_testinfra, ssh

pytestmark = pytest.mark.sandbox
DEPLOY = "tests/deploys/edge_stack.py"
EDGE = "deploys/edge.py"  # the edge role alone, once the stack has converged
DATA = ROOT / "roles/edge/tests/data.py"
INTERNAL, PROVIDED, ACME = "proxy.sandbox.internal", "provided.sandbox.test", "x-app1"


def _chain():
    """A provided chain: root -> intermediate -> leaf. Returns (root PEM, chain PEM, key PEM)."""
    now = datetime.datetime.now(datetime.UTC)

    def cert(subject, key, issuer, issuer_key, is_ca, san=None):
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(hours=1))
                   .not_valid_after(now + datetime.timedelta(days=30))
                   .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None),
                                  critical=True))
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]),
                                            critical=False)
        return builder.sign(issuer_key, hashes.SHA256())

    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(3)]
    root = cert("test root", keys[0], "test root", keys[0], True)
    mid = cert("test intermediate", keys[1], "test root", keys[0], True)
    leaf = cert(PROVIDED, keys[2], "test intermediate", keys[1], False, PROVIDED)
    pem = [c.public_bytes(serialization.Encoding.PEM).decode() for c in (root, leaf, mid)]
    key = keys[2].private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return pem[0], pem[1] + pem[2], key


@pytest.fixture(scope="module")
def hosts(sandbox_hosts):
    # x-app1: edge and app; x-app2: app and pebble (the ACME server).
    return sandbox_hosts("x-app1", "x-app2")


@pytest.fixture(scope="module")
def provided(secrets_env):
    root, chain, key = _chain()
    secrets_env.set("edge_provided_cert", chain)
    secrets_env.set("edge_provided_key", key)
    secrets_env.set("claudecodeproxy_admin_password", "admin-" + "x" * 20)
    secrets_env.set("claudecodeproxy_key_hasher_secret", "hmac-" + "y" * 40)
    return {"root": root, "key": key}


@pytest.fixture(scope="module")
def ca_pem(secrets_env, tmp_path_factory):
    pem = ca.init("sandbox", force=True)
    path = tmp_path_factory.mktemp("edge") / "ca.pem"
    path.write_text(pem)
    return path


def _inventory(harness, hosts, ca_pem, name="inventory", **data):
    app1, app2 = hosts
    base = {"secrets_prune": False,
            "edge_acme": {"server": "https://x-app2:14000/dir", "ca_cert": ca_pem.read_text()}}
    return harness.inventory({"app": [app1, app2], "edge": [app1], "acme": [app2]},
                             data_files=[DATA], data={**base, **data}, name=name)


@pytest.fixture(scope="module")
def converged(harness, hosts, ca_pem, provided):
    inventory = _inventory(harness, hosts, ca_pem)
    return inventory, harness.assert_idempotent(inventory, DEPLOY)


def _https(host, name, path, cafile=None, cadata=None):
    """GET https://name/path from the edge host's address, validating against the given CA."""
    ctx = ssl.create_default_context(cafile=cafile, cadata=cadata)
    conn = http.client.HTTPSConnection(name, 443, timeout=10)
    conn.sock = ctx.wrap_socket(socket.create_connection((host.address, 443), timeout=10),
                                server_hostname=name)
    conn.request("GET", path)
    response = response_ = conn.getresponse()
    body = response.read().decode()
    peer = x509.load_der_x509_certificate(conn.sock.getpeercert(binary_form=True))
    conn.close()
    return response_, body, peer


def _pebble_root(acme, ca_pem):
    ctx = ssl.create_default_context(cafile=str(ca_pem))
    conn = http.client.HTTPSConnection(acme.address, 15000, context=ctx, timeout=10)
    conn.request("GET", "/roots/0")
    return conn.getresponse().read().decode()


def test_second_run_and_plan_change_nothing(converged):
    _, (first, second, plan) = converged
    assert "x-app1" in first.changed()
    assert second.changed() == {} and plan.changed() == {}


def test_internal_ca_https_reaches_every_upstream(converged, hosts, ca_pem):
    edge = hosts[0]
    response, body, _ = _https(edge, INTERNAL, "/health", cafile=str(ca_pem))
    assert response.status == 200 and json.loads(body)["status"] == "ok"
    assert "max-age=31536000" in response.getheader("Strict-Transport-Security")
    seen = {json.loads(_https(edge, INTERNAL, "/", cafile=str(ca_pem))[1])["host"]
            for _ in range(6)}
    assert seen == {"x-app1", "x-app2"}


def test_provided_chain_validates(converged, hosts, provided):
    response, body, peer = _https(hosts[0], PROVIDED, "/health", cadata=provided["root"])
    assert response.status == 200
    assert peer.subject.rfc4514_string() == f"CN={PROVIDED}"


def test_acme_certificate_from_pebble_validates(converged, hosts, ca_pem):
    root = _pebble_root(hosts[1], ca_pem)
    response, _, peer = _https(hosts[0], ACME, "/health", cadata=root)
    assert response.status == 200
    assert "Pebble" in peer.issuer.rfc4514_string()
    assert ssh(hosts[0], "systemctl is-enabled certbot.timer").stdout.strip() == "enabled"


def test_acme_renewal_by_the_timer_service(converged, hosts, ca_pem):
    """certbot.timer's service renews a certificate that is due (a threshold beyond its
    lifetime makes it due) against pebble, and its deploy hook reloads nginx."""
    root = _pebble_root(hosts[1], ca_pem)
    before = _https(hosts[0], ACME, "/health", cadata=root)[2].serial_number
    conf = "/etc/letsencrypt/renewal/acme.conf"
    result = ssh(hosts[0], f"sed -i '1i renew_before_expiry = 100000 days' {conf} && "
                           f"systemctl start certbot.service; rc=$?; sed -i 1d {conf}; exit $rc",
                 timeout=120)
    assert result.returncode == 0, result.stderr
    assert _https(hosts[0], ACME, "/health", cadata=root)[2].serial_number != before


def test_wrong_ca_is_refused(converged, hosts, provided):
    with pytest.raises(ssl.SSLCertVerificationError):
        _https(hosts[0], INTERNAL, "/", cadata=provided["root"])


def test_http_redirects_except_acme_challenge(converged, hosts):
    conn = http.client.HTTPConnection(hosts[0].address, 80, timeout=10)
    conn.request("GET", "/v1/messages?x=1", headers={"Host": INTERNAL})
    response = conn.getresponse()
    response.read()
    assert response.status == 301
    assert response.getheader("Location") == f"https://{INTERNAL}/v1/messages?x=1"
    conn.request("GET", "/.well-known/acme-challenge/nothing", headers={"Host": INTERNAL})
    assert conn.getresponse().status == 404


def test_sse_streams_unbuffered(converged, hosts, ca_pem):
    response, body, _ = _https(hosts[0], INTERNAL, "/events", cafile=str(ca_pem))
    assert response.getheader("Content-Type") == "text/event-stream"
    assert body.count("data: tick") == 3


def test_tls_profile(converged, hosts, ca_pem):
    ctx = ssl.create_default_context(cafile=str(ca_pem))
    with ctx.wrap_socket(socket.create_connection((hosts[0].address, 443)),
                         server_hostname=INTERNAL) as s:
        assert s.version() == "TLSv1.3"
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with ctx.wrap_socket(socket.create_connection((hosts[0].address, 443)),
                         server_hostname=INTERNAL) as s:
        assert s.version() == "TLSv1.2"
    conf = ssh(hosts[0], "cat /etc/nginx/keel/live/*.conf").stdout
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in conf and "proxy_buffering off;" in conf
    assert "max_fails=3 fail_timeout=5s" in conf and "limit_req zone=keel_proxy" in conf


def test_metrics_for_cert_expiry_and_5xx(converged, hosts, ca_pem):
    for _ in range(3):
        # 500 is not in proxy_next_upstream: no retry, no server marked failed.
        _https(hosts[0], INTERNAL, "/status/500", cafile=str(ca_pem))
    ssh(hosts[0], "systemctl start keel-edge-metrics")
    prom = ssh(hosts[0], "cat /var/lib/prometheus/node-exporter/keel_edge.prom").stdout
    for vhost in ("proxy", "provided", "acme"):
        assert f'keel_edge_cert_not_after_seconds{{vhost="{vhost}"' in prom
    fives = [line for line in prom.splitlines()
             if line.startswith('keel_edge_responses_total{vhost="proxy",code="5xx"}')]
    assert fives and int(fives[0].split()[-1]) >= 3
    assert ssh(hosts[0], "systemctl is-active keel-edge-metrics.timer").stdout.strip() == "active"


def test_testinfra_checks(converged, hosts):
    result = run_testinfra([hosts[0]], ROOT / "roles/edge/tests")
    assert result.returncode == 0, result.stdout + result.stderr


def _served_serial(host, ca_pem):
    return _https(host, INTERNAL, "/health", cafile=str(ca_pem))[2].serial_number


def _argv_sampler(host, stop, seen):
    script = ("while [ ! -e /tmp/keel-stop ]; do for f in /proc/[0-9]*/cmdline; do "
              "tr '\\0' ' ' < $f 2>/dev/null; echo; done; done")
    import subprocess

    proc = subprocess.Popen(host.ssh_argv(script), stdout=subprocess.PIPE, text=True)
    stop.wait()
    ssh(host, "touch /tmp/keel-stop")
    seen.append(proc.communicate(timeout=30)[0])
    ssh(host, "rm -f /tmp/keel-stop")


def test_near_expiry_certificate_is_renewed_and_keys_never_leak(converged, harness, hosts,
                                                                 ca_pem, provided):
    edge = hosts[0]
    before = _served_serial(edge, ca_pem)
    # 90-day certificates with a 100-day threshold: the current one is "near expiry".
    inventory = _inventory(harness, hosts, ca_pem, name="renew", edge_renew_days=100)
    stop, seen = threading.Event(), []
    sampler = threading.Thread(target=_argv_sampler, args=(edge, stop, seen))
    sampler.start()
    try:
        run = harness.converge(inventory, EDGE)
    finally:
        stop.set()
        sampler.join()
    assert _changed(run, "Certificate for proxy (internal CA)")
    assert _changed(run, "Reload nginx for new certificates")
    assert not _changed(run, "Certificate for provided")
    assert _served_serial(edge, ca_pem) != before
    key = ssh(edge, "cat /run/keel/secrets/edge/proxy.key").stdout
    body = "".join(key.splitlines()[1:-1])
    assert len(body) > 40
    leaked = [run.output, *seen]
    for secret in (body, body[:40], "".join(provided["key"].splitlines()[1:-1])[:40]):
        assert not any(secret in text for text in leaked)
    assert "PRIVATE KEY" not in run.output


def test_keys_only_in_run_and_never_world_readable(converged, hosts):
    edge = hosts[0]
    found = ssh(edge, "grep -rlIE -- '-----BEGIN [A-Z ]*PRIVATE KEY-----' /etc /var /run /root "
                      "/home /opt /srv /tmp /usr/local 2>/dev/null; true").stdout.split()
    # certbot keeps its ACME keys under /etc/letsencrypt (root 0600); every other TLS key is
    # only in tmpfs.
    outside = [p for p in found if not p.startswith(("/run/keel/secrets/edge/",
                                                     "/etc/letsencrypt/", "/etc/ssh/ssh_host_"))]
    assert outside == [] and found
    modes = ssh(edge, "stat -c '%a %U %n' " + " ".join(found)).stdout.splitlines()
    for line in modes:
        mode, owner, path = line.split()
        assert int(mode[-1]) & 4 == 0, f"{path} is world-readable ({mode})"
    keys = ssh(edge, "stat -c '%a %U' /run/keel/secrets/edge/proxy.key "
                     "/run/keel/secrets/edge/provided.key").stdout.split("\n")
    assert all(k.strip() == "400 root" for k in keys if k.strip())


def test_bad_vhost_fails_nginx_t_and_keeps_serving(converged, harness, hosts, ca_pem):
    edge = hosts[0]
    data = runpy_data()
    data["edge_vhosts"][0]["directives"] = ["no_such_directive on;"]
    bad = _inventory(harness, hosts, ca_pem, name="bad", edge_vhosts=data["edge_vhosts"])
    run = harness.run(bad, EDGE)
    assert run.returncode != 0
    assert "no_such_directive" in run.output
    assert "no_such_directive" not in ssh(edge, "cat /etc/nginx/keel/live/*.conf").stdout
    assert ssh(edge, "systemctl is-active nginx").stdout.strip() == "active"
    response, _, _ = _https(edge, INTERNAL, "/health", cafile=str(ca_pem))
    assert response.status == 200
    # Fixed data goes live again; the certificate renewed above is not renewed again.
    normal, _ = converged
    run = harness.converge(normal, EDGE)
    assert _changed(run, "Make the tested nginx config live")
    assert not _changed(run, "Certificate for proxy (internal CA)")
    assert "no_such_directive" not in ssh(edge, "cat /etc/nginx/keel/staged/*.conf").stdout


def _changed(run, operation):
    return any(name.endswith(f"| {operation}") for name in run.changed().get("x-app1", []))


def runpy_data():
    import runpy

    return {k: v for k, v in runpy.run_path(str(DATA)).items() if k.startswith("edge_")}
