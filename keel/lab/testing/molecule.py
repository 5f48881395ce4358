"""Molecule glue: the shared scenario playbooks (.config/molecule/) call
`python -m keel.lab.testing.molecule COMMAND`.

Molecule describes the scenario in its environment: MOLECULE_FILE is the merged molecule.yml,
MOLECULE_PROJECT_DIRECTORY is roles/<role> (the role under test), MOLECULE_EPHEMERAL_DIRECTORY
holds the scenario's state. pyinfra and testinfra reach the instances as they reach every
sandbox host and production: over SSH, on the keel-sandbox network, with keel's key.

  setup                      build the sandbox image and network if missing; print both (JSON)
  boot NAME...               authorize keel's key on started instances, wait for systemd, sshd
  apply TARGET... [--deploy F] [--data JSON] [--dry]
                             run deploys/<TARGET>.py for a role (a path ending in .py is a
                             deploy file) with pyinfra --json, or plan them (--dry --diff);
                             print {"changed": {host: [operation]}, "failed_hosts": [...]}
  verify                     run roles/<role>/tests (testinfra) on the instances of the role
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

import yaml

from keel import ROOT
from keel.core import roles as registry
from keel.errors import KeelError
from keel.lab import sandbox
from keel.lab.testing import Harness, run_testinfra

# Instances without `groups` get the role's own groups; a role of every host gets this one.
DEFAULT_GROUP = "molecule"


def role() -> str:
    return Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]).name


def platforms() -> list[dict]:
    with open(os.environ["MOLECULE_FILE"]) as f:
        return yaml.safe_load(f)["platforms"]


def _groups(name: str, otherwise: tuple[str, ...]) -> tuple[str, ...]:
    return registry.role(name).groups if name in registry.SITE else otherwise


def groups_of(platform: dict, name: str) -> list[str]:
    own = [g for g in _groups(name, ()) if g != "all"]
    return platform.get("groups") or own or [DEFAULT_GROUP]


def address(name: str) -> str:
    found = sandbox.network_address(name)
    if not found:
        raise KeelError(f"instance {name} does not exist (run `molecule create`)")
    return found


def instances() -> list[tuple[sandbox.Host, list[str]]]:
    """Each instance as a sandbox host (with its address) and its inventory groups."""
    return [(sandbox.Host(p["name"], address(p["name"]), bool(p.get("privileged")), "running"),
             groups_of(p, role())) for p in platforms()]


def deploy_file(peer: str) -> str:
    """A peer is a role (deploys/<role>.py) or a deploy file, relative to the repository."""
    return peer if peer.endswith(".py") else f"deploys/{peer}.py"


def setup() -> dict:
    log = lambda message: print(message, file=sys.stderr)  # noqa: E731
    image = sandbox.build_image(log)
    sandbox.ensure_network()
    return {"image": image, "network": sandbox.NETWORK}


def boot(names: list[str]) -> None:
    pub = sandbox.key_path().with_suffix(".pub")
    os.chmod(pub, 0o600)  # podman cp keeps the mode; sshd wants the key file private
    for name in names:
        sandbox.podman("cp", str(pub), f"{name}:/root/.ssh/authorized_keys")
    for name in names:
        sandbox.wait_booted(name)
        sandbox.wait_ssh(sandbox.Host(name, address(name), False, "running"))


def ensure_secrets(inventory: Path) -> None:
    """The sandbox secrets the instances' roles need, made if missing, as `make up` does; and
    the sandbox's CA (edge's internal certificates), as `keel ca ensure sandbox` does."""
    from keel.cli import main as keel
    from keel.core import ca

    def run(*argv: str) -> None:
        if keel(list(argv)) != 0:
            raise KeelError(f"keel {' '.join(argv)} failed")

    with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the JSON summary
        run("secrets", "init", "sandbox")
        ca.ensure("sandbox")
        run("secrets", "ensure", "sandbox", str(inventory))


def apply(targets: list[str], deploys: list[str], data: dict, dry: bool = False) -> int:
    groups: dict[str, list[sandbox.Host]] = {}
    for host, member_of in instances():
        for group in member_of:
            groups.setdefault(group, []).append(host)
    harness = Harness(Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "keel")
    # The role's test data is the scenario's (peers included), then the scenario's own data.
    own = ROOT / "roles" / role() / "tests" / "data.py"
    inventory = harness.inventory(groups, data_files=[own] if own.exists() else [], data=data)
    ensure_secrets(inventory)
    run = harness.run(inventory, [deploy_file(t) for t in targets] + deploys, dry=dry, diff=dry)
    print(run.stderr, file=sys.stderr)
    print(json.dumps({"changed": run.changed(), "failed_hosts": run.failed_hosts()}))
    return 0 if run.returncode == 0 and not run.failed_hosts() else 1


def verify() -> int:
    name = role()
    where = set(_groups(name, ("all",)))
    hosts = [host for host, member_of in instances() if "all" in where or where & set(member_of)]
    tests = ROOT / "roles" / name / "tests"
    if not list(tests.glob("test_*.py")):
        print(f"no testinfra tests in {tests.relative_to(ROOT)}: nothing to verify")
        return 0
    result = run_testinfra(hosts, tests)
    print(result.stdout + result.stderr)
    return result.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m keel.lab.testing.molecule",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("setup")
    sub.add_parser("boot").add_argument("names", nargs="+")
    run = sub.add_parser("apply")
    run.add_argument("targets", nargs="*", help="roles or deploy files to run")
    run.add_argument("--deploy", action="append", default=[], help="another deploy file")
    run.add_argument("--data", type=json.loads, default={}, help="scenario data (JSON)")
    run.add_argument("--dry", action="store_true", help="plan only (molecule check)")
    sub.add_parser("verify")
    args = parser.parse_args(argv)
    try:
        if args.command == "setup":
            print(json.dumps(setup()))
        elif args.command == "boot":
            boot(args.names)
        elif args.command == "apply":
            return apply(args.targets, args.deploy, args.data, args.dry)
        elif args.command == "verify":
            return verify()
    except KeelError as exc:
        print(f"keel: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
