"""keel's reference agent service (seed 000's contract): takes prompts, runs the Claude Code CLI
headless, records each run in PostgreSQL, uses Redis, keeps transcripts in the storage backend.

Environment (from keel's env-files): DATABASE_URL and REDIS_URL (with credentials, from
/run/keel/secrets), STORAGE_BACKEND (local | s3 | postgresql) with DATA_DIR or S3_*, and
CLAUDE_HEADLESS, DEFAULT_MODEL, DEFAULT_ALLOWED_TOOLS, ENABLE_SUBAGENTS from claude_cli.

    POST /v1/runs              {prompt, model?, allowed_tools?, agents?} -> the run
    GET  /v1/runs/<id>          the run, from PostgreSQL
    GET  /v1/runs/<id>/transcript   the transcript, from the storage backend
    GET  /health               every dependency; 503 naming the ones that fail
    GET  /metrics              Prometheus text (also on AGENT_METRICS_PORT alone)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import psycopg2
import redis


def _load_env_files() -> None:
    """KEY=value files named by AGENT_ENV_FILES (colon-separated): credentials that keel keeps
    in tmpfs and out of the container's configuration."""
    for path in filter(None, os.environ.get("AGENT_ENV_FILES", "").split(":")):
        with open(path, encoding="utf-8") as f:
            for line in f:
                if "=" in line and not line.lstrip().startswith("#"):
                    key, value = line.rstrip("\n").split("=", 1)
                    os.environ.setdefault(key.strip(), value)


_load_env_files()
PORT = int(os.environ.get("AGENT_PORT", "8000"))
METRICS_PORT = int(os.environ.get("AGENT_METRICS_PORT", "9464"))
RUN_TIMEOUT = float(os.environ.get("AGENT_RUN_TIMEOUT", "60"))
MAX_BODY = 1 << 20
RUN_ID = re.compile(r"^/v1/runs/([0-9a-f-]{36})(/transcript)?$")
SCHEMA = """
CREATE TABLE IF NOT EXISTS agent_runs (
    id uuid PRIMARY KEY, status text NOT NULL, prompt text NOT NULL, model text,
    created_at timestamptz NOT NULL DEFAULT now(), finished_at timestamptz,
    duration_ms integer, result jsonb, error text);
CREATE TABLE IF NOT EXISTS agent_objects (key text PRIMARY KEY, data bytea NOT NULL);
"""


# --- dependencies ---------------------------------------------------------------------------

def database():
    """A connection to DATABASE_URL (SQLAlchemy's driver suffix, +asyncpg, is dropped)."""
    url = os.environ["DATABASE_URL"]
    scheme, rest = url.split("://", 1)
    if not scheme.startswith("postgresql"):
        raise RuntimeError(f"DATABASE_URL is {scheme}, not PostgreSQL")
    return psycopg2.connect("postgresql://" + rest, connect_timeout=5)


def cache():
    return redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=5,
                                socket_connect_timeout=5)


