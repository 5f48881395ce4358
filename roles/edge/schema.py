"""edge's settings: each key's type, default and description."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from keel.core.schema import Address, Model, MultiLine, Name, Port, RoleSettings, SecretName, Source

_LABEL = r"[a-z0-9]([a-z0-9-]{0,62})"
DnsName = Annotated[str, Field(pattern=rf"^(\*\.)?{_LABEL}(\.{_LABEL})*$")]
# nginx sizes (10m, 512k) and times (30s, 1h).
Size = Annotated[str, Field(pattern=r"^[0-9]+[kKmMgG]?$")]
Duration = Annotated[str, Field(pattern=r"^[0-9]+(ms|s|m|h|d)?$")]


def _directive(value: str) -> str:
    if not value.rstrip().endswith((";", "}")) or "\n" in value:
        raise ValueError("expected one nginx directive ending in ';'")
    return value


class Smoke(Model):
    # A request keel rollout sends to each released host (from the edge, to the host's
    # address and port) before the edge sends it traffic again.
    method: Literal["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"] = "GET"
    path: Annotated[str, Field(pattern=r"^/[A-Za-z0-9._~%/?=&+,:@-]*$")]
    status: Annotated[int, Field(ge=100, le=599)] = 200


class Canary(Model):
    # keel rollout --canary: how long the canary host holds its share of traffic ...
    hold: Annotated[int, Field(ge=1, le=86400)] = 300
    # ... and the share of its responses through this upstream that may be 5xx (0 to 1)
    # before it is rolled back. Its health is checked throughout too.
    max_5xx_rate: Annotated[float, Field(ge=0, le=1)] = 0.01


class Upstream(Model):
    # Hosts of this inventory group run the service ...
    group: Annotated[str, Field(min_length=1)]
    # ... and publish it on this port.
    port: Port
    # "address": each host's keel_address; "loopback": only this host, on 127.0.0.1
    # (a service published on loopback, edge on the same host).
    via: Literal["address", "loopback"] = "address"
    # Health-based balancing: a server is skipped for fail_timeout after max_fails errors.
    max_fails: Annotated[int, Field(ge=0)] = 3
    fail_timeout: Duration = "10s"
    # Idle keepalive connections to the upstream per worker.
    keepalive: Annotated[int, Field(ge=0)] = 16
    # keel rollout: seconds a drained server's in-flight requests may take to finish ...
    drain_timeout: Annotated[int, Field(ge=0, le=3600)] = 30
    # ... and the smoke request a released host must answer before it is back in service.
    smoke: Smoke | None = None
    canary: Canary = Canary()

    def servers(self, edge: str, members: list[tuple[str, str | None]]) -> list[tuple[str, str]]:
        """(host, address) of each server on edge host `edge`, by address; members are the
        group's hosts with their keel_address."""
        if self.via == "loopback":
            return [(edge, "127.0.0.1")]
        return sorted(((name, address) for name, address in members if address),
                      key=lambda server: server[1])


class RateLimit(Model):
    # Requests per client address, e.g. "10r/s" or "600r/m".
    rate: Annotated[str, Field(pattern=r"^[0-9]+r/[sm]$")]
    burst: Annotated[int, Field(ge=0)] = 20


class Vhost(Model):
    # Identifier (file names, metrics label).
    name: Name
    server_name: DnsName
    aliases: list[DnsName] = []
    # IP addresses in the certificate (internal CA only).
    addresses: list[Address] = []
    # Key of edge_upstreams.
    upstream: str
    # Certificate source: internal (the environment's CA), provided (secrets) or acme.
    tls: Literal["internal", "provided", "acme"] = "internal"
    # provided: secret names of the certificate chain (PEM) and its key.
    cert_secret: SecretName | None = None
    key_secret: SecretName | None = None
    # OCSP stapling; None: on for acme and provided, off for internal (no responder).
    ocsp_stapling: bool | None = None
    client_max_body_size: Size = "10m"
    connect_timeout: Duration = "5s"
    # Long read/send timeouts keep SSE and streamed responses open.
    read_timeout: Duration = "3600s"
    send_timeout: Duration = "3600s"
    rate_limit: RateLimit | None = None
    # Extra raw nginx directives for the server block (checked by nginx -t, not here).
    directives: list[Annotated[str, AfterValidator(_directive)]] = []

    @model_validator(mode="after")
    def _sources(self):
        provided = self.cert_secret is not None and self.key_secret is not None
        if self.tls == "provided" and not provided:
            raise ValueError("tls: provided needs cert_secret and key_secret")
        if self.tls != "provided" and (self.cert_secret or self.key_secret):
            raise ValueError(f"cert_secret/key_secret apply to tls: provided, not {self.tls}")
        if self.tls != "internal" and self.addresses:
            raise ValueError("addresses (IP SANs) apply to tls: internal only")
        return self

    @property
    def names(self) -> list[str]:
        return [self.server_name, *self.aliases]

    @property
    def stapling(self) -> bool:
        return self.tls != "internal" if self.ocsp_stapling is None else self.ocsp_stapling


