"""Every role follows the contract: one ROLE, prefixed keys declared once with a default and a
description, a README whose variable table is generated from them, a deploy file."""

import pytest
import yaml

from keel import ROOT
from keel.core import docs
from keel.core.roles import SITE, role


@pytest.mark.parametrize("name", SITE)
def test_role_contract(name):
    each = role(name)
    assert all(key.startswith(name + "_") for key in each.keys)
    undocumented = [key for key, info in each.settings.model_fields.items()
                    if not (info.description or "").strip()]
    assert not undocumented, f"{name}: keys without a description: {undocumented}"
    each.settings.model_validate(each.defaults)  # the defaults themselves are valid
    assert (ROOT / "deploys" / f"{name}.py").exists()
    assert callable(each.apply)


def test_readme_tables_are_generated_from_the_settings():
    assert [each.name for each in docs.stale()] == [], "run `keel docs`"


@pytest.mark.parametrize("name", SITE)
def test_templates_carry_managed_header(name):
    for template in (ROOT / "templates" / name).glob("*.j2"):
        assert "managed by keel" in template.read_text().splitlines()[0] + \
            template.read_text().splitlines()[1], template


@pytest.mark.parametrize("name", SITE)
def test_molecule_scenario(name):
    """Each role has a scenario whose instances carry the overridable prefix and the role name,
    and testinfra tests for its verify step."""
    path = ROOT / "roles" / name / "molecule" / "default" / "molecule.yml"
    assert path.exists(), f"{path.relative_to(ROOT)} is missing (README.md, Molecule)"
    for platform in yaml.safe_load(path.read_text())["platforms"]:
        assert platform["name"].startswith("${KEEL_MOLECULE_PREFIX:-mol-}" + name), platform
    tests = list((ROOT / "roles" / name / "tests").glob("test_*.py"))
    assert tests, f"roles/{name}/tests has no testinfra tests: molecule verify checks nothing"
