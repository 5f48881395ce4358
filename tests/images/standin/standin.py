"""Stand-in service: answers /health, /info and proxies /upstream/<name>; no dependencies.

Environment (all optional):
  STANDIN_PORT       port to listen on (8080)
  STANDIN_REQUIRES   host:port,... that must accept TCP connections for /health to pass
  STANDIN_WRITE_DIRS dirs that must be writable for /health to pass (volumes)
  STANDIN_SECRETS    files that must be readable for /health to pass (mounted secrets)
  STANDIN_UPSTREAMS  name=http://host:port,... reachable through /upstream/<name>
  STANDIN_BROKEN     "1": /health always fails (a broken release)
  STANDIN_ERRORS     "1": /info answers 500 while /health passes (a release that fails users)
`standin.py health` checks the running service (the container's health command).
"""

import hashlib
import json
import os
import signal
import socket
import sys
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(os.environ.get("STANDIN_PORT", "8080"))


def _list(name):
    return [item for item in os.environ.get(name, "").split(",") if item]


def problems():
    found = []
    if os.environ.get("STANDIN_BROKEN") == "1":
        found.append("broken release")
    for target in _list("STANDIN_REQUIRES"):
        host, port = target.rsplit(":", 1)
        try:
            socket.create_connection((host, int(port)), timeout=2).close()
        except OSError as exc:
            found.append(f"{target}: {exc}")
    for path in _list("STANDIN_WRITE_DIRS"):
        try:
            with open(os.path.join(path, ".standin"), "w") as f:
                f.write("ok\n")
        except OSError as exc:
            found.append(f"{path}: {exc}")
    for path in _list("STANDIN_SECRETS"):
        if not os.access(path, os.R_OK):
            found.append(f"{path}: not readable")
    return found


def info():
    # Secrets are reported only as digests, so tests can compare without printing them.
    digests = {}
    for name in _list("STANDIN_DIGEST_ENV"):
        value = os.environ.get(name)
        digests[name] = hashlib.sha256(value.encode()).hexdigest() if value else None
    for path in _list("STANDIN_SECRETS"):
        try:
            digests[path] = hashlib.sha256(open(path, "rb").read()).hexdigest()
        except OSError:
            digests[path] = None
    return {"name": socket.gethostname(), "version": os.environ.get("STANDIN_VERSION"),
            "uid": os.getuid(), "digests": digests,
            "env": {k: v for k, v in os.environ.items() if k.startswith("APP_")}}


class Handler(BaseHTTPRequestHandler):
    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802
        if self.path in ("/health", "/_health"):
            found = problems()
            self._send(500 if found else 200, {"ok": not found, "problems": found})
        elif self.path == "/info" and os.environ.get("STANDIN_ERRORS") == "1":
            self._send(500, {"error": "a release that fails its users"})
        elif self.path == "/info":
            self._send(200, info())
        elif self.path.startswith("/upstream/"):
            upstreams = dict(item.split("=", 1) for item in _list("STANDIN_UPSTREAMS"))
            url = upstreams.get(self.path.split("/")[2])
            if not url:
                self._send(404, {"error": "unknown upstream"})
                return
            try:
                with urllib.request.urlopen(url + "/info", timeout=3) as resp:
                    self._send(200, json.load(resp))
            except OSError as exc:
                self._send(502, {"error": str(exc)})
        else:
            self._send(404, {"error": "not found"})

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    if sys.argv[1:] == ["health"]:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{PORT}/health", timeout=5)
        except OSError as exc:
            print(exc)
            sys.exit(1)
        sys.exit(0)
    # PID 1 gets no default SIGTERM handling: stop promptly, as a real service does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    ThreadingHTTPServer(("", PORT), Handler).serve_forever()
