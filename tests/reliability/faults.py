"""The machinery of the fault matrix (test_faults.py): faults injected into the sandbox's real
services at a chosen request of a `ceo` command run in this process, and what every service
holds before and after, as a set of named changes.

A command's requests are counted as the client sends them (Session._exchange and stream). A
fault is applied before request i is sent, during it (when the helper's first event for it
arrives, i.e. it has done part of it; or just after it is sent if it reports nothing before
its reply), or after the last request's reply.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import threading
from dataclasses import dataclass, field

from sandbox import control, topology

from ceo import cli, transport

SANDBOX_SERVICES = ("slapd", "uwldap", "krb5kdc", "kadmind", "mailman", "mariadb", "postgresql", "smtp-sink")


# --- processes of the sandbox -------------------------------------------------------------------

def _cmdline(pid) -> list[bytes]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def _uts(pid) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/uts")
    except OSError:
        return None


def _ppid(pid) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def _pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def host_uts(host: str) -> str:
    """The UTS namespace of `host`'s sshd (each host's sshd has its own: its host name)."""
    want = f"{topology.STATE}/hosts/{host}/sshd_config".encode()  # this sandbox's, not another's
    for pid in _pids():
        line = b" ".join(_cmdline(pid))
        if line.startswith(b"sshd: ") and b"listener" in line and want in line:
            return _uts(pid)
    raise AssertionError(f"no sshd listener for {host}")


def helper_pids(host: str) -> list[int]:
    """The helper processes (python, under sudo) running on `host` now."""
    uts = host_uts(host)
    return [pid for pid in _pids()
            if (argv := _cmdline(pid)) and argv[0].endswith(b"python") and len(argv) > 1
            and argv[1].endswith(b"ceo-helper") and _uts(pid) == uts]


def session_sshd(helper: int) -> int | None:
    """The sshd process of the connection a helper runs in (`sshd: user@notty`)."""
    pid = helper
    for _ in range(6):
        pid = _ppid(pid)
        if pid <= 1:
            return None
        argv = _cmdline(pid)
        if argv and argv[0].startswith(b"sshd: ") and b"@" in argv[0]:
            return pid
    return None


# --- faults -------------------------------------------------------------------------------------

@dataclass
class Fault:
    """`target`: a sandbox service (slapd, ...), `helper@HOST` or `sshd@HOST`. `apply()` stops
    (before/after) or kills (during) it; `restore()` brings it back for the next command."""
    target: str
    during: bool = False
    applied: list = field(default_factory=list)

    @property
    def host(self) -> str | None:
        return self.target.split("@", 1)[1] if "@" in self.target else None

    def apply(self):
        kind = self.target.split("@", 1)[0]
        if kind == "helper":
            for pid in helper_pids(self.host):
                os.kill(pid, signal.SIGKILL)
                self.applied.append(pid)
        elif kind == "sshd" and self.during:  # the connection's own sshd (the listener has no part in it)
            for pid in filter(None, (session_sshd(h) for h in helper_pids(self.host))):
                os.kill(pid, signal.SIGKILL)
                self.applied.append(pid)
        else:  # a service, or sshd's listener before any session is open
            control.service("kill" if self.during else "stop", self.target)
            self.applied.append(self.target)

    def restore(self):
        if self.target in SANDBOX_SERVICES or (self.target.startswith("sshd@") and not self.during):
            control.service("start", self.target)
        if self.target == "slapd":
            users_resolve_again()


def users_resolve_again(user: str = "ctdalek", patience: float = 30.0):
    """After slapd was down for more than nslcd's reconnect_retrytime (10 s, reached on a slow
    machine), nslcd tries LDAP again only once per that time and fails every lookup meanwhile:
    sshd then refuses every login. The next cell waits until users are names again."""
    import pwd
    import time
    deadline = time.monotonic() + patience
    while True:
        try:
            pwd.getpwnam(user)
            return
        except KeyError:
            if time.monotonic() > deadline:
                raise AssertionError(f"{user} does not resolve {patience:.0f} s after slapd came back") from None
            time.sleep(0.1)


@dataclass
class Injection:
    """Apply `fault` at request `at` (0-based, in the order the client sends them), `when` one
    of before, during, after; `at` None with `when` before: before the command starts."""
    fault: Fault
    at: int | None
    when: str
    sent: list = field(default_factory=list)  # (qualname, host) of each request, as sent
    fired: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)  # the timer's thread may fire too

    def fire(self):
        with self.lock:
            if not self.fired:
                self.fired = True
                self.fault.apply()


@contextlib.contextmanager
def injected(injection: Injection | None, sent: list):
    """Count the command's requests into `sent`; fire the injection where it says."""
    exchange, stream = transport.Session._exchange, transport.Session.stream

    def due(index, when):
        return injection is not None and injection.at == index and injection.when == when

    def on_first_event(index, on_event):
        def seen(*args):
            if due(index, "during"):
                injection.fire()
            if on_event:
                on_event(*args)
        return seen

    def _exchange(session, message, on_event):
        if "plugin" not in message:  # undo and release: not steps of their own
            return exchange(session, message, on_event)
        index = len(sent)
        sent.append((f"{message['plugin']}.{message['verb']}", session.host.name))
        if due(index, "before"):
            injection.fire()
        timer = None
        if due(index, "during"):
            timer = threading.Timer(0.005, injection.fire)  # if no event comes first
            timer.start()
        try:
            return exchange(session, message, on_first_event(index, on_event))
        finally:
            if timer is not None:  # answered before the timer: the fault lands as it ends (fire runs once)
                timer.cancel()
                injection.fire()
            if due(index, "after"):
                injection.fire()

    def _stream(session, requests, on_reply, on_event=None, **kw):
        index = len(sent)
        plugin, verb = requests[0][:2] if requests else ("?", "?")
        sent.append((f"{plugin}.{verb}", session.host.name))
        if due(index, "before"):
            injection.fire()
        replies = []

        def reply(i, outcome):  # during a batch: after its third answer, with more in flight
            replies.append(i)
            if len(replies) == 3 and due(index, "during"):
                injection.fire()
            on_reply(i, outcome)
        try:
            return stream(session, requests, reply, on_event, **kw)
        finally:
            if due(index, "after"):
                injection.fire()

    transport.Session._exchange, transport.Session.stream = _exchange, _stream
    try:
        if injection is not None and injection.at is None:
            injection.fire()
        yield
    finally:
        transport.Session._exchange, transport.Session.stream = exchange, stream


