"""Schema for container_runtime's data."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from keel.schema import Cidr, Memory, Model, RoleData

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


class Schema(RoleData):
    container_runtime_engine: Literal["podman", "docker"]
    container_runtime_oci_runtime: Literal["runc", "crun"]
    container_runtime_cgroup_manager: Literal["systemd", "cgroupfs"]
    container_runtime_storage_driver: Literal["overlay", "fuse-overlayfs", "vfs"]
    container_runtime_storage_root: Annotated[str, Field(pattern=r"^/")] | None
    container_runtime_log_max_size: Memory
    container_runtime_log_max_files: Annotated[int, Field(ge=1, le=100)]
    container_runtime_network_pool: Cidr
    container_runtime_default_ulimits: list[Annotated[str, Field(pattern=r"^[a-z]+=-?\d+:-?\d+$")]]
    container_runtime_search_registries: list[str]
    container_runtime_registries: list[Registry]
    container_runtime_host_images: list[ImageRef]
