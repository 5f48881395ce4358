"""moto's S3 server on a sandbox host, with the bucket the app uses (tests/test_storage.py,
tests/test_site.py)."""

from concurrent.futures import Future, ThreadPoolExecutor

from keel.lab.testing import ssh

BUCKET = "keel-agent"
MOTO = f"""set -e
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
python3 -m venv /opt/moto
# pip needs the CA bundle the sandbox image carries (a trait of this test machine).
PIP_CERT=/etc/ssl/certs/ca-certificates.crt /opt/moto/bin/pip install -q 'moto[server]'
systemd-run --unit=keel-moto /opt/moto/bin/moto_server -H 0.0.0.0 -p 5000
/opt/moto/bin/python - <<'PY'
import time, boto3
s3 = boto3.client("s3", endpoint_url="http://127.0.0.1:5000", region_name="us-east-1",
                  aws_access_key_id="x", aws_secret_access_key="x")
for _ in range(100):
    try:
        s3.create_bucket(Bucket="{BUCKET}")
        break
    except Exception:
        time.sleep(0.2)
PY
"""


def start(host) -> Future:
    """Set moto up on a fresh sandbox host in the background (it takes minutes: a venv from
    PyPI); the future's result is the setup's CompletedProcess."""
    script = f"apt-get update -qq && cat > /root/moto.sh <<'EOF'\n{MOTO}EOF\nsh /root/moto.sh"
    return ThreadPoolExecutor(1).submit(ssh, host, script, timeout=900)