def run_ceo(argv, injection=None, timeout=120) -> tuple[int, str, str, list]:
    """`ceo ARGV` in this process (the ticket is KRB5CCNAME's), with a fault injected:
    (exit code, stdout, stderr, the requests it sent). A hang is an error (SIGALRM)."""
    out, err, sent = io.StringIO(), io.StringIO(), []

    def hung(*_):
        raise TimeoutError(f"ceo {' '.join(argv)} still running after {timeout} s")
    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(timeout)
    try:
        with injected(injection, sent), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main(argv)
            except SystemExit as exc:
                code = exc.code
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        if injection is not None and injection.fired:
            injection.fault.restore()
    return code, out.getvalue(), err.getvalue(), sent


# --- every service's state, as named changes ------------------------------------------------------

def changes(before: dict, after: dict, token: str | None) -> set[str]:
    """What differs between two snapshots (test_hostile_input.snapshot), each change named with
    `token` (the cell's fresh name) written TOKEN, so runs with different names compare."""
    out = set()
    b, a = dict(before["ldap"]), dict(after["ldap"])
    for dn in a.keys() - b.keys():
        out.add(f"ldap +{dn}")
    for dn in b.keys() - a.keys():
        out.add(f"ldap -{dn}")
    for dn in a.keys() & b.keys():
        ba, aa = dict(b[dn]), dict(a[dn])
        for attr in sorted(ba.keys() | aa.keys()):
            if ba.get(attr) != aa.get(attr):
                out.add(f"ldap ~{dn} {attr}")
    for p in set(after["kerberos"]) ^ set(before["kerberos"]):
        out.add(f"kerberos {'+' if p in after['kerberos'] else '-'}{p}")
    for name in before["homes"].keys() | after["homes"].keys():
        if name not in after["homes"]:
            out.add(f"homes -{name}")
        elif name not in before["homes"]:
            out.add(f"homes +{name}")
        elif before["homes"][name] != after["homes"][name]:
            out.add(f"homes ~{name}/.forward")
    for key in before["sql"].keys() | after["sql"].keys():
        rb, ra = {_row(r) for r in before["sql"].get(key, [])}, {_row(r) for r in after["sql"].get(key, [])}
        out |= {f"sql {key} +{r}" for r in ra - rb} | {f"sql {key} -{r}" for r in rb - ra}
    for name in before["mailman"].keys() | after["mailman"].keys():
        mb, ma = set(before["mailman"].get(name, [])), set(after["mailman"].get(name, []))
        out |= {f"mailman {name} +{m}" for m in ma - mb} | {f"mailman {name} -{m}" for m in mb - ma}
    if token:
        out = {c.replace(token, "TOKEN") for c in out}
    return out | archive_changes(before, after, token)


def _row(row) -> str:
    """A catalogue row by what names it, with its secret (a password hash) only as changed or not."""
    if isinstance(row, (list, tuple)):  # numbers are OIDs (an owner's): they differ each time
        return "|".join("<hash>" if isinstance(v, str) and v.startswith(("SCRAM-", "*")) else
                        "<n>" if isinstance(v, int) and not isinstance(v, bool) else str(v) for v in row)
    return str(row)


def snapshot(cluster) -> dict:
    """Every service (test_hostile_input.snapshot), and the archive of deleted homes."""
    from test_hostile_input import snapshot as services
    state = services(cluster)
    archive = "/users/.deleted"
    state["archive"] = sorted(os.listdir(archive)) if os.path.isdir(archive) else []
    state["homes"].pop(".deleted", None)  # the archive's own directory: compared by what it holds
    return state


