"""Bad app data fails before any host is contacted, naming the service and the key."""

import pytest

from keel.lab.sandbox import Host

NOWHERE = Host("c-bad1", "198.51.100.250", True, "running")
STANDIN = {"context": "tests/images/standin"}


def svc(**extra) -> dict:
    return {"build": STANDIN, **extra}


CASES = {
    "port conflict between services": (
        {"app_services": {"web": svc(ports=[{"port": 8080, "target": 80}]),
                          "api": svc(ports=[{"port": 8080, "target": 3000,
                                             "address": "0.0.0.0"}])}},
        "app_services.api.ports[0]", "already published by service 'web'"),
    "surge port taken by another service": (
        {"app_services": {"web": svc(ports=[{"port": 8080, "target": 80, "surge": 8081}]),
                          "api": svc(ports=[{"port": 8081, "target": 3000}])}},
        "app_services.api.ports[0]", "port 8081/tcp on 127.0.0.1 is already published by "
                                     "service 'web'"),
    "unknown network": (
        {"app_services": {"web": svc(networks=["frontend", "backnd"])},
         "app_networks": {"frontend": {}, "backend": {}}},
        "app_services.web.networks[1]", "unknown network 'backnd'"),
    "depends_on cycle": (
        {"app_services": {"db": svc(depends_on=["api"]), "cms": svc(depends_on=["db"]),
                          "api": svc(depends_on=["cms"])}},
        "app_services.db.depends_on", "depends_on cycle: db -> api -> cms -> db"),
    "depends_on unknown service": (
        {"app_services": {"api": svc(depends_on=["cms"])}},
        "app_services.api.depends_on[0]", "unknown service 'cms'"),
    "unknown volume": (
        {"app_services": {"db": svc(volumes=[{"source": "dbdata", "target": "/data"}])}},
        "app_services.db.volumes[0].source", "unknown volume 'dbdata'"),
    "image and build": (
        {"app_services": {"web": svc(image="nginx:1.25")}},
        "app_services.web", "exactly one of image"),
    "build context outside the repository": (
        {"app_services": {"web": {"build": {"context": "../etc"}}}},
        "app_services.web.build.context", "inside the repository"),
    "secret for a named user": (
        {"app_services": {"web": svc(user="www-data", secrets=[{"secret": "x_key"}])}},
        "app_services.web.secrets", "numeric user"),
    "undeclared secret": (
        {"app_services": {"web": svc(user="10001:10001", secrets=[
            {"secret": "web_nosuch_token", "env": "TOKEN"}])}},
        "app_services.web.secrets[0].secret",
        "secret web_nosuch_token (needed by role app) is not set in secrets/sandbox.yaml"),
    "unknown service key": (
        {"app_services": {"web": svc(enviroment={"A": "1"})}},
        "app_services.web.enviroment", "did you mean 'environment'"),
    "config template missing": (
        {"app_configs": {"site": {"template": "tests/templates/nosuch.j2"}}},
        "app_configs.site.template", "expected a file inside the repository"),
    "config file outside the repository": (
        {"app_configs": {"site": {"file": "../etc/passwd"}}},
        "app_configs.site.file", "expected a file inside the repository"),
    "config template and file": (
        {"app_configs": {"site": {"file": "tests/templates/app-static.conf",
                                  "template": "tests/templates/app-config.conf.j2"}}},
        "app_configs.site", "set exactly one of template (rendered) or file (shipped)"),
    "config template variable missing": (
        {"app_configs": {"site": {"template": "tests/templates/app-config.conf.j2",
                                  "vars": {"greeting": "hi"}}}},
        "app_configs.site", "does not render: 'workers' is undefined"),
    "config variable with a newline": (
        {"app_configs": {"site": {"template": "tests/templates/app-config.conf.j2",
                                  "vars": {"greeting": "hi\nlisten 0.0.0.0", "workers": 2}}}},
        "app_configs.site.vars.greeting", "control character (U+000A newline)"),
    "config world-readable": (
        {"app_configs": {"site": {"file": "tests/templates/app-static.conf", "mode": "0444"}}},
        "app_configs.site.mode", "others nothing: '0440', '0400', '0550' (got '0444')"),
    "config mounted at a relative path": (
        {"app_configs": {"site": {"file": "tests/templates/app-static.conf"}},
         "app_services": {"web": svc(configs=[{"config": "site", "target": "etc/site"}])}},
        "app_services.web.configs[0].target", "should match pattern"),
    "unknown config": (
        {"app_configs": {"site": {"file": "tests/templates/app-static.conf"}},
         "app_services": {"web": svc(configs=[{"config": "stie", "target": "/etc/site"}])}},
        "app_services.web.configs[0].config", "unknown config 'stie'"),
    "config for a named user": (
        {"app_configs": {"site": {"file": "tests/templates/app-static.conf"}},
         "app_services": {"web": svc(user="www-data",
                                     configs=[{"config": "site", "target": "/etc/site"}])}},
        "app_services.web.configs", "numeric user"),
    "engine mismatch": (
        {"app_engine": "docker"}, "app_engine", "differs from container_runtime_engine"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_app_data_fails_before_connecting(harness, case):
    data, key, expected = CASES[case]
    inventory = harness.inventory({"app": [NOWHERE]}, data=data, name=case.replace(" ", "_"))
    run = harness.run(inventory, "deploys/site.py")
    assert run.returncode == 2, run.output
    assert "Connecting to hosts" not in run.output
    line = next((ln for ln in run.stderr.splitlines() if f"c-bad1: {key} " in ln), None)
    assert line, f"no error naming c-bad1 and {key}:\n{run.stderr}"
    assert f"{inventory.stem}_data.py" in line, line
    assert expected in line, line
