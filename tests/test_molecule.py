"""Molecule scenarios (roles/<name>/molecule/default) run as a role developer runs them.

`molecule test` passes for the scenarios CI runs (KEEL_MOLECULE_ROLES: a fixed subset unless
set, CI_DEFAULT; "all" is every role with a scenario; README.md, "Molecule", says why). Then,
on the same converged instances, whose idempotence step has just passed, a deliberately
non-idempotent converge (the scenario variable keel_nonidempotent) fails it.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from keel import ROOT
from keel.lab.testing import BIN

SCENARIOS = sorted(p.parents[2].name for p in ROOT.glob("roles/*/molecule/default/molecule.yml"))
# One scenario of each kind: a role alone (base); a deploy-file peer, scenario data and the
# sandbox CA (edge); several instances with peer roles, one scraping the other (prometheus).
CI_DEFAULT = "base edge prometheus"
CI_ROLES = os.environ.get("KEEL_MOLECULE_ROLES", CI_DEFAULT)
PREFIX = "mol-t-"  # the suite's instances; `molecule test` by hand makes mol-<role>


def molecule(role: str, *args: str, workdir, env: dict[str, str] | None = None):
    """`molecule ARGS` from roles/<role>, with the venv first in PATH (molecule runs ansible)."""
    proc = subprocess.run(
        [str(BIN / "molecule"), *args], cwd=ROOT / "roles" / role, capture_output=True, text=True,
        stdin=subprocess.DEVNULL, timeout=1800,
        env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "NO_COLOR": "1",
             "ANSIBLE_NOCOLOR": "1", "KEEL_MOLECULE_PREFIX": PREFIX,
             # The suite's own molecule state, apart from a developer's (~/.ansible/tmp).
             "MOLECULE_EPHEMERAL_DIRECTORY": str(workdir), **(env or {})},
    )
    return proc.returncode, re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)


def _ci_roles() -> list[str]:
    return SCENARIOS if CI_ROLES == "all" else CI_ROLES.split()


@pytest.fixture(scope="module", params=_ci_roles())
def scenario(request, tmp_path_factory):
    """`molecule test` for one role, keeping the converged instances for the next checks."""
    role = request.param
    workdir = tmp_path_factory.mktemp(f"molecule-{role}")
    molecule(role, "destroy", workdir=workdir)  # leftovers of an earlier run, by name
    result = molecule(role, "test", "--destroy", "never", workdir=workdir)
    yield role, workdir, result
    if not (request.config.getoption("--keep-hosts") or os.environ.get("KEEL_KEEP")):
        molecule(role, "destroy", workdir=workdir)


@pytest.mark.sandbox
def test_molecule_test_passes(scenario):
    _, _, (returncode, output) = scenario
    assert returncode == 0, output[-6000:]
    for step in ("converge", "idempotence", "verify"):
        assert re.search(rf"{step}\W+Executed: Successful", output), f"{step} did not run"


@pytest.mark.sandbox
def test_nonidempotent_change_fails_idempotence(scenario):
    role, workdir, (returncode, _) = scenario
    assert returncode == 0
    broken, output = molecule(role, "idempotence", workdir=workdir,
                              env={"KEEL_MOLECULE_NONIDEMPOTENT": "1"})
    assert broken != 0, output[-4000:]
    assert "Idempotence test failed" in output
    assert "Deliberately non-idempotent" in output  # pyinfra's changed operation is named
