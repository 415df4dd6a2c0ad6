"""`sandbox/demo`: a short narrated session of ceo's main job against the sandbox.

It brings the sandbox up and runs the real `ceo` command, as office staff (ofstaff) and as the
systems committee (ctdalek), on names of its own: members alice and bob, club gamedev. It first
removes what an earlier run left of them (tombstones included: a deleted name is not reused), so
it can run any number of times; `--clean` only does that. Between parts it waits for Enter on a
terminal; `--no-pause` (or stdin not a terminal) runs straight through, as the test does.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
import textwrap

from ceo import terms as T

from . import control
from .topology import BASE_DN, HOMES, REALM, STATE, password

MEMBERS = ("alice", "bob")
CLUB = "gamedev"
NAMES = (*MEMBERS, CLUB)
WORK = STATE / "demo"  # the example CSV and its receipt
CSV = WORK / "renewals.csv"
RECEIPT = WORK / "renewals-done.csv"
BOLD, DIM, OFF = "\033[1m", "\033[2m", "\033[0m"


class Failed(Exception):
    pass


class Demo:
    def __init__(self, pause: bool, colour: bool):
        self.pause_between = pause
        self.bold, self.dim, self.off = (BOLD, DIM, OFF) if colour else ("", "", "")
        self.spaced = True  # whether what was printed last ends in a blank line or a heading

    def part(self, title: str):
        print(f"\n{self.bold}== {title}{self.off}")
        self.spaced = True

    def say(self, text: str):
        print(("" if self.spaced else "\n") + textwrap.fill(" ".join(text.split()), width=88))
        self.spaced = False

    def wait(self):
        if self.pause_between:
            try:
                input(f"{self.dim}(Enter to go on, Ctrl-C to stop){self.off} ")
            except EOFError:
                self.pause_between = False

    def ceo(self, user: str, *args: str):
        """Run the real ceo as `user` (their Kerberos ticket), showing the command line and
        its own output; a failure stops the demo."""
        print(f"\n{self.bold}[{user}]$ ceo {shlex.join(args)}{self.off}", flush=True)
        code = subprocess.call(["ceo", *args], env=control.user_env(user))
        self.spaced = False
        if code != 0:
            raise Failed(f"`ceo {shlex.join(args)}` as {user} exited {code}")

    def show_file(self, path):
        print(f"\n{self.dim}--- {path}{self.off}")
        print(path.read_text(), end="", flush=True)
        self.spaced = False


# --- what an earlier run left --------------------------------------------------------------------

def _root_ldap():
    import ldap3
    uri = "ldapi://" + str(STATE / "ldap" / "ldapi").replace("/", "%2F")
    return ldap3.Connection(ldap3.Server(uri, get_info=ldap3.NONE), authentication=ldap3.SASL,
                            sasl_mechanism=ldap3.EXTERNAL, sasl_credentials="", auto_bind=True)


def _account(conn, uid) -> bool:
    conn.search(f"ou=People,{BASE_DN}", f"(uid={uid})", search_scope="LEVEL", attributes=["uid"])
    return bool(conn.response and any(r.get("type") == "searchResEntry" for r in conn.response))


def clean() -> list[str]:
    """Remove the demo's accounts through ceo (as syscom), then, as root, whatever ceo keeps on
    purpose (tombstones, moved-aside homes) or an interrupted run left (databases, principals).
    Returns what was removed, for one line of narration."""
    removed = []
    conn = _root_ldap()
    try:
        for name, verb in [(CLUB, ("groups", "delete")), *((m, ("members", "delete")) for m in MEMBERS)]:
            if _account(conn, name):
                proc = subprocess.run(["ceo", *verb, name, "--yes"], env=control.user_env("ctdalek"),
                                      capture_output=True, text=True)
                if proc.returncode != 0:
                    raise Failed(f"could not delete {name} left by an earlier run: {proc.stderr.strip()}")
                removed.append(name)
        # Deleted names are not reused: ceo leaves a tombstone; the demo takes its own away.
        conn.search(f"ou=Tombstones,{BASE_DN}", "(|" + "".join(f"(uid={n})(cn={n})" for n in NAMES) + ")",
                    search_scope="LEVEL", attributes=["uid"])
        for dn in [r["dn"] for r in conn.response if r.get("type") == "searchResEntry"]:
            conn.delete(dn)
    finally:
        conn.unbind()
    _drop_databases()
    for name in MEMBERS:
        subprocess.run(["kadmin.local", "-q", f"delprinc -force {name}"], capture_output=True)
    deleted = HOMES / ".deleted"
    for name in NAMES:
        for path in [HOMES / name, *(deleted.glob(f"{name}-*") if deleted.is_dir() else [])]:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
    shutil.rmtree(WORK, ignore_errors=True)
    return removed


def _drop_databases():
    """An interrupted run's databases (the accounts' deletion leaves them): dropped as the
    servers' superusers, by the demo's own names only."""
    import psycopg2
    import pymysql
    from psycopg2 import sql as pgsql
    pg = psycopg2.connect(host="/run/postgresql", user="postgres", dbname="postgres")
    pg.autocommit = True
    try:
        with pg.cursor() as cur:
            for name in NAMES:
                cur.execute(pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(name)))
                cur.execute(pgsql.SQL("DROP ROLE IF EXISTS {}").format(pgsql.Identifier(name)))
    finally:
        pg.close()
    my = pymysql.connect(unix_socket="/run/mysqld/mysqld.sock", user="root", autocommit=True)
    try:
        with my.cursor() as cur:
            for name in NAMES:
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
                cur.execute("DROP USER IF EXISTS %s@'%%'", [name])
            # MariaDB keeps '%' among the hosts that may try to log in after the last user@'%' is
            # dropped, until privileges are reloaded (tests/test_sandbox.py checks it refuses them).
            cur.execute("FLUSH PRIVILEGES")
    finally:
        my.close()


# --- the session ---------------------------------------------------------------------------------

def session(d: Demo):
    now = T.current()
    later = [T.add(now, 1), T.add(now, 2)]
    d.say("ceo runs a club's accounts: members and their terms, clubs, groups and positions, databases "
          "and mailing lists. The sandbox is CSC's whole system on this machine (Kerberos, LDAP, homes, "
          "PostgreSQL, MariaDB, Mailman), each host with its own sshd and ceo-helper.")
    d.wait()
    d.part("At the office desk, as office staff (ofstaff)")
    d.say(f"Every command below is the real `ceo`, run inside the sandbox with a Kerberos ticket for "
          f"ofstaff@{REALM}; you can type the same ones after `sandbox/ctl shell`. What ceo can do, "
          "one line per plugin:")
    d.ceo("ofstaff", "--help")
    d.say("Each plugin lists its verbs (`ceo members --help`), and each verb its options. A new member "
          "first: an LDAP account, a principal, a home directory and a subscription, undone together if "
          "a step fails. The temporary password is shown once.")
    d.ceo("ofstaff", "members", "add", "alice", "--cn", "Alice Liddell", "--program", "MAT/Computer Science")
    d.say("A second one, who does not want the general list yet:")
    d.ceo("ofstaff", "members", "add", "bob", "--cn", "Bob Builder", "--program", "ENG/Civil Engineering",
          "--no-subscribe")
    d.say("Looking someone up:")
    d.ceo("ofstaff", "members", "get", "alice")
    d.wait()

    d.part("A term's renewals from a spreadsheet")
    WORK.mkdir(parents=True, exist_ok=True)
    CSV.write_text(f"uid,terms,paid\nalice,2,yes\nbob,{' '.join(later)},yes\n")
    d.say(f"The office collects renewals in a CSV: a `uid` column and an optional `terms` column (a count "
          f"from {now}, or term names). ceo checks every row before writing any, shows its progress, and "
          "writes a receipt; running it again changes nothing twice.")
    d.show_file(CSV)
    d.ceo("ofstaff", "members", "renew", "--csv", str(CSV), "--receipt", str(RECEIPT))
    d.show_file(RECEIPT)
    d.say("Bob changed his mind about the list: first what would happen (--check), then for real.")
    d.ceo("ofstaff", "lists", "subscribe", "csc-general", "bob", "--check")
    d.ceo("ofstaff", "lists", "subscribe", "csc-general", "bob")
    d.wait()

    d.part("The systems committee (ctdalek)")
    d.say("Databases: a MySQL and a PostgreSQL database and user for alice, allowed on that database "
          "only. The password is shown once and written to a file only alice can read.")
    d.ceo("ctdalek", "mysql", "create", "alice")
    d.ceo("ctdalek", "postgresql", "create", "alice")
    d.say("The new executive (president and vice-president may not be left vacant). Holding a position "
          "puts them in the exec group and on the exec list, in the same operation:")
    d.ceo("ctdalek", "positions", "set", "--president", "alice", "--vice-president", "bob")
    d.say("A club account, with a shared home and a sudo rule for its members, and its first member:")
    d.ceo("ctdalek", "groups", "add", CLUB, "--description", "Game Development Club")
    d.ceo("ctdalek", "groups", "addmember", CLUB, "alice")
    d.ceo("ctdalek", "groups", "get", CLUB)
    d.say("Cron locks accounts whose membership lapsed, after a grace period; --check only says what "
          "it would do:")
    d.ceo("ctdalek", "members", "expire", "--check")
    d.wait()

    d.part("Your turn")
    d.say("The office UI: `ceo` alone on a terminal opens menus and forms made for the desk "
          "(what each person may do decides what they see):")
    print("    sandbox/ctl shell            # a shell inside the sandbox, with ofstaff's ticket; then: ceo")
    print("    sandbox/ctl run --as ofstaff -- ceo")
    d.say("A shell inside the sandbox with someone's Kerberos ticket (ofstaff by default; ctdalek is "
          "syscom, regular1 a member), where every command of the README works:")
    print("    sandbox/ctl shell --as ctdalek")
    print("    klist; ceo --help; ceo whoami; ceo members get alice")
    print("    kinit alice                  # with alice's temporary password from above (you set a new one)")
    d.say(f"The seeded people's passwords are their uid and -sandbox-pw (e.g. {password('regular1')}).")
    d.say("When you are done:")
    print("    sandbox/demo --clean         # remove the demo's alice, bob and gamedev (the next run does too)")
    print("    sandbox/ctl down             # stop the sandbox and remove everything it added")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="sandbox/demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-pause", action="store_true", help="do not wait for Enter between parts")
    parser.add_argument("--clean", action="store_true", help="only remove what the demo made, then stop")
    args = parser.parse_args(argv)
    d = Demo(pause=not args.no_pause and sys.stdin.isatty(), colour=sys.stdout.isatty())
    try:
        pid, timings = control.up()
        print(f"sandbox up (supervisor pid {pid})" if timings is None else
              f"sandbox up in {timings['total']:.1f} s (supervisor pid {pid})")
        control.join(pid)
        control.testkit_repair()
        removed = clean()
        if removed:
            print(f"removed {', '.join(removed)} left by an earlier run of the demo")
        if args.clean:
            return 0
        session(d)
    except (control.SandboxError, Failed) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ndemo stopped; `sandbox/demo` again starts over", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
