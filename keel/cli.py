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
