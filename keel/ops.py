"""Small shared operations for roles."""

from __future__ import annotations

from io import StringIO

from pyinfra import host
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