class Storage:
    """Transcripts and other objects in the configured backend."""

    def __init__(self):
        self.backend = os.environ.get("STORAGE_BACKEND", "local")

    def _s3(self):
        import boto3

        return boto3.client("s3", endpoint_url=os.environ.get("S3_ENDPOINT_URL") or None,
                            region_name=os.environ.get("S3_REGION") or None)

    def _key(self, key: str) -> str:
        prefix = os.environ.get("S3_PREFIX", "").strip("/")
        return f"{prefix}/{key}" if prefix else key

    def _path(self, key: str) -> str:
        return os.path.join(os.environ["DATA_DIR"], key)

    def put(self, key: str, data: bytes) -> None:
        if self.backend == "s3":
            self._s3().put_object(Bucket=os.environ["S3_BUCKET"], Key=self._key(key), Body=data)
        elif self.backend == "postgresql":
            with database() as conn, conn.cursor() as cur:
                cur.execute("INSERT INTO agent_objects (key, data) VALUES (%s, %s) ON CONFLICT "
                            "(key) DO UPDATE SET data = EXCLUDED.data", (key, data))
        else:
            path = self._path(key)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path + ".tmp", "wb") as f:
                f.write(data)
            os.replace(path + ".tmp", path)

    def get(self, key: str) -> bytes | None:
        if self.backend == "s3":
            s3 = self._s3()
            try:
                return s3.get_object(Bucket=os.environ["S3_BUCKET"],
                                     Key=self._key(key))["Body"].read()
            except s3.exceptions.NoSuchKey:
                return None
        if self.backend == "postgresql":
            with database() as conn, conn.cursor() as cur:
                cur.execute("SELECT data FROM agent_objects WHERE key = %s", (key,))
                row = cur.fetchone()
                return bytes(row[0]) if row else None
        try:
            with open(self._path(key), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def delete(self, key: str) -> None:
        if self.backend == "s3":
            self._s3().delete_object(Bucket=os.environ["S3_BUCKET"], Key=self._key(key))
        elif self.backend == "postgresql":
            with database() as conn, conn.cursor() as cur:
                cur.execute("DELETE FROM agent_objects WHERE key = %s", (key,))
        else:
            os.remove(self._path(key))


STORAGE = Storage()


def _check_database() -> None:
    with database() as conn, conn.cursor() as cur:
        cur.execute("SELECT 1")
        cur.fetchone()


def _check_redis() -> None:
    if not cache().ping():
        raise RuntimeError("no PONG")


def _check_storage() -> None:
    key = f".health-{uuid.uuid4()}"  # at the top: an unwritable DATA_DIR fails it
    STORAGE.put(key, b"keel")
    if STORAGE.get(key) != b"keel":
        raise RuntimeError("read back something else")
    STORAGE.delete(key)


def _check_cli() -> str:
    out = subprocess.run([os.environ["CLAUDE_HEADLESS"], "--version"], capture_output=True,
                         text=True, timeout=30)
    if out.returncode != 0:
        raise RuntimeError((out.stderr or out.stdout).strip()[:200] or f"exit {out.returncode}")
    return out.stdout.strip()


CHECKS = {"database": _check_database, "redis": _check_redis, "storage": _check_storage,
          "cli": _check_cli}


def health() -> dict:
    results = {}
    for name, check in CHECKS.items():
        try:
            detail = check()
            results[name] = {"ok": True, **({"version": detail} if detail else {})}
        except Exception as exc:  # each failure is reported by name, not raised
            results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
        METRICS.dependency(name, results[name]["ok"])
    return {"status": "ok" if all(r["ok"] for r in results.values()) else "failing",
            "host": os.environ.get("AGENT_HOST", ""), "checks": results}


# --- runs ------------------------------------------------------------------------------------

def _argv(body: dict) -> list[str]:
    argv = [os.environ["CLAUDE_HEADLESS"]]
    model = body.get("model") or os.environ.get("DEFAULT_MODEL")
    tools = body.get("allowed_tools") or os.environ.get("DEFAULT_ALLOWED_TOOLS")
    if model:
        argv += ["--model", model]
    if tools:
        argv += ["--allowedTools", ",".join(tools) if isinstance(tools, list) else tools]
    if body.get("agents") and os.environ.get("ENABLE_SUBAGENTS", "true") == "true":
        argv += ["--agents", json.dumps(body["agents"])]
    return [*argv, "--", body["prompt"]]


def run(body: dict) -> dict:
    run_id = str(uuid.uuid4())
    model = body.get("model") or os.environ.get("DEFAULT_MODEL")
    with database() as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO agent_runs (id, status, prompt, model) VALUES "
                    "(%s, 'running', %s, %s)", (run_id, body["prompt"], model))
    queue = cache()
    queue.set(f"agent:run:{run_id}", "running", ex=3600)
    queue.incr("agent:runs:started")
    started = time.monotonic()
    result, error, stdout, stderr = None, None, "", ""
    try:
        out = subprocess.run(_argv(body), capture_output=True, text=True, timeout=RUN_TIMEOUT,
                             stdin=subprocess.DEVNULL)
        stdout, stderr = out.stdout, out.stderr
        try:
            result = json.loads(stdout) if stdout.strip() else None
        except ValueError:
            result = None
        if out.returncode != 0 or result is None or (isinstance(result, dict)
                                                     and result.get("is_error")):
            detail = (result or {}).get("result") if isinstance(result, dict) else None
            error = (detail or stderr.strip() or stdout.strip()
                     or f"exit {out.returncode}")[:2000]
    except subprocess.TimeoutExpired:
        error = f"the CLI did not finish within {RUN_TIMEOUT:g} s"
    duration = int((time.monotonic() - started) * 1000)
    status = "failed" if error else "succeeded"
    transcript = {"id": run_id, "request": body, "argv": _argv(body)[:-1], "stdout": stdout,
                  "stderr": stderr, "duration_ms": duration, "status": status}
    STORAGE.put(f"transcripts/{run_id}.json", json.dumps(transcript).encode())
    with database() as conn, conn.cursor() as cur:
        cur.execute("UPDATE agent_runs SET status = %s, finished_at = now(), duration_ms = %s, "
                    "result = %s, error = %s WHERE id = %s",
                    (status, duration, json.dumps(result) if result is not None else None,
                     error, run_id))
    queue.set(f"agent:run:{run_id}", status, ex=3600)
    METRICS.run(status)
    return read(run_id)


