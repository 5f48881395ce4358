"""What the container roles render, checked without hosts: units, daemon.json, registries."""

import json
import re

from containers_data import stack

from keel.core.render import render
from keel.core.roles import role
from roles.app.units import exec_line, render_unit, surge_unit
from roles.container_runtime import _daemon_json

APP, RUNTIME = role("app").defaults, role("container_runtime").defaults
AppSchema, RuntimeSchema = role("app").settings, role("container_runtime").settings


def app_data(engine="podman", **extra):
    return AppSchema.model_validate({**APP, "app_engine": engine, **stack("web_stack"), **extra})


def test_exec_line_quotes_and_escapes():
    assert exec_line(["/bin/echo", "a b", "50%", "$HOME", 'say "hi"']) == \
        '/bin/echo "a b" 50%% $$HOME "say \\"hi\\""'


def test_podman_unit_carries_the_whole_definition():
    data = app_data()
    unit = render_unit(data, "cms", data.app_services["cms"], "localhost/keel/standin:abc")
    assert unit.startswith("# managed by keel: roles/app")
    assert "Type=notify" in unit and "Restart=always" in unit
    assert "Wants=network-online.target app-db.service keel-secrets.service" in unit
    assert "ExecStartPre=/usr/local/libexec/keel-app wait-healthy 120 db" in unit
    assert "ExecStartPost=/usr/local/libexec/keel-app wait-healthy 120 cms" in unit
    start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    for flag in ("--network backend,frontend", "--user 10001:10001", "--read-only",
                 "--cap-drop=ALL", "--security-opt no-new-privileges", "--cpus 2",
                 "--memory 1g", "--memory-reservation 512m", "-p 127.0.0.1:1337:1337/tcp",
                 "-v uploads:/opt/app/public/uploads",
                 "-v /run/keel/secrets/app/cms/web_postgres_password:"
                 "/run/secrets/postgres_password:ro",
                 "--env-file /run/keel/app/cms.env", "-e DATABASE_HOST=db",
                 "localhost/keel/standin:abc"):
        assert flag in start, flag
    assert "JWT_SECRET=/run/keel/secrets/app/cms/web_strapi_jwt_secret" in unit


def test_surge_copy_publishes_only_its_surge_ports():
    web = stack("web_stack")
    web["app_services"]["cms"]["ports"][0]["surge"] = 1338
    data = AppSchema.model_validate({**APP, **web})
    cms = data.app_services["cms"]
    unit = surge_unit(data, "cms", cms, "i:2")
    start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    assert "--name cms-surge " in start and "-p 127.0.0.1:1338:1337/tcp" in start
    assert ":1337:1337" not in start
    assert "ExecStartPost=/usr/local/libexec/keel-app wait-healthy 120 cms-surge" in unit
    assert "ExecStop=/usr/bin/podman stop --ignore -t 10 cms-surge" in unit
    # The service's own unit is unchanged by its surge port; a service without one has none.
    assert render_unit(data, "cms", cms, "i:2") == render_unit(
        app_data(), "cms", app_data().app_services["cms"], "i:2")
    assert surge_unit(data, "api", data.app_services["api"], "i:2") is None


def test_env_files_of_other_roles_are_passed():
    web = stack("web_stack")
    web["app_services"]["api"]["env_files"] = ["/run/keel/secrets/app/storage.env"]
    data = AppSchema.model_validate({**APP, **web})
    unit = render_unit(data, "api", data.app_services["api"], "i:1")
    assert "--env-file /run/keel/secrets/app/storage.env --env-file /run/keel/app/api.env" in unit


def test_docker_unit_connects_extra_networks_before_start():
    data = app_data("docker")
    unit = render_unit(data, "api", data.app_services["api"], "localhost/keel/standin:abc")
    assert "Type=simple" in unit and "Requires=docker.service" in unit
    assert "ExecStartPre=/usr/bin/docker network connect frontend api" in unit
    assert "ExecStart=/usr/bin/docker start -a api" in unit


def test_a_changed_env_changes_only_that_unit():
    before, after = app_data(), stack("web_stack")
    after["app_services"]["api"]["environment"]["LOG_LEVEL"] = "debug"
    after = AppSchema.model_validate({**APP, **after})
    for name in before.app_services:
        same = render_unit(before, name, before.app_services[name], "i:1") == \
            render_unit(after, name, after.app_services[name], "i:1")
        assert same == (name != "api"), name


def test_a_changed_config_changes_only_its_users_units():
    def settings(greeting: str):
        data = stack("web_stack")
        data["app_configs"] = {"site": {"template": "tests/templates/app-config.conf.j2",
                                        "vars": {"greeting": greeting, "workers": 2}}}
        for name in ("cms", "api"):
            data["app_services"][name]["configs"] = [{"config": "site", "target": "/etc/s"}]
        return AppSchema.model_validate({**APP, **data})

    before, after = settings("hello"), settings("bonjour")
    cms = render_unit(before, "cms", before.app_services["cms"], "i:1")
    assert re.search(r" -v /etc/keel/app/configs/cms/site-[0-9a-f]{12}:/etc/s:ro ", cms)
    for name in before.app_services:
        same = render_unit(before, name, before.app_services[name], "i:1") == \
            render_unit(after, name, after.app_services[name], "i:1")
        assert same == (name not in ("cms", "api")), name


def runtime(**values):
    return RuntimeSchema.model_validate({**RUNTIME, **values})


def test_docker_daemon_json_for_a_nested_host():
    conf = _daemon_json(runtime(
        container_runtime_engine="docker", container_runtime_oci_runtime="crun",
        container_runtime_cgroup_manager="cgroupfs",
        container_runtime_storage_driver="fuse-overlayfs",
        container_runtime_registries=[{"location": "registry.local:5000", "insecure": True}]))
    assert conf["default-runtime"] == "crun" and conf["runtimes"]["crun"]["path"]
    assert conf["storage-driver"] == "fuse-overlayfs"
    assert conf["exec-opts"] == ["native.cgroupdriver=cgroupfs"]
    assert conf["log-opts"] == {"max-size": "10m", "max-file": "3"}
    assert conf["insecure-registries"] == ["registry.local:5000"]
    json.dumps(conf)


def test_podman_registries_conf():
    data = runtime(container_runtime_registries=[
        {"location": "registry.local:5000", "insecure": True, "username": "ci",
         "password_secret": "registry_password", "mirrors": ["mirror.local"]}])
    text = render("container_runtime", "registries.conf", settings=data)
    assert 'location = "registry.local:5000"\ninsecure = true' in text
    assert '[[registry.mirror]]\nlocation = "mirror.local"' in text
