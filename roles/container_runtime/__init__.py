"""container_runtime: a container engine (podman by default, or docker) configured by data."""

from __future__ import annotations

import hashlib
import json
import re

from pyinfra import host
from pyinfra.api import FactBase, deploy
from pyinfra.operations import apt, files, server, systemd

from keel.core.roles import Role
from keel.core.schema import PortRule, size_bytes
from keel.core.secrets import SecretFile
from keel.deploy.containers import AUTH_DIR, AUTH_ENV, ImageLabel
from keel.deploy.ops import config_file, managed_file, service
from keel.deploy.secrets import deliver
from roles.container_runtime.schema import Settings

PACKAGES = {
    "podman": ["podman", "netavark", "aardvark-dns", "iptables", "catatonit"],
    "docker": ["docker.io", "iptables", "tini"],
}
LIBEXEC = "/usr/local/libexec/keel-host-image"
# The engine's built-in default network, which does not come from the pool.
DEFAULT_SUBNETS = {"podman": "10.88.0.0/16", "docker": "172.17.0.0/16"}


def container_subnets(settings: Settings) -> list[str]:
    """The source addresses of this host's containers when they reach the host itself (only
    traffic that leaves the host is masqueraded to its address)."""
    return [settings.container_runtime_network_pool,
            DEFAULT_SUBNETS[settings.container_runtime_engine]]


def secrets(settings: Settings) -> list[SecretFile]:
    """Registry passwords this host needs (read by root, piped to the engine's login)."""
    return [SecretFile(dest=f"container_runtime/registry-{_slug(r.location)}",
                       secret=r.password_secret, named_by={
                           r.password_secret: f"container_runtime_registries[{i}].password_secret"})
            for i, r in enumerate(settings.container_runtime_registries) if r.password_secret]


def ports(settings: Settings) -> list[PortRule]:
    """DNS for containers: podman's aardvark-dns answers on each network's gateway."""
    if settings.container_runtime_engine != "podman":
        return []
    return [PortRule(port=53, proto="udp", sources=[settings.container_runtime_network_pool],
                     comment="container DNS (aardvark-dns)")]


@deploy("container_runtime")
def apply(settings: Settings) -> None:
    engine = settings.container_runtime_engine
    # The configured runtime explicitly: podman depends on "crun | runc", so apt alone
    # installs crun and podman with runtime = "runc" fails on every call.
    packages = [*PACKAGES[engine], settings.container_runtime_oci_runtime]
    if settings.container_runtime_storage_driver == "fuse-overlayfs":
        packages.append("fuse-overlayfs")
    if engine == "podman":
        _podman_config(settings)
    else:
        _docker_config(settings)
    apt.packages(name=f"Install {engine}", packages=packages, no_recommends=True)
    if engine == "docker":
        service(name="Start docker", service="docker", running=True, enabled=True)
    _logins(settings)
    _host_images(settings)


def _podman_config(settings) -> None:
    config_file("container_runtime", "containers.conf", "/etc/containers/containers.conf",
                name="Configure podman (containers.conf)",
                log_max_bytes=size_bytes(settings.container_runtime_log_max_size),
                settings=settings)
    config_file("container_runtime", "storage.conf", "/etc/containers/storage.conf",
                name="Configure podman storage", settings=settings)
    config_file("container_runtime", "registries.conf",
                "/etc/containers/registries.conf.d/50-keel.conf",
                name="Configure registries", settings=settings)


def _docker_config(settings) -> None:
    # Written before the package is installed, so dockerd's first start uses it.
    installed = host.get_fact(server.Which, command="dockerd") is not None
    # JSON has no comments, so no "managed by keel" line: dockerd rejects unknown keys.
    content = json.dumps(_daemon_json(settings), indent=2, sort_keys=True) + "\n"
    conf = managed_file(name="Configure docker (daemon.json)", dest="/etc/docker/daemon.json",
                        content=content)
    if installed:
        systemd.service(name="Restart docker", service="docker", running=None, restarted=True,
                        _if=conf.did_change)


DOCKER_STORAGE = {"overlay": "overlay2", "fuse-overlayfs": "fuse-overlayfs", "vfs": "vfs"}


