"""Small shared operations for roles."""

from __future__ import annotations

import hashlib
from io import StringIO

from pyinfra import host
from pyinfra.api import FileUploadCommand, StringCommand, operation
from pyinfra.facts.files import File, Sha256File
from pyinfra.operations import files

from keel import TEMPLATES
from keel.data import settings


def config_file(role: str, template: str, dest: str, *, name: str, mode: str = "0644",
                user: str = "root", group: str = "root", **context):
    """Render templates/<role>/<template>.j2 to dest.

    Templates see `data` (the role's validated settings) and `host`.
    """
    return files.template(
        name=name, src=str(TEMPLATES / role / f"{template}.j2"), dest=dest,
        user=user, group=group, mode=mode, create_remote_dir=True,
        jinja_env_kwargs={"trim_blocks": True, "lstrip_blocks": True},
        data=settings(role), host=host, **context,
    )


def text(content: str) -> StringIO:
    """In-memory file content for files.put."""
    return StringIO(content)


@operation()
def private_file(content: str, dest: str, user: str = "root", group: str = "root",
                 mode: str = "0600"):
    """Write content to dest without ever printing it (files.put shows it under --diff).

    For files derived from secrets (password hashes); changes are found by checksum.
    """
    current = host.get_fact(File, path=dest)
    if host.get_fact(Sha256File, path=dest) != hashlib.sha256(content.encode()).hexdigest():
        yield FileUploadCommand(StringIO(content), dest)
        yield StringCommand("chown", f"{user}:{group}", dest)
        yield StringCommand("chmod", mode, dest)
        return
    if (current["user"], current["group"]) != (user, group):
        yield StringCommand("chown", f"{user}:{group}", dest)
    if current["mode"] != int(mode):  # the fact gives 640 for 0640
        yield StringCommand("chmod", mode, dest)
