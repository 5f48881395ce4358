"""The `keel` command."""

from __future__ import annotations

import argparse
import os
import sys

from keel.errors import KeelError


def _sandbox(args: argparse.Namespace) -> int:
    from keel import sandbox

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
    from keel import vm

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
    from keel.secrets import store

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
        from keel.inventory import load
        from keel.secrets import check_hosts

        inventory = args.key or f"inventories/{env}.py"
        missing = sorted({p.key for p in check_hosts(load(inventory), decrypt=False)})
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

    from keel.secrets import store

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


def _ca(args: argparse.Namespace) -> int:
    from keel import ca

    if args.action == "init":
        print(ca.init(args.env, days=args.days, force=args.force), end="")
    else:
        print(ca.cert(args.env), end="")
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

    ca = sub.add_parser("ca", help="the environment's internal certificate authority")
    ca.add_argument("action", choices=["init", "cert"],
                    help="init: create it (key age-encrypted in secrets/<env>.yaml); "
                         "cert: print its certificate")
    ca.add_argument("env", help="environment (inventory name)")
    ca.add_argument("--days", type=int, default=3650, help="for init: CA lifetime")
    ca.add_argument("--force", action="store_true", help="for init: replace an existing CA")
    ca.set_defaults(func=_ca)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeelError as exc:
        print(f"keel: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
