"""moto's S3 server on a sandbox host, with the bucket the app uses (tests/test_storage.py,
tests/test_site.py, tests/test_restic.py), or behind TLS (tests/test_postgres.py: pgBackRest
speaks TLS only)."""

from concurrent.futures import Future, ThreadPoolExecutor

from keel.lab.testing import ssh

BUCKET = "keel-agent"
# nginx terminates TLS for moto: moto's own TLS (werkzeug) ends connections without a TLS
# close_notify, which pgBackRest (OpenSSL 3) fails on ("unexpected eof while reading").
NGINX = """server {{
    listen {port} ssl;
    listen [::]:{port} ssl;
    ssl_certificate {tls_dir}/cert.pem;
    ssl_certificate_key {tls_dir}/key.pem;
    client_max_body_size 0;
    location / {{
        proxy_pass http://127.0.0.1:5000;
        proxy_http_version 1.1;
        proxy_set_header Host $http_host;
        proxy_request_buffering off;
    }}
}}
"""


def moto(port: int = 5000, tls_dir: str | None = None) -> str:
    """A shell script that serves S3 on every address of the host at `port` and makes BUCKET;
    with tls_dir, moto listens on 127.0.0.1:5000 and nginx serves `port` over TLS with
    tls_dir's cert.pem and key.pem (for the name localhost) and ca.pem (which signed them)."""
    url, address, verify, front = f"http://127.0.0.1:{port}", "0.0.0.0", "None", ""
    if tls_dir:
        url, address, verify = f"https://localhost:{port}", "127.0.0.1", repr(f"{tls_dir}/ca.pem")
        front = ("apt-get install -y -qq --no-install-recommends nginx >/dev/null\n"
                 "cat > /etc/nginx/conf.d/keel-s3.conf <<'NGINX'\n"
                 f"{NGINX.format(port=port, tls_dir=tls_dir)}NGINX\n"
                 "systemctl reload-or-restart nginx\n")
    return f"""set -e
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
python3 -m venv /opt/moto
# pip needs the CA bundle the sandbox image carries (a trait of this test machine).
PIP_CERT=/etc/ssl/certs/ca-certificates.crt /opt/moto/bin/pip install -q 'moto[server]'
systemd-run --unit=keel-moto /opt/moto/bin/moto_server -H {address} -p {5000 if tls_dir else port}
{front}/opt/moto/bin/python - <<'PY'
import time, boto3
s3 = boto3.client("s3", endpoint_url="{url}", region_name="us-east-1",
                  aws_access_key_id="x", aws_secret_access_key="x", verify={verify})
for _ in range(100):
    try:
        s3.create_bucket(Bucket="{BUCKET}")
        break
    except Exception:
        time.sleep(0.2)
else:
    raise SystemExit("moto did not answer")
PY
"""


MOTO = moto()


def start(host) -> Future:
    """Set moto up on a fresh sandbox host in the background (it takes minutes: a venv from
    PyPI); the future's result is the setup's CompletedProcess."""
    script = f"apt-get update -qq && cat > /root/moto.sh <<'EOF'\n{MOTO}EOF\nsh /root/moto.sh"
    return ThreadPoolExecutor(1).submit(ssh, host, script, timeout=900)