def read(run_id: str) -> dict | None:
    with database() as conn, conn.cursor() as cur:
        cur.execute("SELECT id, status, prompt, model, created_at, finished_at, duration_ms, "
                    "result, error FROM agent_runs WHERE id = %s", (run_id,))
        row = cur.fetchone()
    if row is None:
        return None
    keys = ("id", "status", "prompt", "model", "created_at", "finished_at", "duration_ms",
            "result", "error")
    out = dict(zip(keys, row, strict=True))
    for key in ("id", "created_at", "finished_at"):
        out[key] = str(out[key]) if out[key] is not None else None
    return out


# --- metrics ---------------------------------------------------------------------------------

class Metrics:
    BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

    def __init__(self):
        self.lock = threading.Lock()
        self.runs: dict[str, int] = {"succeeded": 0, "failed": 0}
        self.up: dict[str, int] = {}
        self.latency: dict[str, list] = {}

    def run(self, status: str) -> None:
        with self.lock:
            self.runs[status] = self.runs.get(status, 0) + 1

    def dependency(self, name: str, ok: bool) -> None:
        with self.lock:
            self.up[name] = int(ok)

    def request(self, route: str, seconds: float) -> None:
        with self.lock:
            counts = self.latency.setdefault(route, [[0] * len(self.BUCKETS), 0, 0.0])
            for i, bound in enumerate(self.BUCKETS):
                if seconds <= bound:
                    counts[0][i] += 1
            counts[1] += 1
            counts[2] += seconds

    def text(self) -> str:
        with self.lock:
            lines = ["# HELP agent_runs_total Runs by final status.",
                     "# TYPE agent_runs_total counter"]
            lines += [f'agent_runs_total{{status="{s}"}} {n}' for s, n in sorted(self.runs.items())]
            lines += ["# HELP agent_dependency_up Whether the last health check of a "
                      "dependency passed.", "# TYPE agent_dependency_up gauge"]
            lines += [f'agent_dependency_up{{dependency="{d}"}} {v}'
                      for d, v in sorted(self.up.items())]
            lines += ["# HELP agent_request_duration_seconds Request latency by route.",
                      "# TYPE agent_request_duration_seconds histogram"]
            for route, (buckets, count, total) in sorted(self.latency.items()):
                for bound, n in zip(self.BUCKETS, buckets, strict=True):
                    lines.append(f'agent_request_duration_seconds_bucket{{route="{route}",'
                                 f'le="{bound:g}"}} {n}')
                lines.append(f'agent_request_duration_seconds_bucket{{route="{route}",'
                             f'le="+Inf"}} {count}')
                lines.append(f'agent_request_duration_seconds_sum{{route="{route}"}} {total:.6f}')
                lines.append(f'agent_request_duration_seconds_count{{route="{route}"}} {count}')
            return "\n".join(lines) + "\n"


