"""The `keel` command."""

from __future__ import annotations

import argparse
import os
import sys

from keel.errors import KeelError

SANDBOX_FLAGS = {"--privileged": "privileged", "--fresh": "fresh"}


def _sandbox(args: argparse.Namespace) -> int:
    from keel import sandbox

    if args.action != "ssh":
        # names takes the rest of the line (for ssh's command), so flags after the action
        # land in it: `keel sandbox up --privileged c-app1`.
        for flag in [n for n in args.names if n in SANDBOX_FLAGS]:
            setattr(args, SANDBOX_FLAGS[flag], True)
        args.names = [n for n in args.names if n not in SANDBOX_FLAGS]

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


def _status(args: argparse.Namespace) -> int:
    from keel import rollout

    print(rollout.status_table(rollout.status(rollout.inventory_path(args.inventory),
                                              args.limit or [])))
    return 0


def _rollout(args: argparse.Namespace) -> int:
    from keel import rollout

    result = rollout.rollout(rollout.inventory_path(args.inventory), group=args.group,
                             batch=args.batch, rollback=args.rollback,
                             log=lambda m: print(f"keel: {m}", file=sys.stderr))
    if not result.ok:
        print(result.reason.rstrip(), file=sys.stderr)
        hint = "" if args.rollback else f"; roll back with: keel rollout {args.inventory} " \
            "--rollback"
        print(f"keel: rollout stopped at {', '.join(result.failed)}{hint}", file=sys.stderr)
        return 1
    print(f"keel: {'rolled back' if args.rollback else 'updated'}: {', '.join(result.done)}",
          file=sys.stderr)
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

    st = sub.add_parser("status", help="every app service per host: image, state, health, "
                        "restarts (read only)")
    st.add_argument("inventory", help="environment (inventories/<env>.py) or inventory file")
    st.add_argument("--limit", action="append", help="only these hosts (repeatable)")
    st.set_defaults(func=_status)

    ro = sub.add_parser("rollout", help="apply deploys/app.py one batch of hosts at a time, "
                        "stopping at the first unhealthy batch")
    ro.add_argument("inventory", help="environment (inventories/<env>.py) or inventory file")
    ro.add_argument("--batch", type=int, default=1, help="hosts per batch (default 1)")
    ro.add_argument("--group", default="app", help="inventory group to roll (default app)")
    ro.add_argument("--rollback", action="store_true",
                    help="return updated hosts to the definitions they replaced")
    ro.set_defaults(func=_rollout)
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