def _daemon_json(settings) -> dict:
    conf = {
        "exec-opts": [f"native.cgroupdriver={settings.container_runtime_cgroup_manager}"],
        "storage-driver": DOCKER_STORAGE[settings.container_runtime_storage_driver],
        "log-driver": "json-file",
        "log-opts": {"max-size": settings.container_runtime_log_max_size.lower(),
                     "max-file": str(settings.container_runtime_log_max_files)},
        "default-address-pools": [{"base": settings.container_runtime_network_pool, "size": 24}],
        "insecure-registries": [r.location for r in settings.container_runtime_registries
                                if r.insecure],
        "registry-mirrors": [m for r in settings.container_runtime_registries
                             if r.location == "docker.io" for m in r.mirrors],
    }
    if settings.container_runtime_oci_runtime == "crun":
        conf["runtimes"] = {"crun": {"path": "/usr/bin/crun"}}
        conf["default-runtime"] = "crun"
    if settings.container_runtime_storage_root:
        conf["data-root"] = settings.container_runtime_storage_root
    if settings.container_runtime_default_ulimits:
        conf["default-ulimits"] = {}
        for item in settings.container_runtime_default_ulimits:
            name, limits = item.split("=")
            soft, hard = limits.split(":")
            conf["default-ulimits"][name] = {"Name": name, "Soft": int(soft), "Hard": int(hard)}
    return conf


class RegistryLogins(FactBase):
    """{registry: username} logged in through keel's auth file (passwords never leave)."""

    default = dict

    def command(self, engine: str) -> str:
        path = AUTH_ENV[engine][1] + ("/config.json" if engine == "docker" else "")
        return ("python3 -c 'import base64,json,sys\n"
                "try: auths = json.load(open(sys.argv[1]))[\"auths\"]\n"
                "except OSError: auths = {}\n"
                "for k, v in auths.items(): "
                "print(k, base64.b64decode(v[\"auth\"]).split(b\":\")[0].decode())' "
                f"{path}")

    def process(self, output) -> dict[str, str]:
        return dict(line.split(" ", 1) for line in output if " " in line)


def _logins(settings) -> None:
    registries = [r for r in settings.container_runtime_registries if r.password_secret]
    if not registries:
        return
    engine = settings.container_runtime_engine
    var, path = AUTH_ENV[engine]
    files.directory(name="Registry login directory (tmpfs)", path=AUTH_DIR, mode="0700")
    logins = host.get_fact(RegistryLogins, engine=engine)
    for registry, file in zip(registries, secrets(settings), strict=True):
        secret = deliver(name=f"Registry password for {registry.location}", file=file)
        command = (f"{var}={path} {engine} login --username {registry.username} "
                   f"--password-stdin {registry.location} < {file.path}")
        if logins.get(registry.location) != registry.username:
            server.shell(name=f"Log in to {registry.location}", commands=[command])
        else:
            server.shell(name=f"Log in to {registry.location} (password rotated)",
                         commands=[command], _if=secret.did_change)


def _slug(location: str) -> str:
    return re.sub(r"[^a-z0-9.-]", "_", location)


def _host_images(settings) -> None:
    """Images made of the host's own files, carrying container_runtime_host_packages; one
    whose package set changed is made again (its label keel.packages names the set)."""
    if not settings.container_runtime_host_images:
        return
    engine = settings.container_runtime_engine
    packages = sorted(set(settings.container_runtime_host_packages))
    if packages:
        apt.packages(name="Install the packages host images carry", packages=packages,
                     no_recommends=True)
    digest = hashlib.sha256(" ".join(packages).encode()).hexdigest()[:12] if packages else ""
    config_file("container_runtime", "host-image.sh", LIBEXEC, mode="0755",
                name="Install host image builder")
    for image in settings.container_runtime_host_images:
        label = host.get_fact(ImageLabel, engine=engine, image=image, label="keel.packages")
        if label is None:
            server.shell(name=f"Build image {image} from the host's files",
                         commands=[f"{LIBEXEC} {engine} {image} {digest or '-'}"])
        elif label != digest:
            server.shell(name=f"Build image {image} again (the packages it carries changed)",
                         commands=[f"{LIBEXEC} {engine} {image} {digest or '-'}"])


ROLE = Role(name="container_runtime", settings=Settings, apply=apply, groups=("app",),
            ports=ports, secrets=secrets)