METRICS = Metrics()


# --- HTTP ------------------------------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    server_version = "keel-agent/1"
    metrics_only = False

    def log_message(self, fmt, *args):  # one line per request, to the journal
        sys.stderr.write(f"{self.address_string()} {fmt % args}\n")

    def _send(self, code: int, body, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else (json.dumps(body) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _timed(self, route: str, handler) -> None:
        started = time.monotonic()
        try:
            handler()
        except Exception as exc:  # a dependency failed mid-request: a clear 503
            self._send(503, {"error": f"{type(exc).__name__}: {exc}"[:300]})
        finally:
            METRICS.request(route, time.monotonic() - started)

    def do_GET(self):
        path = urlsplit(self.path).path
        if path == "/metrics":
            return self._send(200, METRICS.text().encode(), "text/plain; version=0.0.4")
        if self.metrics_only:
            return self._send(404, {"error": "only /metrics here"})
        if path == "/health":
            def reply():
                report = health()
                self._send(200 if report["status"] == "ok" else 503, report)
            return self._timed("health", reply)
        match = RUN_ID.match(path)
        if match and match.group(2):
            def transcript():
                data = STORAGE.get(f"transcripts/{match.group(1)}.json")
                if data is None:
                    return self._send(404, {"error": "no transcript"})
                self._send(200, data)
            return self._timed("transcript", transcript)
        if match:
            def reply_run():
                found = read(match.group(1))
                self._send(200, found) if found else self._send(404, {"error": "no such run"})
            return self._timed("run", reply_run)
        self._send(404, {"error": "not found"})

    def do_POST(self):
        if self.metrics_only or urlsplit(self.path).path != "/v1/runs":
            return self._send(404, {"error": "not found"})
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_BODY:
            return self._send(400, {"error": f"a JSON body of 1 to {MAX_BODY} bytes is required"})
        try:
            body = json.loads(self.rfile.read(length))
        except ValueError:
            return self._send(400, {"error": "the body is not JSON"})
        if not isinstance(body, dict) or not isinstance(body.get("prompt"), str) \
                or not body["prompt"].strip():
            return self._send(400, {"error": "'prompt' (a non-empty string) is required"})
        self._timed("runs", lambda: self._send(201, run(body)))


class MetricsHandler(Handler):
    metrics_only = True


def _refresh() -> None:
    """Keep agent_dependency_up current between /health requests."""
    while True:
        health()
        time.sleep(float(os.environ.get("AGENT_HEALTH_INTERVAL", "30")))


def main() -> int:
    for _ in range(30):  # the database may still be starting
        try:
            with database() as conn, conn.cursor() as cur:
                cur.execute(SCHEMA)
            break
        except Exception as exc:
            print(f"agent: database not ready ({exc}); retrying", file=sys.stderr)
            time.sleep(2)
    threading.Thread(target=_refresh, daemon=True).start()
    metrics = ThreadingHTTPServer(("0.0.0.0", METRICS_PORT), MetricsHandler)
    threading.Thread(target=metrics.serve_forever, daemon=True).start()
    api = ThreadingHTTPServer(("0.0.0.0", PORT), Handler)
    print(f"agent: listening on {PORT} (metrics on {METRICS_PORT})", file=sys.stderr)
    api.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
