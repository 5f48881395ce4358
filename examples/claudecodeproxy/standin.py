#!/usr/bin/python3
"""Stand-in for the ClaudeCodeProxy service: the HTTP surface the edge and its checks need.

GET /health answers 200 once the admin credentials and the HMAC server secret are readable
(503 otherwise); /events streams server-sent events; /status/<code> answers with that code.
"""
import json
import os
import socket
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ENV_FILE = os.environ.get("PROXY_ENV_FILE", "/run/keel/secrets/claudecodeproxy/env")


def secrets_ok() -> bool:
    try:
        with open(ENV_FILE) as f:
            keys = {line.split("=", 1)[0] for line in f if "=" in line}
    except OSError:
        return False
    return {"ADMIN_USERNAME", "ADMIN_PASSWORD", "KEY_HASHER_SECRET"} <= keys


class Handler(BaseHTTPRequestHandler):
    def _send(self, code, body, ctype="application/json"):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/health":
            ok = secrets_ok()
            self._send(200 if ok else 503, json.dumps({"status": "ok" if ok else "no secrets"}))
        elif self.path == "/events":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            for i in range(3):
                self.wfile.write(f"data: tick {i}\n\n".encode())
                self.wfile.flush()
                time.sleep(0.5)
        elif self.path.startswith("/status/"):
            self._send(int(self.path.rsplit("/", 1)[1]), "{}")
        else:
            self._send(200, json.dumps({"service": "claudecodeproxy",
                                        "host": socket.gethostname(),
                                        "forwarded_proto": self.headers.get("X-Forwarded-Proto")}))

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1]) if len(sys.argv) > 1 else 8000),
                    Handler).serve_forever()
