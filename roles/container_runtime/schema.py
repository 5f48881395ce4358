"""container_runtime's settings: each key's type, default and description."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from keel.core.schema import Cidr, Memory, Model, RoleSettings

ImageRef = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9._-]+)?$")]


class Registry(Model):
    location: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]*(:[0-9]+)?(/[a-z0-9._/-]+)?$")]
    insecure: bool = False
    username: str | None = None
    # Name of the secret that holds the password or token (secrets/<env>.yaml).
    password_secret: str | None = None
    mirrors: list[str] = []

    @model_validator(mode="after")
    def _login(self):
        if bool(self.username) != bool(self.password_secret):
            raise ValueError("set both username and password_secret, or neither")
        return self


class Settings(RoleSettings):
    container_runtime_engine: Literal["podman", "docker"] = Field(
        "podman",
        description=(
            'Container engine: "podman" (Debian\'s podman 4.3) or "docker" (Debian\'s docker.io).'
        ),
    )
    container_runtime_oci_runtime: Literal["runc", "crun"] = Field(
        "runc",
        description='OCI runtime: "runc" or "crun" (nested hosts, e.g. the sandbox, need crun).',
    )
    container_runtime_cgroup_manager: Literal["systemd", "cgroupfs"] = Field(
        "systemd",
        description=(
            'cgroup manager: "systemd", or "cgroupfs" where there is no usable systemd/dbus.'
        ),
    )
    container_runtime_storage_driver: Literal["overlay", "fuse-overlayfs", "vfs"] = Field(
        "overlay",
        description=(
            'Storage driver: "overlay"; "fuse-overlayfs" where / is itself overlayfs; "vfs" (slow).'
        ),
    )
    container_runtime_storage_root: Annotated[str, Field(pattern=r"^/")] | None = Field(
        None, description="Image and container storage directory; None keeps the engine's default."
    )
    container_runtime_log_max_size: Memory = Field(
        "10M",
        description=(
            "Size cap of one container's log file (k8s-file for podman, json-file for docker)."
        ),
    )
    container_runtime_log_max_files: Annotated[int, Field(ge=1, le=100)] = Field(
        3, description="Rotated log files kept per container (docker; podman truncates at the cap)."
    )
    container_runtime_network_pool: Cidr = Field(
        "10.89.0.0/16",
        description=(
            "Address pool for container networks that set no subnet (keep it off host networks)."
        ),
    )
    container_runtime_default_ulimits: list[
        Annotated[str, Field(pattern=r"^[a-z]+=-?\d+:-?\d+$")]
    ] = Field(
        [],
        description=(
            'Default ulimits of containers, e.g. ["nofile=16384:16384"]; [] keeps the engine\'s.'
        ),
    )
    container_runtime_search_registries: list[str] = Field(
        ["docker.io"], description="Registries tried, in order, for short image names."
    )
    container_runtime_registries: list[Registry] = Field(
        [],
        description=(
            "Registries: [{location, insecure?, username?, password_secret?, mirrors?: "
            "[..]}]; the password comes from the secret named password_secret."
        ),
    )
    container_runtime_host_packages: list[
        Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9+.-]+$")]
    ] = Field(
        [],
        description=(
            "Debian packages installed on the host before its host images are made, so the "
            "images carry them (roles declare theirs: the agent's Python clients)."
        ),
    )
    container_runtime_host_images: list[ImageRef] = Field(
        [],
        description=(
            "Images built from the host's own Debian files (/usr and a few /etc files), "
            'for hosts with no registry: e.g. ["localhost/keel/debian-host:12"].'
        ),
    )
