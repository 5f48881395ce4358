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


# Roles whose developers have yet to add their scenario (strict: adding it fails this list).
SCENARIO_PENDING = {"edge", "claude_cli", "container_runtime", "app", "node_exporter",
                    "postgres_exporter", "redis_exporter", "prometheus"}


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.xfail(strict=True, reason="scenario to be added"))
    if name in SCENARIO_PENDING else name for name in ROLES
])
def test_molecule_scenario(name):
    """Each role has a scenario whose instances carry the overridable prefix and the role name."""
    path = ROOT / "roles" / name / "molecule" / "default" / "molecule.yml"
    assert path.exists(), f"{path.relative_to(ROOT)} is missing (README.md, Molecule)"
    for platform in yaml.safe_load(path.read_text())["platforms"]:
        assert platform["name"].startswith("${KEEL_MOLECULE_PREFIX:-mol-}" + name), platform
