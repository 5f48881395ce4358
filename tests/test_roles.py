"""Every role follows the conventions: prefixed, documented DEFAULTS that match its schema."""

import pytest
import yaml

from keel import ROOT
from keel.roles import ROLES, role_module


@pytest.mark.parametrize("name", list(ROLES))
def test_role_conventions(name):
    module = role_module(name)
    assert all(key.startswith(name + "_") for key in module.DEFAULTS)
    assert set(module.Schema.model_fields) == set(module.DEFAULTS), "schema and DEFAULTS differ"
    module.Schema.model_validate(module.DEFAULTS)  # the defaults themselves are valid
    readme = (ROOT / "roles" / name / "README.md").read_text()
    missing = [key for key in module.DEFAULTS if f"`{key}`" not in readme]
    assert not missing, f"README.md of {name} lacks a line for {missing}"
    assert (ROOT / "deploys" / f"{name}.py").exists()
    assert callable(module.apply)


@pytest.mark.parametrize("name", list(ROLES))
def test_templates_carry_managed_header(name):
    for template in (ROOT / "templates" / name).glob("*.j2"):
        assert "managed by keel" in template.read_text().splitlines()[0] + \
            template.read_text().splitlines()[1], template


@pytest.mark.parametrize("name", list(ROLES))
def test_molecule_scenario(name):
    """Each role has a scenario whose instances carry the overridable prefix and the role name,
    and testinfra tests for its verify step."""
    path = ROOT / "roles" / name / "molecule" / "default" / "molecule.yml"
    assert path.exists(), f"{path.relative_to(ROOT)} is missing (README.md, Molecule)"
    for platform in yaml.safe_load(path.read_text())["platforms"]:
        assert platform["name"].startswith("${KEEL_MOLECULE_PREFIX:-mol-}" + name), platform
    tests = list((ROOT / "roles" / name / "tests").glob("test_*.py"))
    assert tests, f"roles/{name}/tests has no testinfra tests: molecule verify checks nothing"
