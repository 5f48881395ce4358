"""Templates: templates/<role>/<name>.j2, rendered on the controller with what the caller passes."""

from __future__ import annotations

import json
import re
import shlex
from functools import cache

import jinja2
import yaml

from keel import ROOT, TEMPLATES


@cache
def jinja() -> jinja2.Environment:
    """keel's template environment: paths relative to templates/ (or to the repo)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([TEMPLATES, ROOT]), trim_blocks=True, lstrip_blocks=True,
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
    )
    env.filters.update(FILTERS)
    return env


def render(role: str, template: str, **context) -> str:
    """templates/<role>/<template>.j2 with exactly the context given."""
    return jinja().get_template(f"{role}/{template}.j2").render(**context)


# --- one escaping helper per format, exposed to templates as filters ----------------------
# Data is validated first (no control characters in one-line strings: keel.core.schema), and
# these helpers refuse them again, so a value can never add a line to a rendered file. Each
# quotes the way its format reads a value back: templates use them and never hand-quote.

def _one_line(value: object, fmt: str) -> str:
    text = str(value)
    bad = next((c for c in text if ord(c) < 32 or 127 <= ord(c) < 160
                or c in "\u2028\u2029"), None)
    if bad is not None:
        raise ValueError(f"{fmt}: a control character (U+{ord(bad):04X}) in {text!r} "
                         "would break the line it is rendered into")
    return text


def pg_conf(value: object) -> str:
    """A postgresql.conf value: numbers and booleans as they are, anything else a quoted
    string (quotes doubled; backslash is an escape character there, so it is doubled too)."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int | float):
        return str(value)
    text = _one_line(value, "postgresql.conf")
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def systemd_spec(value: object) -> str:
    """A value in a unit file setting that expands specifiers (Description=, paths): % -> %%."""
    return _one_line(value, "systemd unit").replace("%", "%%")


def systemd_arg(value: object) -> str:
    """One argument of a unit's Exec*= line: quoted when needed (systemd's rules: double
    quotes, backslash escapes), % and $ escaped so systemd expands neither."""
    text = _one_line(value, "systemd unit").replace("%", "%%").replace("$", "$$")
    if text and not any(c in text for c in " \t\"'\\;"):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def env_value(value: object) -> str:
    """A value in an EnvironmentFile= (systemd) / /etc/default file: double-quoted with
    backslash escapes, which systemd reads back verbatim (it expands no variables there)."""
    text = _one_line(value, "environment file")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") \
        .replace("`", "\\`") + '"'


def shell(value: object) -> str:
    """A word of a shell script: quoted for /bin/sh."""
    return shlex.quote(_one_line(value, "shell script"))


def redis_conf(value: object) -> str:
    """A redis.conf argument: bare when plain, else double-quoted with backslash escapes
    (redis splits config lines as sdssplitargs does)."""
    text = _one_line(value, "redis.conf")
    if text and all(c.isalnum() or c in "-_.:/@+*~&^%=,<>!?#[]()" for c in text) \
            and not text.startswith("#"):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def nginx(value: object) -> str:
    """An nginx directive argument: bare when plain, else double-quoted with escapes. nginx
    expands $variables inside quotes too and has no escape for '$': such a value is refused."""
    text = _one_line(value, "nginx config")
    if "$" in text:
        raise ValueError(f"nginx config: {text!r} has a '$', which nginx would expand")
    if text and not any(c in text for c in " \t\"'\\;{}#"):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# Words pg_hba.conf reads as keywords when bare: keel passes them bare, as meant.
PG_HBA_KEYWORDS = frozenset({"all", "sameuser", "samerole", "samegroup", "replication"})


def pg_hba(value: object) -> str:
    """One database or user name of a pg_hba.conf field: keywords and "+group" bare, any
    other name double-quoted when it is not a plain word, so a space, '#' or ',' stays in the
    name and a leading '+' or '@' is literal. PostgreSQL 15 has no escape for '"' there."""
    text = _one_line(value, "pg_hba.conf")
    if '"' in text or not text:
        raise ValueError(f"pg_hba.conf: {text!r} cannot be written as a name (no '\"' there)")
    if text in PG_HBA_KEYWORDS or re.fullmatch(r"\+?[A-Za-z0-9_][A-Za-z0-9_.-]*", text):
        return text
    return f'"{text}"'


def line(value: object) -> str:
    """A value on a line of a format with no quoting (sysctl.conf, sshd_config words,
    --env-file): the value as it is, refused if it could break the line."""
    return _one_line(value, "config line")


def json_value(value: object) -> str:
    """JSON, and so YAML too: any value, escaped as JSON (control characters included)."""
    return json.dumps(value)


def yaml_document(value: object) -> str:
    """A whole YAML document (Prometheus, Alertmanager): PyYAML quotes each string as YAML
    needs ('#', ': ', quotes, leading '*' or '&', "yes"), in block style."""
    return yaml.safe_dump(value, sort_keys=False, default_flow_style=False)


FILTERS = {"pg_conf": pg_conf, "pg_hba": pg_hba, "systemd_spec": systemd_spec,
           "systemd_arg": systemd_arg, "env_value": env_value, "shell": shell,
           "redis_conf": redis_conf, "nginx": nginx, "line": line, "json": json_value,
           "yaml": json_value}
