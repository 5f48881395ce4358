"""Templates: templates/<role>/<name>.j2, rendered on the controller with what the caller passes."""

from __future__ import annotations

from functools import cache

import jinja2

from keel import ROOT, TEMPLATES


@cache
def jinja() -> jinja2.Environment:
    """keel's template environment: paths relative to templates/ (or to the repo)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader([TEMPLATES, ROOT]), trim_blocks=True, lstrip_blocks=True,
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
    )


def render(role: str, template: str, **context) -> str:
    """templates/<role>/<template>.j2 with exactly the context given."""
    return jinja().get_template(f"{role}/{template}.j2").render(**context)
