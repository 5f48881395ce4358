"""Role READMEs' variable tables, derived from each role's settings (one declaration per key).

A README holds its table between two markers; `keel docs` rewrites it, and the test suite
fails while a README is stale.
"""

from __future__ import annotations

from pathlib import Path

from keel import ROOT
from keel.core.roles import Role, roles
from keel.core.schema import DeepMerge

BEGIN = "<!-- keel docs: generated from schema.py by `keel docs`; edit the settings there -->"
END = "<!-- /keel docs -->"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(each: Role) -> str:
    rows = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for name, info in each.settings.model_fields.items():
        merges = any(isinstance(marker, DeepMerge) for marker in info.metadata)
        rows.append(f"| `{name}` | `{_cell(repr(each.defaults[name]))}` "
                    f"| {_cell(info.description or '')}"
                    f"{' Data layers merge into it (README: Layering).' if merges else ''} |")
    return "\n".join(rows)


def readme(each: Role) -> Path:
    return ROOT / "roles" / each.name / "README.md"


def rendered(each: Role) -> str:
    """The role's README with its generated table as the settings give it now."""
    text = readme(each).read_text()
    if BEGIN not in text or END not in text:
        raise ValueError(f"{readme(each).relative_to(ROOT)} has no '{BEGIN}' ... '{END}' block")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table(each)}\n{END}{tail}"


def stale() -> list[Role]:
    return [each for each in roles() if readme(each).read_text() != rendered(each)]


def write() -> list[Role]:
    """Rewrite every stale README; returns the roles whose README changed."""
    changed = stale()
    for each in changed:
        readme(each).write_text(rendered(each))
    return changed
