"""The `keel` command."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from keel import ROOT
from keel.errors import KeelError


def _sandbox(args: argparse.Namespace) -> int:
    from keel.lab import sandbox

    if args.action == "up":
        for host in sandbox.up(args.names or ["prod"], privileged=args.privileged,
                               fresh=args.fresh, log=lambda m: print(m, file=sys.stderr)):
            print(f"{host.name}\t{host.address}\t{'privileged' if host.privileged else ''}")
    elif args.action == "down":
        for name in sandbox.down(args.names or None):
            print(f"removed {name}")
    elif args.action == "status":
        for host in sandbox.hosts().values():
            print(f"{host.name}\t{host.state}\t{host.address or '-'}\t"
                  f"{'privileged' if host.privileged else ''}")
    elif args.action == "image":
        print(sandbox.build_image(log=lambda m: print(m, file=sys.stderr)))
    elif args.action == "ssh":
        if not args.names:
            raise KeelError("keel sandbox ssh NAME [COMMAND...]")
        host = sandbox.hosts().get(args.names[0])
        if host is None or not host.address:
            raise KeelError(f"sandbox host {args.names[0]} is not running")
        argv = host.ssh_argv(*args.names[1:])
        os.execvp(argv[0], argv)
    return 0


def _vm(args: argparse.Namespace) -> int:
    from keel.lab import vm

    log = lambda m: print(m, file=sys.stderr)  # noqa: E731
    if args.action == "up":
        machine = vm.up(args.names or vm.DEFAULT_NAME, fresh=args.fresh, log=log)
        print(f"{machine.name}\t127.0.0.1:{machine.port}")
    elif args.action == "down":
        for name in vm.down(args.names or None):
            print(f"removed {name}")
    elif args.action == "status":
        for machine in vm.vms().values():
            print(f"{machine.name}\t{'running' if machine.running else 'stopped'}\t"
                  f"127.0.0.1:{machine.port}\t{machine.image}")
    elif args.action == "image":
        print(vm.build_image(log=log))
    elif args.action == "ssh":
        if not args.names:
            raise KeelError("keel vm ssh [USER@]NAME [COMMAND...]")
        user, _, name = args.names[0].rpartition("@")
        machine = vm.get(name)
        # Default: keel's admin once base made it, else the image's default user.
        user = user or vm.login_user(machine, vm.login_candidates(vm.host_data(machine)))
        argv = machine.ssh_argv(user, *args.names[1:])
        os.execvp(argv[0], argv)
    return 0


def _data(args: argparse.Namespace) -> int:
    from keel.core.checks import Fleet, secret_names
    from keel.core.data import _loc, masked
    from keel.core.inventory import load

    env = load(args.env)
    hosts = [env.host(args.host)] if args.host else env.hosts
    problems = env.problems
    broken = {problem.host for problem in problems}
    fleet = Fleet(env.hosts)
    shown = {}
    for host in hosts:
        # Values that are names of secrets (in secrets/<env>.yaml) are shown.
        values = masked(host, set() if host.name in broken else secret_names(fleet, host))
        shown[host.name] = {}
        for key in sorted(values):
            # A merged key that several files set: the part each file set, by its path.
            parts = [(_loc((key, *sub)), value, source) for sub, value, source
                     in host.split_sources(key, values[key])
                     if not (args.no_defaults and source.endswith("(default)"))]
            if parts:
                shown[host.name][key] = {"value": values[key], "source": host.sources[key],
                                         "parts": parts}
    if args.json:
        print(json.dumps({name: {"env": env.env, "groups": host.groups, "data": {
            key: {"value": entry["value"], "source": entry["source"]} | (
                {"sources": {path: source for path, _, source in entry["parts"]}}
                if len(entry["parts"]) > 1 or entry["parts"][0][0] != key else {})
            for key, entry in shown[name].items()}}
            for name, host in ((h.name, h) for h in hosts)}, indent=2, default=str))
    else:
        for host in hosts:
            print(f"{host.name}  (env {env.env}; groups {', '.join(host.groups)}; "
                  f"roles {', '.join(host.roles)})")
            rows = [(path, repr(value), source) for entry in shown[host.name].values()
                    for path, value, source in entry["parts"]]
            width = max((len(key) for key, _, _ in rows), default=0)
            values = min(max((len(value) for _, value, _ in rows), default=0), 48)
            for key, value, source in rows:
                print(f"  {key:<{width}}  {value:<{values}}  # {source}")
            print()
    if problems:
        from keel.core.data import format_problems

        print(format_problems(problems).replace("; no host was contacted", ""),
              file=sys.stderr)
        return 2
    return 0


def _plan(args: argparse.Namespace):
    from keel.cli import plan
    from keel.core.inventory import inventory_path

    inventory = inventory_path(args.env)
    return inventory, plan.run(inventory, args.deploy or ["deploys/site.py"], args.limit)


def _plan_cmd(args: argparse.Namespace) -> int:
    from keel.cli import plan

    inventory, result = _plan(args)
    markdown, document = plan.write(result, Path(args.out), inventory.stem)
    print(json.dumps(result.to_json(), indent=2) if args.json else result.to_markdown(), end="")
    print(f"keel: wrote {markdown} and {document}", file=sys.stderr)
    return 0


def _drift(args: argparse.Namespace) -> int:
    _, result = _plan(args)
    drifted = result.drifted
    if args.json:
        print(json.dumps({"drift": bool(drifted), **result.to_json()}, indent=2))
    else:
        for name, host in drifted.items():
            print(f"{name}: {len(host.changes)} operation{'s' * (len(host.changes) != 1)} "
                  "would change")
            for change in host.changes:
                print(f"  {change.role} | {change.operation}")
            for diff in host.files:
                print(f"    {diff.action} {diff.path}")
        print(f"keel: drift on {len(drifted)} of {len(result.hosts)} hosts" if drifted
              else f"keel: no drift on {len(result.hosts)} hosts "
                   f"({', '.join(result.hosts) or 'none'})")
    return 2 if drifted else 0


def _read_value(prompt: str) -> str:
    """A secret value from stdin (piped) or a prompt; never from argv."""
    if sys.stdin.isatty():
        import getpass

        first = getpass.getpass(f"{prompt}: ")
        if getpass.getpass("again: ") != first:
            raise KeelError("the two values differ")
        return first
    return sys.stdin.read().rstrip("\n")


def _secrets(args: argparse.Namespace) -> int:
    from keel.core import store

    env = args.env
    if args.action == "init":
        path, public, created = store.create_identity()
        print(f"{'created' if created else 'using'} identity {path}\npublic key: {public}")
        if not store.recipients(env):
            store.set_recipients(env, [public])
            print(f"{env}: recipients are now [{public}]")
        elif public not in store.recipients(env):
            print(f"{env}: you are not a recipient yet; someone who is runs\n"
                  f"  keel secrets add-recipient {env} {public} && keel secrets rekey {env}")
    elif args.action == "set":
        store.put(env, _arg(args, "key"), _read_value(args.key))
    elif args.action == "get":
        print(store.value(env, _arg(args, "key")))
    elif args.action == "view":
        for name in sorted(store.load(env)):
            print(f"{name}: {store.value(env, name)}")
    elif args.action == "edit":
        _edit(env)
    elif args.action == "generate":
        store.put(env, _arg(args, "key"), store.generate(args.length))
    elif args.action == "ensure":
        from keel.core.checks import Fleet, secret_names
        from keel.core.data import format_problems, validate_host
        from keel.core.inventory import load

        hosts = load(args.key or f"inventories/{env}.py").hosts
        problems = [problem for host in hosts for problem in validate_host(host)]
        if problems:
            raise KeelError(format_problems(problems).removeprefix("keel: "))
        # Problems name the data key that asks for a secret: the names come from the roles.
        fleet = Fleet(hosts)
        missing = sorted({name for host in hosts for name in secret_names(fleet, host)}
                         - set(store.names(env)))
        for name in missing:
            store.put(env, name, store.generate(args.length))
            print(f"generated {name}")
    elif args.action == "rekey":
        print(f"re-encrypted {store.rekey(env)} secrets of {env} to "
              f"{len(store.recipients(env))} recipients")
    elif args.action in ("add-recipient", "remove-recipient"):
        key = _arg(args, "key")
        current = store.recipients(env)
        updated = current + [key] if args.action == "add-recipient" else \
            [k for k in current if k != key]
        store.set_recipients(env, updated)
        print(f"{env}: {len(updated)} recipients; run `keel secrets rekey {env}` to re-encrypt")
    return 0


def _arg(args: argparse.Namespace, name: str) -> str:
    value = getattr(args, name)
    if not value:
        raise KeelError(f"keel secrets {args.action} needs {name.upper()}")
    return value


def _edit(env: str) -> None:
    """Decrypt to a private temp file, run $EDITOR, re-encrypt what changed."""
    import subprocess
    import tempfile

    import yaml

    from keel.core import store

    before = {name: store.value(env, name) for name in store.load(env)}
    with tempfile.TemporaryDirectory(prefix="keel-secrets-") as tmp:  # 0700
        path = os.path.join(tmp, f"{env}.yaml")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(before, f, default_flow_style=False)
        editor = os.environ.get("EDITOR", "vi")
        if subprocess.call([*editor.split(), path]) != 0:
            raise KeelError("editor failed; nothing changed")
        with open(path) as f:
            after = yaml.safe_load(f) or {}
    if not isinstance(after, dict):
        raise KeelError("the edited file is not a mapping; nothing changed")
    data = {name: stored for name, stored in store.load(env).items() if name in after}
    save = dict(data)
    for name, text in after.items():
        if before.get(name) != str(text):
            save[name] = store.encrypt(env, str(text))
    store.save(env, save)


def _status(args: argparse.Namespace) -> int:
    from keel.cli import rollout
    from keel.core.inventory import inventory_path

    inventory = inventory_path(args.inventory)
    print(rollout.status_table(rollout.status(inventory, args.limit or [])))
    print()
    print(rollout.releases_table(rollout.releases(inventory, args.limit or [])))
    return 0


def _rollout(args: argparse.Namespace) -> int:
    from keel.cli import rollout
    from keel.core.inventory import inventory_path

    result = rollout.rollout(inventory_path(args.inventory), group=args.group,
                             batch=args.batch, rollback=args.rollback, canary=args.canary,
                             log=lambda m: print(f"keel: {m}", file=sys.stderr))
    if not result.ok:
        print(result.reason.rstrip(), file=sys.stderr)
        left = [h for h in result.failed if h not in result.rolled_back]
        hint = f"; roll back with: keel rollout {args.inventory} --rollback" \
            if left and not args.rollback else ""
        print(f"keel: rollout stopped at {', '.join(result.failed)}{hint}", file=sys.stderr)
        return 1
    print(f"keel: {'rolled back' if args.rollback else 'updated'}: {', '.join(result.done)}",
          file=sys.stderr)
    return 0


def _ca(args: argparse.Namespace) -> int:
    from keel.core import ca

    if args.action == "init":
        print(ca.init(args.env, days=args.days, force=args.force), end="")
    elif args.action == "ensure":
        print(ca.ensure(args.env), end="")
    else:
        print(ca.cert(args.env), end="")
    return 0


def _check(args: argparse.Namespace) -> int:
    from keel.cli.check import check
    from keel.core.inventory import load

    results = check(load(args.env), run=args.run)
    for result in results:
        if result.problems:
            for line in result.problems:
                print(line)
        else:
            print(f"{result.host}: ok ({', '.join(result.ok)})")
    return 1 if any(r.problems for r in results) else 0


def _docs(args: argparse.Namespace) -> int:
    from keel.core import docs

    if args.check:
        stale = docs.stale()
        for each in stale:
            print(f"keel: {docs.readme(each).relative_to(ROOT)} is stale: run `keel docs`",
                  file=sys.stderr)
        return 1 if stale else 0
    for each in docs.write():
        print(f"updated {docs.readme(each).relative_to(ROOT)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="keel", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sb = sub.add_parser("sandbox", help="local Debian 12 hosts (podman, systemd, SSH)")
    actions = sb.add_subparsers(dest="action", required=True)
    for name, text in [("up", "start hosts or topologies (default: prod)"),
                       ("down", "remove hosts (default: all of keel's, and its network)")]:
        action = actions.add_parser(name, help=text)
        action.add_argument("names", nargs="*", help="host or topology names (prod)")
        if name == "up":
            action.add_argument("--privileged", action="store_true",
                                help="start hosts privileged, to run containers inside them")
            action.add_argument("--fresh", action="store_true",
                                help="recreate hosts that are running")
    actions.add_parser("status", help="keel's hosts, state and address")
    actions.add_parser("image", help="build the host image if its recipe changed")
    ssh = actions.add_parser("ssh", help="ssh to a host as root: keel sandbox ssh NAME [CMD...]")
    ssh.add_argument("names", nargs=argparse.REMAINDER, help="host, then an optional command")
    sb.set_defaults(func=_sandbox)

    vm = sub.add_parser("vm", help="bare Debian 12 VMs (QEMU, cloud-init, SSH on 127.0.0.1)")
    actions = vm.add_subparsers(dest="action", required=True)
    up = actions.add_parser("up", help="boot a VM as a fresh cloud instance (default vm-aio); "
                                       "a running one is reused")
    up.add_argument("names", nargs="?", help="VM name")
    up.add_argument("--fresh", action="store_true", help="recreate the VM if it exists")
    down = actions.add_parser("down", help="stop and remove VMs (default: all of keel's)")
    down.add_argument("names", nargs="*", help="VM names")
    actions.add_parser("status", help="keel's VMs, state and SSH port")
    actions.add_parser("image", help="build the VM disk image if its recipe changed")
    ssh = actions.add_parser("ssh", help="keel vm ssh [USER@]NAME [CMD...] (default user: "
                                         "keel's admin once base made it, else debian)")
    ssh.add_argument("names", nargs=argparse.REMAINDER, help="VM, then an optional command")
    vm.set_defaults(func=_vm)

    se = sub.add_parser("secrets", help="age-encrypted secrets per environment")
    se.add_argument("action", choices=["init", "set", "get", "view", "edit", "generate",
                                       "ensure", "rekey", "add-recipient", "remove-recipient"])
    se.add_argument("env", help="environment (inventory name)")
    se.add_argument("key", nargs="?", help="secret name, or recipient public key, or for "
                                           "ensure an inventory path")
    se.add_argument("--length", type=int, default=32, help="for generate/ensure")
    se.set_defaults(func=_secrets)

    st = sub.add_parser("status", help="every app service per host: image, state, health, "
                        "restarts; each host's current and previous release (read only)")
    st.add_argument("inventory", help="environment (inventories/<env>.py) or inventory file")
    st.add_argument("--limit", action="append", help="only these hosts (repeatable)")
    st.set_defaults(func=_status)

    ro = sub.add_parser("rollout", help="apply deploys/app.py one batch of hosts at a time, "
                        "drained from their edges and gated; a host that fails its gate is "
                        "rolled back and the release stops")
    ro.add_argument("inventory", help="environment (inventories/<env>.py) or inventory file")
    ro.add_argument("--batch", type=int, default=1, help="hosts per batch (default 1)")
    ro.add_argument("--group", default="app", help="inventory group to roll (default app)")
    ro.add_argument("--rollback", action="store_true",
                    help="return updated hosts to the definitions they replaced")
    ro.add_argument("--canary", metavar="N%|HOST",
                    help="release the group's first host (or HOST) first, give it N%% of each "
                         "upstream's requests for the upstream's canary hold, and promote it "
                         "or roll it back by its 5xx rate and health")
    ro.set_defaults(func=_rollout)

    ca = sub.add_parser("ca", help="the environment's internal certificate authority")
    ca.add_argument("action", choices=["init", "ensure", "cert"],
                    help="init: create it (key age-encrypted in secrets/<env>.yaml); "
                         "ensure: create it if the environment has none; "
                         "cert: print its certificate")
    ca.add_argument("env", help="environment (inventory name)")
    ca.add_argument("--days", type=int, default=3650, help="for init: CA lifetime")
    ca.add_argument("--force", action="store_true", help="for init: replace an existing CA")
    ca.set_defaults(func=_ca)

    check = sub.add_parser("check", help="HTTPS through each agent host's edge to the agent's "
                                         "/health; exit 1 naming each broken link")
    check.add_argument("env", help="environment (inventories/<env>.py) or an inventory file")
    check.add_argument("--run", action="store_true",
                       help="also submit a run and read it back from the database and storage")
    check.set_defaults(func=_check)

    docs = sub.add_parser("docs", help="rewrite each role README's variable table from its "
                                       "settings (schema.py)")
    docs.add_argument("--check", action="store_true", help="only report stale READMEs (exit 1)")
    docs.set_defaults(func=_docs)

    env_help = "environment (inventories/<env>.py) or an inventory file"
    data = sub.add_parser("data", help="each host's merged data and the file each value came from")
    data.add_argument("env", help=env_help)
    data.add_argument("host", nargs="?", help="one host (default: all)")
    data.add_argument("--no-defaults", action="store_true",
                      help="hide values that come from role defaults")
    data.add_argument("--json", action="store_true", help="print JSON")
    data.set_defaults(func=_data)

    for name, func, text in [
        ("plan", _plan_cmd, "what a converge would change, per host and role (a dry run)"),
        ("drift", _drift, "hosts whose state differs from the code; exit 2 on drift, 0 if none"),
    ]:
        cmd = sub.add_parser(name, help=text, description=text)
        cmd.add_argument("env", help=env_help)
        cmd.add_argument("--deploy", action="append",
                         help="deploy file(s) to plan (default: deploys/site.py)")
        cmd.add_argument("--limit", help="hosts or groups, as pyinfra's --limit")
        cmd.add_argument("--json", action="store_true", help="print JSON")
        if name == "plan":
            cmd.add_argument("--out", default=str(ROOT / ".keel" / "plans"),
                             help="directory for <env>.md and <env>.json (default: .keel/plans)")
        cmd.set_defaults(func=func)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeelError as exc:
        print(f"keel: {exc}", file=sys.stderr)
        return 1

