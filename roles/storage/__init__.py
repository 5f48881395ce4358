"""storage: the app's storage backend (local, s3, postgresql), its environment, a live check."""

from __future__ import annotations

import shlex

from pyinfra import host, inventory
from pyinfra.api import StringCommand, deploy, operation
from pyinfra.api.arguments import CONNECTOR_ARGUMENT_KEYS
from pyinfra.operations import apt, files, server

from keel.data import settings
from keel.ops import config_file, restart_readers
from keel.secrets import RUN_DIR, SecretFile, deliver
from roles.storage.schema import Schema, cross_check  # noqa: F401  (read by keel.data)

DEFAULTS = {
    # Backend: "local" (files under storage_data_dir), "s3" or "postgresql".
    "storage_backend": "local",
    # User the app runs as: it owns DATA_DIR and reads the environment file.
    "storage_app_user": "app",
    # DATA_DIR (absolute): db/, credentials/, config/agents/, config/skills/.
    "storage_data_dir": "/srv/app/data",
    # s3: bucket (required for s3).
    "storage_s3_bucket": None,
    # s3: key prefix (S3_PREFIX).
    "storage_s3_prefix": "claude-agent",
    # s3: region (AWS_REGION).
    "storage_s3_region": "us-east-1",
    # s3: endpoint URL of an S3-compatible service; None: AWS's own.
    "storage_s3_endpoint": None,
    # s3: "secrets" (access key pair from the secrets below) or "instance_role" (none rendered).
    "storage_s3_credentials": "secrets",
    # s3: secret holding AWS_ACCESS_KEY_ID.
    "storage_s3_access_key_secret": "storage_s3_access_key_id",
    # s3: secret holding AWS_SECRET_ACCESS_KEY.
    "storage_s3_secret_key_secret": "storage_s3_secret_access_key",
    # postgresql: database host; None: the first host of the inventory's db group.
    "storage_db_host": None,
    # postgresql: port.
    "storage_db_port": 5432,
    # postgresql: database name.
    "storage_db_name": "app",
    # postgresql: user.
    "storage_db_user": "app",
    # postgresql: secret holding that user's password.
    "storage_db_password_secret": "postgres_app_password",
    # postgresql: URL scheme of DATABASE_URL (the app uses SQLAlchemy with asyncpg).
    "storage_db_driver": "postgresql+asyncpg",
    # Redis host for REDIS_URL; None: the first host of the cache group (no REDIS_URL if none).
    "storage_redis_host": None,
    # Redis port and database number.
    "storage_redis_port": 6379,
    "storage_redis_db": 0,
    # After converging, write, read back and delete a probe object/row/file as the app user.
    "storage_check": True,
}

# The app's unit reads it with EnvironmentFile= (see README: the contract with the app role).
ENV_DEST = "app/storage.env"
ENV_PATH = f"{RUN_DIR}/{ENV_DEST}"
PROBE = "/usr/local/lib/keel/storage-probe"
CLIENTS = {"local": [], "s3": ["python3-boto3"], "postgresql": ["python3-psycopg2"]}


def _first_address(group: str) -> str | None:
    members = inventory.get_group(group, default=[])
    return members[0].data.get("keel_address") or members[0].name if members else None


def db_host(data: Schema) -> str | None:
    return data.storage_db_host or _first_address("db")


def redis_url(data: Schema) -> str | None:
    redis = data.storage_redis_host or _first_address("cache")
    return f"redis://{redis}:{data.storage_redis_port}/{data.storage_redis_db}" if redis else None


def env_file(data: Schema, resolve: bool = True) -> SecretFile:
    """The app's storage environment: a template rendered with the backend's secrets.

    resolve=False leaves out what needs the loaded inventory (enough to check secrets).
    """
    uses: tuple[str, ...] = ()
    if data.storage_backend == "s3" and data.storage_s3_credentials == "secrets":
        uses = (data.storage_s3_access_key_secret, data.storage_s3_secret_key_secret)
    elif data.storage_backend == "postgresql":
        uses = (data.storage_db_password_secret,)
    return SecretFile(
        dest=ENV_DEST, template="storage/storage.env.j2", uses=uses,
        context={"data": data, "db_host": db_host(data), "redis_url": redis_url(data)}
        if resolve else {},
        owner=data.storage_app_user, group=data.storage_app_user, mode="0400")


def secrets(data: Schema) -> list[SecretFile]:
    return [env_file(data, resolve=False)]


def endpoint(data: Schema) -> str:
    """Where the backend is, for messages (never with credentials)."""
    if data.storage_backend == "s3":
        where = data.storage_s3_endpoint or f"AWS S3 ({data.storage_s3_region})"
        return f"{where}, bucket {data.storage_s3_bucket}"
    if data.storage_backend == "postgresql":
        return f"{db_host(data)}:{data.storage_db_port}/{data.storage_db_name}"
    return data.storage_data_dir


@operation()
def check(data: Schema):
    """Write, read back and delete a probe as the app user; never a change, a failure is loud.

    Runs only while executing (a plan cannot reach a backend that may not be set up yet).
    """
    from pyinfra import state

    if not state.is_executing:
        return
    # With the run's own connection settings: on a cloud host keel logs in unprivileged and
    # becomes root through _sudo.
    connector = {key: value for key, value in (host.current_op_global_arguments or {}).items()
                 if key in CONNECTOR_ARGUMENT_KEYS}
    ok, output = host.run_shell_command(StringCommand(
        "runuser", "-u", data.storage_app_user, "--", PROBE, ENV_PATH), **connector)
    if ok:
        host.noop(f"storage backend {data.storage_backend} at {endpoint(data)} is writable")
        return
    detail = " ".join(line.line for line in output if line.line).strip() or "no output"
    message = (f"storage check failed: backend {data.storage_backend} at {endpoint(data)} "
               f"is not reachable and writable: {detail}")
    yield StringCommand(f"echo {shlex.quote(message)} >&2; exit 1")


@deploy("storage")
def apply() -> None:
    data = settings("storage")
    user = data.storage_app_user
    server.user(name=f"App user {user}", user=user, system=True, home="/nonexistent",
                shell="/usr/sbin/nologin", create_home=False)
    packages = ["python3", *CLIENTS[data.storage_backend]]
    apt.packages(name=f"Install the {data.storage_backend} client", packages=packages,
                 no_recommends=True)

    root = data.storage_data_dir
    parent = root.rsplit("/", 1)[0] or "/"
    # Only made if missing: never re-moded (it may be /srv, /var/lib, ...).
    files.directory(name=f"{parent} (DATA_DIR's parent)", path=parent)
    for sub, mode in (("", "0750"), ("/db", "0750"), ("/credentials", "0700"),
                      ("/config", "0750"), ("/config/agents", "0750"),
                      ("/config/skills", "0750")):
        files.directory(name=f"DATA_DIR {root}{sub}", path=root + sub, user=user, group=user,
                        mode=mode)

    config_file("storage", "storage-probe", PROBE, mode="0755",
                name="Install the storage probe")
    env = deliver(name=f"Deliver the app's storage environment ({data.storage_backend})",
                  file=env_file(data))
    # The readers are the units that name the file (the app's services list it in env_files).
    restart_readers(name="Restart the services that read the storage environment", path=ENV_PATH,
                    _if=env.did_change)
    if data.storage_check:
        check(name=f"Check storage backend {data.storage_backend}", data=data)
