"""moto's S3 server on a sandbox host, with the bucket the app uses (tests/test_storage.py,
tests/test_site.py), or over TLS (tests/test_postgres.py: pgBackRest speaks TLS only)."""

BUCKET = "keel-agent"


def moto(port: int = 5000, tls_dir: str | None = None) -> str:
    """A shell script that serves S3 on every address of the host at `port`, and makes BUCKET;
    over TLS with tls_dir's cert.pem and key.pem (and ca.pem, which signed them) if given, for
    the name localhost, on IPv6 too (localhost is ::1 first)."""
    scheme, name, address, tls, verify = "http", "127.0.0.1", "0.0.0.0", "", "None"
    if tls_dir:
        scheme, name, address = "https", "localhost", "::"
        tls, verify = f" -s -c {tls_dir}/cert.pem -k {tls_dir}/key.pem", repr(f"{tls_dir}/ca.pem")
    return f"""set -e
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
python3 -m venv /opt/moto
# pip needs the CA bundle the sandbox image carries (a trait of this test machine).
PIP_CERT=/etc/ssl/certs/ca-certificates.crt /opt/moto/bin/pip install -q 'moto[server]'
systemd-run --unit=keel-moto /opt/moto/bin/moto_server -H {address} -p {port}{tls}
/opt/moto/bin/python - <<'PY'
import time, boto3
s3 = boto3.client("s3", endpoint_url="{scheme}://{name}:{port}", region_name="us-east-1",
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