class Acme(Model):
    # ACME directory URL.
    server: Annotated[str, Field(pattern=r"^https://")]
    email: str | None = None
    # PEM of a CA to trust for the ACME server's own TLS (private servers such as pebble).
    ca_cert: MultiLine | None = None


class Settings(RoleSettings):
    edge_vhosts: list[Vhost] = Field(
        [],
        description=(
            "Virtual hosts: [{name, server_name, aliases?, upstream, tls?: "
            "internal|provided|acme, cert_secret?, key_secret?, addresses?, "
            "client_max_body_size?, connect/read/send_timeout?, rate_limit?: {rate, "
            "burst}, ocsp_stapling?, directives?}] (see README)."
        ),
    )
    edge_upstreams: dict[Name, Upstream] = Field(
        {},
        description=(
            "Upstreams by service name: {name: {group, port, via?: address|loopback, "
            "max_fails?, fail_timeout?, keepalive?, drain_timeout? (seconds, 30), smoke?: "
            "{method?, path, status?}, canary?: {hold? (seconds, 300), max_5xx_rate? (0.01)}}}; "
            "servers are the group's hosts' keel_address. drain_timeout, smoke and canary "
            "apply to releases (keel rollout)."
        ),
    )
    edge_sources: list[Source] = Field(
        [], description='Who may reach ports 80/443: CIDRs or "group:<name>"; empty allows any.'
    )
    edge_tls_protocols: list[Literal["TLSv1.2", "TLSv1.3"]] = Field(
        ["TLSv1.2", "TLSv1.3"], description="TLS protocol versions offered."
    )
    edge_hsts_max_age: Annotated[int, Field(ge=0)] = Field(
        31536000,
        description="Strict-Transport-Security max-age in seconds (0 sends no HSTS header).",
    )
    edge_cert_days: Annotated[int, Field(ge=1, le=825)] = Field(
        90, description="Lifetime in days of certificates issued by the internal CA."
    )
    edge_renew_days: Annotated[int, Field(ge=0)] = Field(
        30,
        description=(
            "Renew internal-CA certificates with fewer days than this left (checked on converge)."
        ),
    )
    edge_acme: Acme = Field(
        {"server": "https://acme-v02.api.letsencrypt.org/directory"},
        description=(
            "ACME account: {server (directory URL), email?, ca_cert? (PEM trusted for the server)}."
        ),
    )
    edge_worker_connections: Annotated[int, Field(ge=64)] = Field(
        1024, description="nginx worker_connections."
    )
    edge_listen_ipv6: bool = Field(False, description="Listen on IPv6 as well as IPv4.")
    edge_textfile_dir: Annotated[str, Field(pattern=r"^/")] = Field(
        "/var/lib/prometheus/node-exporter",
        description="node exporter textfile collector directory for keel_edge_* metrics.",
    )
    edge_metrics_interval: Annotated[str, Field(pattern=r"^[0-9]+(s|min|h)$")] = Field(
        "1min", description="How often the metrics timer runs (systemd time span)."
    )


def cross_check(hosts) -> list:
    """Upstream groups have hosts; internal certificates need the environment's CA."""
    from keel.core import store
    from keel.core.ca import KEY
    from keel.core.data import Problem

    problems = []
    groups = {g for h in hosts for g in h.groups}
    for host in hosts:
        if "edge" not in host.roles:
            continue
        settings = host.settings("edge")
        seen = set()
        for i, vhost in enumerate(settings.edge_vhosts):
            if vhost.upstream not in settings.edge_upstreams:
                problems.append(
                    Problem(
                        host.name,
                        f"edge_vhosts[{i}].upstream",
                        host.sources["edge_vhosts"],
                        f"{vhost.upstream!r} is not in edge_upstreams "
                        f"({', '.join(settings.edge_upstreams) or 'empty'})",
                    )
                )
            if vhost.name in seen:
                problems.append(
                    Problem(
                        host.name,
                        f"edge_vhosts[{i}].name",
                        host.sources["edge_vhosts"],
                        f"vhost name {vhost.name!r} is used twice",
                    )
                )
            seen.add(vhost.name)
        for name, upstream in settings.edge_upstreams.items():
            if upstream.via == "address" and upstream.group not in groups:
                problems.append(
                    Problem(
                        host.name,
                        f"edge_upstreams.{name}.group",
                        host.sources["edge_upstreams"],
                        f"no host is in group {upstream.group!r}",
                    )
                )
        internal = any(v.tls == "internal" for v in settings.edge_vhosts)
        if internal and KEY not in store.names(host.env):
            problems.append(
                Problem(
                    host.name,
                    "edge_vhosts",
                    host.sources["edge_vhosts"],
                    f"tls: internal needs the {host.env} CA; create it with "
                    f"`keel ca init {host.env}`",
                )
            )
    return problems
