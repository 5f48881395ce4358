"""storage: the app's storage backend (local, s3, postgresql), its environment, a live check."""

from __future__ import annotations

from pyinfra import inventory
from pyinfra.api import StringCommand, deploy
from pyinfra.operations import apt, files, server

from keel.core.roles import Declaration, Role
from keel.core.secrets import RUN_DIR, SecretFile
from keel.deploy.ops import config_file, live_check, restart_readers
from keel.deploy.secrets import deliver
from roles.storage.schema import Settings, cross_check, database

# The app's unit reads it with EnvironmentFile= (see README: the contract with the app role).
ENV_DEST = "app/storage.env"
ENV_PATH = f"{RUN_DIR}/{ENV_DEST}"
PROBE = "/usr/local/lib/keel/storage-probe"
CLIENTS = {"local": [], "s3": ["python3-boto3"], "postgresql": ["python3-psycopg2"]}


def _first_address(group: str) -> str | None:
    members = inventory.get_group(group, default=[])
    return members[0].data.get("keel_address") or members[0].name if members else None


def db_host(settings: Settings) -> str | None:
    return settings.storage_db_host or _first_address("db")


def redis_host(settings: Settings) -> str | None:
    return settings.storage_redis_host or _first_address("cache")


def env_file(settings: Settings, resolve: bool = True) -> SecretFile:
    """The app's storage environment: a template rendered with the backend's secrets.

    resolve=False leaves out what needs the loaded inventory (enough to check secrets).
    """
    uses: tuple[str, ...] = ()
    if settings.storage_backend == "s3" and settings.storage_s3_credentials == "secrets":
        uses = (settings.storage_s3_access_key_secret, settings.storage_s3_secret_key_secret)
    if database(settings) == "postgresql":
        uses += (settings.storage_db_password_secret,)
    if settings.storage_redis_user:
        uses += (settings.storage_redis_password_secret,)
    return SecretFile(
        dest=ENV_DEST, template="storage/storage.env.j2", uses=uses,
        context={"settings": settings, "database": database(settings),
                 "db_host": db_host(settings), "redis_host": redis_host(settings)}
        if resolve else {},
        owner=settings.storage_app_user, group=settings.storage_app_user, mode="0400")


# What an app's Redis user may run: its own keys' reads and writes, no admin, no scripting.
REDIS_COMMANDS = ["-@all", "+auth", "+hello", "+ping", "+client|setname", "+get", "+set",
                  "+del", "+exists", "+expire", "+incr", "+incrby", "+lpush", "+rpop", "+llen"]


def declares(settings: Settings, offers: dict) -> list[Declaration]:
    """The logins DATABASE_URL and REDIS_URL carry, created by postgres and redis on the
    inventory's db and cache hosts (not when storage_db_host / storage_redis_host name a
    server outside the inventory); the local backend's DATA_DIR to the restic role on the same
    host (app data backups), with the units that write it (roles on the host offer them as
    `data_units`), which a restore stops and starts."""
    out = []
    if database(settings) == "postgresql" and not settings.storage_db_host:
        user = settings.storage_db_user
        out += [Declaration(role="postgres", key="postgres_roles", host="group:db", item={
                    "name": user, "password_secret": settings.storage_db_password_secret}),
                Declaration(role="postgres", key="postgres_databases", host="group:db",
                            item={"name": settings.storage_db_name, "owner": user})]
    if settings.storage_redis_user and not settings.storage_redis_host:
        user = settings.storage_redis_user
        out.append(Declaration(role="redis", key="redis_users", host="group:cache", item={
            "name": user, "password_secret": settings.storage_redis_password_secret,
            "keys": [f"~{user}:*"], "channels": [f"&{user}:*"], "commands": REDIS_COMMANDS}))
    if settings.storage_backend == "local":  # its DATA_DIR, to restic on the same host
        units = sorted({unit for offer in offers.values() for unit in offer.get("data_units", [])})
        out.append(Declaration(role="restic", key="restic_sets", item={
            "name": "storage", "paths": [settings.storage_data_dir], "units": units}))
    return out


def offers(settings: Settings) -> dict:
    """For roles that run the app (the agent): who it runs as and what it reads."""
    return {"user": settings.storage_app_user, "uid": settings.storage_app_uid,
            "env_file": ENV_PATH, "data_dir": settings.storage_data_dir}


def secrets(settings: Settings) -> list[SecretFile]:
    return [env_file(settings, resolve=False)]


def endpoint(settings: Settings) -> str:
    """Where the backend is, for messages (never with credentials)."""
    if settings.storage_backend == "s3":
        where = settings.storage_s3_endpoint or f"AWS S3 ({settings.storage_s3_region})"
        return f"{where}, bucket {settings.storage_s3_bucket}"
    if settings.storage_backend == "postgresql":
        return f"{db_host(settings)}:{settings.storage_db_port}/{settings.storage_db_name}"
    return settings.storage_data_dir


def check(settings: Settings, name: str):
    """Write, read back and delete a probe as the app user; never a change, a failure is loud."""
    return live_check(
        name=name,
        command=StringCommand("runuser", "-u", settings.storage_app_user, "--", PROBE, ENV_PATH),
        ok=f"storage backend {settings.storage_backend} at {endpoint(settings)} is writable",
        failed=f"storage check failed: backend {settings.storage_backend} at "
               f"{endpoint(settings)} is not reachable and writable")


@deploy("storage")
def apply(settings: Settings) -> None:
    user, uid = settings.storage_app_user, settings.storage_app_uid
    if uid is not None:
        server.group(name=f"App group {user}", group=user, gid=uid, system=True)
    server.user(name=f"App user {user}", user=user, system=True, home="/nonexistent",
                shell="/usr/sbin/nologin", create_home=False, uid=uid,
                group=user if uid is not None else None)
    packages = ["python3", *CLIENTS[settings.storage_backend]]
    apt.packages(name=f"Install the {settings.storage_backend} client", packages=packages,
                 no_recommends=True)

    root = settings.storage_data_dir
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
    env = deliver(name=f"Deliver the app's storage environment ({settings.storage_backend})",
                  file=env_file(settings))
    # The readers are the units that name the file (the app's services list it in env_files).
    restart_readers(name="Restart the services that read the storage environment", path=ENV_PATH,
                    _if=env.did_change)
    if settings.storage_check:
        check(settings, name=f"Check storage backend {settings.storage_backend}")


ROLE = Role(name="storage", settings=Settings, apply=apply, groups=("app",), secrets=secrets,
            cross_check=cross_check, declares=declares, offers=offers)
