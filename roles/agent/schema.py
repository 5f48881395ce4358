"""agent's settings: each key's type, default and description."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from keel.core.schema import Memory, Model, Port, RoleSettings, Source


class Limits(Model):
    cpus: Annotated[float, Field(gt=0)] = 1.0
    memory: Memory = "1G"
    pids: Annotated[int, Field(ge=16)] = 256


class Settings(RoleSettings):
    agent_server_name: (
        Annotated[str, Field(pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")]
        | None
    ) = Field(
        None,
        description=(
            "The name the edge serves the agent under (its certificate's name); each "
            "environment sets it."
        ),
    )
    agent_tls: Literal["internal", "acme"] = Field(
        "internal",
        description="The vhost's certificate: the environment's CA (internal) or ACME.",
    )
    agent_image: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._/:@-]*$")] | None = Field(
        None,
        description=(
            "A registry image with the same contract; None: build roles/agent/image on the "
            "host, FROM agent_base_image."
        ),
    )
    agent_base_image: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._/:@-]*$")] = Field(
        "localhost/keel/debian-host:12",
        description="The image the build starts FROM (one of container_runtime_host_images).",
    )
    agent_port: Port = Field(8000, description="The API's port, published on 127.0.0.1 only.")
    agent_metrics_port: Port = Field(
        9464, description="Port of /metrics alone, published on every address."
    )
    agent_metrics_sources: list[Source] = Field(
        ["group:mon"], description="Who may reach the metrics port: CIDRs or group:<name>."
    )
    agent_run_timeout: Annotated[int, Field(ge=5, le=3600)] = Field(
        60, description="Seconds a run may take before it is recorded as failed."
    )
    agent_limits: Limits = Field(
        {}, description="Container limits: {cpus: 1.0, memory: '1G', pids: 256}."
    )
