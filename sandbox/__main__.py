"""`sandbox/ctl up|down|status|shell|run|env`: the whole CSC cluster on loopback addresses."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from . import control
from .topology import HOSTS, REALM, REPO, STATE, fqdn


def cmd_up(args) -> int:
    pid, timings = control.up()
    if timings is None:
        control.join(pid)
        # A test session that was killed may have left its test plugin in the site dir.
        control.testkit_repair()
        print(f"sandbox already up (supervisor pid {pid})")
        return 0
    print(f"sandbox up in {timings.pop('total'):.2f} s (supervisor pid {pid}); ready at:")
    for name, t in sorted(timings.items(), key=lambda kv: kv[1]):
        print(f"  {t:6.2f} s  {name}")
    print(f"memory (PSS): {control.memory_mb(pid):.0f} MB")
    return 0


def cmd_down(args) -> int:
    took = control.down()
    print("sandbox was not up" if took is None else f"sandbox down in {took:.2f} s")
    return 0


def cmd_status(args) -> int:
    pid = control.running_pid()
    if not pid:
        print("sandbox is down")
        return 3
    control.join(pid)
    results = control.probe_all()
    for name, ok in results.items():
        print(f"  {'ok  ' if ok else 'FAIL'}  {name}")
    print(f"supervisor pid {pid}, memory (PSS) {control.memory_mb(pid):.0f} MB, state {STATE}")
    return 0 if all(results.values()) else 1


def cmd_leftovers(args) -> int:
    found = control.leftovers()
    for item in found:
        print(item)
    print(f"{len(found)} leftovers")
    return 1 if found else 0


def cmd_service(args) -> int:
    _need_pid()
    control.service(args.cmd, args.service)
    print(f"{args.service}: {args.cmd}{'ped' if args.cmd == 'stop' else 'ed'}")
    return 0


def _need_pid() -> int:
    pid = control.running_pid()
    if not pid:
        raise control.SandboxError("the sandbox is down: run `sandbox/ctl up` first")
    return pid


def cmd_shell(args) -> int:
    pid = _need_pid()
    print(f"sandbox shell as {args.user}@{REALM}; hosts: {', '.join(fqdn(h) for h in HOSTS)}; exit to leave",
          file=sys.stderr)
    os.environ["PS1"] = f"[sandbox {args.user}] \\w\\$ "
    return control.nsenter(pid, args.user, ["bash", "--norc", "-i"])


def cmd_run(args) -> int:
    pid = _need_pid()
    if not args.command:
        raise control.SandboxError("run: give a command after --")
    return control.nsenter(pid, args.user, args.command)


def cmd_env(args) -> int:
    """For a shell outside the namespace: Kerberos and ceo settings (names need ansible_host)."""
    _need_pid()
    print(f"export KRB5_CONFIG={STATE / 'etc' / 'krb5.conf'}")
    print(f"export KRB5CCNAME=FILE:{STATE / 'ccache' / args.user}")
    print(f"export CEO_INVENTORY={REPO / 'hosts.ini'}")
    print(f"export CEO_CONFIG={STATE / 'etc' / 'csc' / 'ceo.ini'}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="sandbox/ctl", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    sub.add_parser("up", help="build and start the cluster (harmless if it is up)").set_defaults(fn=cmd_up)
    sub.add_parser("down", help="stop it and remove everything it added").set_defaults(fn=cmd_down)
    sub.add_parser("status", help="probe every service").set_defaults(fn=cmd_status)
    for name, help_ in (("stop", "stop one service (failure injection)"), ("start", "start it again")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("service", help="krb5kdc, kadmind, slapd, nslcd, postgresql, mariadb, mailman, smtp-sink, sshd@HOST")
        p.set_defaults(fn=cmd_service)
    sub.add_parser("leftovers", help="list anything a stopped sandbox left behind").set_defaults(fn=cmd_leftovers)
    for name, fn, help_ in (("shell", cmd_shell, "a shell inside, with a Kerberos ticket"),
                            ("run", cmd_run, "run a command inside: run [--as USER] -- CMD..."),
                            ("env", cmd_env, "print exports for a shell outside the namespace")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--as", dest="user", default="ofstaff",
                       help="whose ticket (seeded: ctdalek syscom, ofstaff office, regular1, ...)")
        if name == "run":
            p.add_argument("command", nargs=argparse.REMAINDER)
        p.set_defaults(fn=fn)
    args = parser.parse_args(argv)
    if getattr(args, "command", None) and args.command[0] == "--":
        args.command = args.command[1:]
    try:
        return args.fn(args)
    except control.SandboxError as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `sandbox/ctl up | head -1`
        return 0


if __name__ == "__main__":
    sys.exit(main())
