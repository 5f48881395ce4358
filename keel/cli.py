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
        machine = vm.up(args.names[0] if args.names else vm.DEFAULT_NAME, fresh=args.fresh,
                        log=log)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="keel", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sb = sub.add_parser("sandbox", help="local Debian 12 hosts (podman, systemd, SSH)")
    sb.add_argument("action", choices=["up", "down", "status", "ssh", "image"])
    sb.add_argument("names", nargs=argparse.REMAINDER,
                    help="hosts or topologies (prod); for ssh: host and command")
    sb.add_argument("--privileged", action="store_true",
                    help="start hosts privileged, to run containers inside them")
    sb.add_argument("--fresh", action="store_true", help="recreate hosts that are running")
    sb.set_defaults(func=_sandbox)

    vm = sub.add_parser("vm", help="bare Debian 12 VMs (QEMU, cloud-init, SSH on 127.0.0.1)")
    vm.add_argument("action", choices=["up", "down", "status", "ssh", "image"])
    vm.add_argument("names", nargs=argparse.REMAINDER,
                    help="VM names (up: one, default vm-aio); for ssh: [USER@]VM and command")
    vm.add_argument("--fresh", action="store_true", help="up: recreate a VM that exists")
    vm.set_defaults(func=_vm)
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