def archive_changes(before: dict, after: dict, token: str | None) -> set[str]:
    """An archived home is named uid-time-random: compared by uid."""
    def names(state):
        return {n.rsplit("-", 2)[0] for n in state["archive"] if n.count("-") >= 2}
    def named(n):
        return n.replace(token, "TOKEN") if token else n
    return {f"homes archive +{named(n)}" for n in names(after) - names(before)} | \
        {f"homes archive -{named(n)}" for n in names(before) - names(after)}


# --- back to where a cell started ------------------------------------------------------------------

def restore(cluster, before: dict, after: dict):
    """Undo, as root in each service, whatever differs from `before`: entries and attributes
    in LDAP, principals, homes (and archived ones), databases and their users, info files,
    subscriptions. A cell's leftovers, judged already, must not reach the next cell."""
    import shutil
    import subprocess

    import ldap3
    from rootldap import RootLDAP
    b, a = dict(before["ldap"]), dict(after["ldap"])

    def ldap(conn):
        for dn in sorted(a.keys() - b.keys(), key=lambda d: -d.count(",")):  # children first
            assert conn.delete(dn), (dn, conn.result)
        for dn in sorted(b.keys() - a.keys(), key=lambda d: d.count(",")):
            attrs = dict(b[dn])
            assert conn.add(dn, attributes=attrs), (dn, conn.result)
        for dn in a.keys() & b.keys():
            ba, aa = dict(b[dn]), dict(a[dn])
            change = {k: [(ldap3.MODIFY_REPLACE, ba.get(k, []))] for k in ba.keys() | aa.keys() if ba.get(k) != aa.get(k)}
            if change:
                assert conn.modify(dn, change), (dn, conn.result)
    RootLDAP(cluster)._do(ldap)
    for p in set(after["kerberos"]) - set(before["kerberos"]):
        subprocess.run(["kadmin.local", "-q", f"delprinc -force {p}"], capture_output=True, check=True, timeout=60)
    assert not set(before["kerberos"]) - set(after["kerberos"]), "a principal that was there is gone"
    for name in after["homes"].keys() - before["homes"].keys():
        shutil.rmtree(f"/users/{name}")
    for name in set(after["archive"]) - set(before["archive"]):
        shutil.rmtree(f"/users/.deleted/{name}")
    for name, forward in before["homes"].items():
        assert name in after["homes"], f"home {name} is gone"
        path = f"/users/{name}/.forward"
        if after["homes"][name] != forward:
            if forward is None:
                os.unlink(path)
            else:
                with open(path, "w") as f:
                    f.write(forward)
    _restore_sql(before["sql"], after["sql"])
    _restore_rosters(cluster, before["mailman"], after["mailman"])


def _restore_sql(before, after):
    from test_databases import my_admin, pg_admin
    pg, my = pg_admin(), my_admin()
    try:
        with pg.cursor() as cur:
            for row in set(after["pg_database"]) - set(before["pg_database"]):
                cur.execute(f'DROP DATABASE IF EXISTS "{row[0]}"')
            for row in {r[0] for r in after["pg_roles"]} - {r[0] for r in before["pg_roles"]}:
                cur.execute(f'DROP ROLE IF EXISTS "{row}"')
        with my.cursor() as cur:
            for row in {r[0] for r in after["schemata"]} - {r[0] for r in before["schemata"]}:
                cur.execute(f"DROP DATABASE IF EXISTS `{row}`")
            for user, host, *_ in set(after["mysql.user"]) - set(before["mysql.user"]):
                if (user, host) not in {r[:2] for r in before["mysql.user"]}:
                    cur.execute("DROP USER IF EXISTS %s@%s", (user, host))
            for user, host in set(after["locked"]) - set(before["locked"]):  # a drop's lock, not undone
                cur.execute("SELECT 1 FROM mysql.user WHERE user = %s AND host = %s", (user, host))
                if cur.fetchall():
                    cur.execute("ALTER USER %s@%s ACCOUNT UNLOCK", (user, host))
    finally:
        pg.close()
        my.close()
    for path in set(after["files"]) - set(before["files"]):
        if os.path.exists(f"/users/{path}"):
            os.unlink(f"/users/{path}")


def _restore_rosters(cluster, before, after):
    from mailmanclient import Client
    from sandbox import topology as t
    client = Client(f"http://{cluster.addrs['mail']}:8001/3.1", t.MAILMAN_USER, t.MAILMAN_PASS)
    for name in before.keys() | after.keys():
        extra, gone = set(after.get(name, [])) - set(before.get(name, [])), set(before.get(name, [])) - set(after.get(name, []))
        if extra or gone:
            mlist = client.get_list(name)
            for email in extra:
                mlist.unsubscribe(email)
            for email in gone:
                mlist.subscribe(email, pre_verified=True, pre_confirmed=True, pre_approved=True)
