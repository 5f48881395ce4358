"""`keel check ENV`: the platform proves itself, from the controller over the real path.

For each agent host: HTTPS through the edge (its certificate checked against the
environment's CA, or the system's for ACME), then the agent's /health with every dependency.
With `run`, also a run submitted and read back from PostgreSQL and from the storage backend.
Each broken link is one line naming the host and the link.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from keel.core.data import HostData
from keel.core.inventory import Environment
from keel.errors import KeelError

PROMPT = "keel check: reply with the single word OK."


@dataclass
class Result:
    host: str
    ok: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


class _Edge(http.client.HTTPSConnection):
    """HTTPS to one host's address, with SNI and verification for the vhost's name."""

    def __init__(self, address: str, server_name: str, context: ssl.SSLContext, timeout: float):
        super().__init__(server_name, 443, context=context, timeout=timeout)
        self._address = address

    def connect(self):
        sock = socket.create_connection((self._address, 443), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def _context(env: str, tls: str) -> ssl.SSLContext:
    if tls == "acme":
        return ssl.create_default_context()
    from keel.core import ca

    return ssl.create_default_context(cadata=ca.cert(env))


def _request(conn: _Edge, method: str, path: str, body: dict | None = None):
    payload = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if payload else {}
    conn.request(method, path, body=payload, headers=headers)
    response = conn.getresponse()
    data = response.read()
    try:
        parsed = json.loads(data) if data else None
    except ValueError:
        parsed = None
    return response.status, parsed, data


def check_host(env: Environment, host: HostData, run: bool) -> Result:
    result = Result(host.name)
    settings = host.settings("agent")
    address = host.values.get("ssh_hostname") or host.values["keel_address"]
    port = settings.agent_port
    timeout = settings.agent_run_timeout + 30 if run else 40
    try:
        conn = _Edge(address, settings.agent_server_name, _context(env.env, settings.agent_tls),
                     timeout)
        status, report, raw = _request(conn, "GET", "/health")
    except ssl.SSLError as exc:
        result.problems.append(f"{host.name}: edge TLS at {address}:443: {exc}")
        return result
    except OSError as exc:
        result.problems.append(f"{host.name}: edge at {address}:443: {exc.strerror or exc}")
        return result
    if status in (502, 504) or not isinstance(report, dict) or "checks" not in report:
        result.problems.append(f"edge → {host.name}:{port} refused (the edge answered HTTP "
                               f"{status})" if status in (502, 504) else
                               f"{host.name}: edge → agent: HTTP {status}: {raw[:120]!r}")
        return result
    for name, check in report["checks"].items():
        if check.get("ok"):
            result.ok.append(f"{name}" + (f" {check['version']}" if check.get("version") else ""))
        else:
            error = " ".join(str(check.get("error")).split())  # one line per broken link
            result.problems.append(f"{host.name}: {name}: {error}")
    if run and not result.problems:
        _run(conn, host, result)
    return result


def _run(conn: _Edge, host: HostData, result: Result) -> None:
    status, made, raw = _request(conn, "POST", "/v1/runs", {"prompt": PROMPT})
    if status != 201 or not isinstance(made, dict) or "id" not in made:
        result.problems.append(f"{host.name}: run: HTTP {status}: {raw[:200]!r}")
        return
    status, stored, _ = _request(conn, "GET", f"/v1/runs/{made['id']}")
    if status != 200 or stored.get("status") != made["status"]:
        result.problems.append(f"{host.name}: run {made['id']}: not read back from the "
                               f"database (HTTP {status})")
        return
    status, transcript, _ = _request(conn, "GET", f"/v1/runs/{made['id']}/transcript")
    if status != 200 or not isinstance(transcript, dict) or transcript.get("id") != made["id"]:
        result.problems.append(f"{host.name}: run {made['id']}: no transcript in the storage "
                               f"backend (HTTP {status})")
        return
    outcome = made["status"] + (f": {str(made.get('error'))[:100]}" if made.get("error") else "")
    result.ok.append(f"run {made['id'][:8]} recorded ({outcome}) and read back")


def check(env: Environment, run: bool = False) -> list[Result]:
    if env.problems:
        raise KeelError(f"{env.path.name}: the data has problems; see `keel data {env.env}`")
    hosts = [h for h in env.hosts if "agent" in h.roles]
    if not hosts:
        raise KeelError(f"{env.env}: no host is in group agent")
    with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
        return list(pool.map(lambda h: check_host(env, h, run), hosts))
