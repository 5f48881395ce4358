"""Small shared operations for roles."""

from __future__ import annotations

import hashlib
import shlex
from io import BytesIO, StringIO
from pathlib import PurePosixPath

import jinja2
from pyinfra import host, logger
from pyinfra.api import FactBase, FileUploadCommand, StringCommand, operation
from pyinfra.api.output import format_text
from pyinfra.api.util import get_file_io
from pyinfra.context import state
from pyinfra.facts.files import FileContents
from pyinfra.operations.util.files import chmod, chown, generate_color_diff

from keel import ROOT, TEMPLATES


def jinja() -> jinja2.Environment:
    """keel's template environment: paths relative to templates/ (or to the repo)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader([TEMPLATES, ROOT]), trim_blocks=True, lstrip_blocks=True,
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
    )


class ManagedFile(FactBase):
    """Owner, group, mode and SHA-1 of a file in one round trip (None if it is absent)."""

    def command(self, path: str) -> str:
        q = shlex.quote(path)
        return f"[ -f {q} ] && stat -c '%U %G %a' {q} && sha1sum {q} | cut -c1-40 || true"

    def process(self, output):
        if len(output) < 2:
            return None
        user, group, mode = output[0].split()
        return {"user": user, "group": group, "mode": int(mode, 8), "sha1": output[1].strip()}


@operation()
def managed_file(dest: str, content: str, mode: str = "0644", user: str = "root",
                 group: str = "root"):
    """A file with exactly this content, owner and mode: one fact round trip when in place."""
    body = content.encode()
    current = host.get_fact(ManagedFile, path=dest)
    if current is not None and current["sha1"] == hashlib.sha1(body).hexdigest():
        if current["mode"] != int(mode, 8):
            yield chmod(dest, mode)
        if (current["user"], current["group"]) != (user, group):
            yield chown(dest, user, group)
        if current["mode"] == int(mode, 8) and (current["user"], current["group"]) == (user, group):
            host.noop(f"file {dest} is up to date")
        return
    if state.config.DIFF:
        _log_diff(dest, current, content)
    if current is None:
        yield StringCommand("mkdir", "-p", str(PurePosixPath(dest).parent))
    yield FileUploadCommand(BytesIO(body), dest,
                            remote_temp_filename=host.get_temp_filename(dest))
    yield chown(dest, user, group)
    yield chmod(dest, mode)


def _log_diff(dest: str, current, content: str) -> None:
    before = []
    if current is not None:
        before = [line + "\n" for line in host.get_fact(FileContents, path=dest) or []]
    host.log(f"Will {'modify' if current else 'create'} {format_text(dest, bold=True)}",
             logger.info)
    with get_file_io(StringIO(content), "r") as f:
        for line in generate_color_diff(before, f.readlines()):
            logger.info("  %s", line)
    logger.info("")


def config_file(role: str, template: str, dest: str, *, name: str, mode: str = "0644",
                user: str = "root", group: str = "root", **context):
    """Render templates/<role>/<template>.j2 to dest.

    Templates see `data` (the role's validated settings) and `host`.
    """
    from keel.data import settings

    content = jinja().get_template(f"{role}/{template}.j2").render(
        data=settings(role), host=host, **context)
    return managed_file(name=name, dest=dest, content=content, mode=mode, user=user,
                        group=group)


def text(content: str) -> StringIO:
    """In-memory file content for files.put."""
    return StringIO(content)
