"""`ceo members` get, list, modify, renew, pwreset, delete: through the real command, checked
independently (LDAP over ldapi as root, kadmin.local, the filesystem, Mailman's REST API, the
audit file).

The accounts are this module's own (`m` + 8 hex digits), made by `ceo members add` as office in
one module fixture and deleted by `ceo members delete` as syscom at the end; the fixture then
reads every service and removes by hand (and reports) anything the delete left. Seeded people
are only read, never changed. No sandbox service is stopped here: the module starts once every
service answers its own readiness probe (an earlier module injects failures), and a command's
exit 1 is a failure, never retried.

Some tests pin bugs found while writing this file (symlinks, hard links and FIFOs planted at
~/.forward, refusals shown as errors, future members listed as expired); all are fixed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import rawhelper
from rootldap import RootLDAP

from ceo import terms as T

DOMAIN = "csclub.internal"
HOMES = Path("/users")
ARCHIVE = HOMES / ".deleted"  # [homes] archive_dir of the sandbox's ceo.ini (the default)
SEEDS = {"ctdalek", "ofstaff", "regular1", "regular2", "expired1", "clubrep1"}
HOSTILE = ["*)(uid=*", "x'; DROP", "../etc", "a\nb"]


# --- helpers ---------------------------------------------------------------------------------

def ceo(cluster, user, *args, **kw):
    """`ceo members ...` as `user`, once: every exit code is the command's own."""
    kw.setdefault("stdin", subprocess.DEVNULL)  # never a terminal: confirmations need --yes
    return cluster.run(["ceo", "members", *args], user, **kw)


def doc(proc) -> dict:
    """The whole of stdout as one JSON document (fails if anything else is printed)."""
    return json.loads(proc.stdout)


def ok_doc(proc) -> dict:
    """The result of a command that must have succeeded, with --json."""
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    return doc(proc)["result"]


def one_line_error(proc, code):
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(("ceo: ", "ceo ")), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def fresh_uid() -> str:
    return f"m{uuid.uuid4().hex[:8]}"


class Directory(RootLDAP):
    """Root's view of LDAP: entries as {attr: [str values]} (values as stored, duplicates kept)."""

    def __init__(self, cluster):
        super().__init__(cluster)
        self.cluster = cluster
        self.people = f"ou=People,{cluster.base_dn}"
        self.groups = f"ou=Group,{cluster.base_dn}"

    def dn(self, uid):
        return f"uid={uid},{self.people}"

    def user(self, uid):
        return self.read(self.dn(uid))

    def group(self, cn):
        return self.read(f"cn={cn},{self.groups}")

    def groups_of(self, uid):
        from ldap3.utils.conv import escape_filter_chars

        def search(conn):
            conn.search(self.groups, f"(uniqueMember={escape_filter_chars(self.dn(uid))})", attributes=["cn"])
            return sorted(e["raw_attributes"]["cn"][0].decode() for e in conn.response)
        return self._do(search)

    def modify(self, dn, changes):
        def modify(conn):
            assert conn.modify(dn, changes), conn.result
        self._do(modify)

    def delete(self, dn):
        def delete(conn):
            assert conn.delete(dn), conn.result
        self._do(delete)

    def members_with(self, flt):
        def search(conn):
            conn.search(self.people, flt, attributes=["uid"])
            return {e["raw_attributes"]["uid"][0].decode() for e in conn.response}
        return self._do(search)


def getprinc(uid) -> str:
    """kadmin.local's view of a principal ("" when it does not exist)."""
    proc = subprocess.run(["kadmin.local", "-q", f"getprinc {uid}"], capture_output=True, text=True, timeout=30)
    if "Principal does not exist" in proc.stderr + proc.stdout:
        return ""
    assert f"Principal: {uid}@" in proc.stdout, proc.stdout + proc.stderr
    return proc.stdout


def kvno(uid) -> int:
    return int(re.search(r"Key: vno (\d+)", getprinc(uid)).group(1))


def kinit(uid, password, ccache, new=None) -> subprocess.CompletedProcess:
    """kinit with `password`, once; `new` answers the change a temporary password demands."""
    stdin = f"{password}\n" + (f"{new}\n{new}\n" if new else "")
    proc = subprocess.run(["kinit", "-c", f"FILE:{ccache}", uid], input=stdin, capture_output=True, text=True,
                          timeout=30)
    proc.output = proc.stdout + proc.stderr
    return proc


def audit_records(cluster) -> list[dict]:
    path = cluster.state / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def audit_for(cluster, uid, start=0) -> list[dict]:
    return [r for r in audit_records(cluster)[start:] if r.get("args", {}).get("uid") == uid]


def forward_state(home: Path):
    """(content, uid, mode) of ~/.forward, or None: for "nothing changed" comparisons."""
    path = home / ".forward"
    if not os.path.lexists(path):
        return None
    st = os.lstat(path)
    return (os.readlink(path) if stat.S_ISLNK(st.st_mode) else path.read_text(), st.st_uid, stat.S_IMODE(st.st_mode))


def file_state(path: Path):
    """Everything of a file a write through a link would change: content, inode, owner, mode."""
    st = os.lstat(path)
    return path.read_bytes(), st.st_ino, st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def csc_general(mailman) -> set[str]:
    return {m.email for m in mailman.get_list(f"csc-general@{DOMAIN}").members}


# --- fixtures --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def services(cluster):
    """Wait until every sandbox service answers its own readiness probe (the probes `ctl up`
    and `ctl start` use). test_members_add.py stops and restarts services; `ctl start` returns
    once the service answers, and this confirms it here, by name, instead of retrying failed
    commands. The deadline only turns a service that never comes back into a failure."""
    from sandbox import control
    deadline = time.monotonic() + 120
    while True:
        down = sorted(name for name, ok in control.probe_all().items() if not ok)
        if not down:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"sandbox services not answering their probes: {', '.join(down)}")
        time.sleep(0.5)


def ensure_archive() -> bool:
    """The archive of deleted homes, as remove_home makes it (root, 0700); True if made now."""
    made = not os.path.lexists(ARCHIVE)
    if made:
        ARCHIVE.mkdir(mode=0o700)
    st = os.lstat(ARCHIVE)
    assert stat.S_ISDIR(st.st_mode) and st.st_uid == 0, st
    return made


@pytest.fixture(scope="module")
def archive(cluster):
    """The archive, removed again at the end if this module made it (it must then be empty:
    every archived home is removed by `accounts`)."""
    made = ensure_archive()
    yield ARCHIVE
    if made:
        ARCHIVE.rmdir()


class Account:
    def __init__(self, uid, number, password, ccache=None):
        self.uid, self.number, self.password, self.ccache = uid, number, password, ccache
        self.home = HOMES / uid
        self.dn = None


# key -> extra `members add` options
ACCOUNTS = {
    "self": ["--program", "MAT/Manage Test"],  # has its own ticket: get, modify
    "renew": ["--no-welcome", "--no-subscribe"],
    "locked": ["--no-welcome", "--no-subscribe"],
    "pw": ["--no-welcome", "--no-subscribe"],
    "doomed": ["--no-welcome"],  # subscribed to csc-general: delete must unsubscribe it
    "symlink": ["--no-welcome", "--no-subscribe"],  # has its own ticket: links and a FIFO in its home
    "future": ["--no-welcome", "--no-subscribe", "--term", T.add(T.current(), 1)],
}
WITH_TICKET = ("self", "symlink")


@pytest.fixture(scope="module")
def ldap(cluster):
    return Directory(cluster)


def remove_account(cluster, ldap, mailman, acct) -> list[str]:
    """Delete `acct` with `ceo members delete` as syscom (unless a test already deleted it),
    then read every service for what is left of it, remove that by hand and name it: the
    returned problems fail the module's teardown, and nothing is left for a later test."""
    problems = []
    if ldap.user(acct.uid) is not None:
        proc = ceo(cluster, "ctdalek", "delete", acct.uid, "--yes")
        if proc.returncode != 0:
            problems.append(f"ceo members delete {acct.uid} exited {proc.returncode}: {proc.stderr.strip()}")
    for group in ldap.groups_of(acct.uid):
        problems.append(f"{acct.uid} still in group {group}")
        ldap.modify(f"cn={group},{ldap.groups}", {"uniqueMember": [("MODIFY_DELETE", [ldap.dn(acct.uid)])]})
    if ldap.group(acct.uid) is not None:
        problems.append(f"personal group {acct.uid} left")
        ldap.delete(f"cn={acct.uid},{ldap.groups}")
    if ldap.user(acct.uid) is not None:
        problems.append(f"LDAP user {acct.uid} left")
        ldap.delete(ldap.dn(acct.uid))
    if getprinc(acct.uid):
        problems.append(f"principal {acct.uid} left")
        subprocess.run(["kadmin.local", "-q", f"delprinc -force {acct.uid}"], check=True, capture_output=True,
                       timeout=30)
        if getprinc(acct.uid):
            problems.append(f"kadmin.local could not delete principal {acct.uid}")
    address = f"{acct.uid}@{DOMAIN}"
    if address in csc_general(mailman):
        problems.append(f"{address} still subscribed to csc-general")
        mailman.get_list(f"csc-general@{DOMAIN}").unsubscribe(address, pre_confirmed=True, pre_approved=True)
    if os.path.lexists(acct.home):
        problems.append(f"{acct.home} left")
        shutil.rmtree(acct.home)
    for old in ARCHIVE.glob(f"{acct.uid}-*"):  # the archived home: expected, removed here
        shutil.rmtree(old)
    if acct.ccache is not None:
        Path(acct.ccache).unlink(missing_ok=True)
    # what is left now was not removable by hand either
    left = [what for what, there in (("LDAP user", ldap.user(acct.uid) is not None),
                                      ("principal", bool(getprinc(acct.uid))),
                                      ("home", os.path.lexists(acct.home)),
                                      ("archive", bool(list(ARCHIVE.glob(f"{acct.uid}-*")))),
                                      ("subscription", address in csc_general(mailman))) if there]
    if left:
        problems.append(f"{acct.uid}: could not remove {', '.join(left)}")
    return problems


@pytest.fixture(scope="module")
def accounts(cluster, services, archive, ldap, mailman):
    made: dict[str, Account] = {}

    def add(key):
        uid = fresh_uid()
        proc = ceo(cluster, "ofstaff", "add", uid, "--cn", f"Manage Test {key}", "--json", *ACCOUNTS[key])
        return key, uid, proc

    try:
        with ThreadPoolExecutor(len(ACCOUNTS)) as pool:
            results = list(pool.map(add, ACCOUNTS))
        failed = []
        for key, uid, proc in results:  # every uid is recorded first, so that all are cleaned up
            if proc.returncode == 0:
                result = doc(proc)["result"]
                made[key] = Account(uid, int(result["uidNumber"]), result["password"])
            else:
                made[key] = Account(uid, None, None)
                failed.append(f"members add {uid} ({key}) exited {proc.returncode}: {proc.stdout}{proc.stderr}")
        if failed:
            pytest.fail("\n".join(failed))
        for key in WITH_TICKET:
            acct = made[key]
            acct.ccache = cluster.state / "ccache" / acct.uid
            chosen = f"Chosen-{uuid.uuid4().hex[:12]}"
            proc = kinit(acct.uid, acct.password, acct.ccache, new=chosen)
            assert proc.returncode == 0, proc.output
            acct.password = chosen
        for acct in made.values():
            acct.dn = ldap.dn(acct.uid)
            assert forward_state(acct.home) is None  # the tests below rely on no ~/.forward at first
        yield made
    finally:
        problems = []
        for acct in made.values():
            try:
                problems += remove_account(cluster, ldap, mailman, acct)
            except Exception as exc:  # go on with the others; fail below
                problems.append(f"{acct.uid}: cleanup raised {exc!r}")
        if problems:
            pytest.fail("cleanup: " + "; ".join(problems))


def clear_forward(home: Path):
    """Remove whatever ~/.forward is (file, link, FIFO) and any temporary .forward.* left."""
    for path in [home / ".forward", *home.glob(".forward.*")]:
        if os.path.lexists(path):
            os.unlink(path)
    assert not os.path.lexists(home / ".forward") and not list(home.glob(".forward.*"))


@pytest.fixture
def me(accounts, ldap):
    """accounts["self"], put back as it was after the test: login shell, no ~/.forward."""
    a = accounts["self"]
    shell = ldap.user(a.uid)["loginShell"]
    assert forward_state(a.home) is None
    try:
        yield a
    finally:
        clear_forward(a.home)
        if ldap.user(a.uid)["loginShell"] != shell:
            ldap.modify(a.dn, {"loginShell": [("MODIFY_REPLACE", shell)]})
        assert ldap.user(a.uid)["loginShell"] == shell


@pytest.fixture
def planter(accounts):
    """accounts["symlink"], whose home gets things planted at ~/.forward: none at first, none after."""
    s = accounts["symlink"]
    assert not os.path.lexists(s.home / ".forward")
    try:
        yield s
    finally:
        clear_forward(s.home)


# --- get -------------------------------------------------------------------------------------

def test_get_shows_ldap_facts_to_another_member(cluster, ldap, accounts):
    a = accounts["self"]
    ldap.modify(f"cn=club1,{ldap.groups}", {"uniqueMember": [("MODIFY_ADD", [a.dn])]})
    try:
        got = ok_doc(ceo(cluster, "regular1", "get", a.uid, "--json"))
        entry = ldap.user(a.uid)
        assert got["uid"] == a.uid
        assert got["name"] == entry["cn"][0] == "Manage Test self"
        assert got["program"] == entry["program"][0] == "MAT/Manage Test"
        # numbers, as the schema's INTEGER syntax says (the helper's LDAP reads no schema)
        assert got["uidNumber"] == int(entry["uidNumber"][0]) == a.number and type(got["uidNumber"]) is int
        assert got["gidNumber"] == int(entry["gidNumber"][0]) == a.number and type(got["gidNumber"]) is int
        assert got["home"] == entry["homeDirectory"][0] == str(a.home)
        assert got["shell"] == entry["loginShell"][0]
        assert got["terms"] == T.sort(entry["term"]) == [T.current()]
        assert got["groups"] == ldap.groups_of(a.uid) == ["club1"]
        assert got["locked"] is False

        text = ceo(cluster, "regular1", "get", a.uid)
        assert text.returncode == 0, text.stderr
        for label, value in (("Name", "Manage Test self"), ("Program", "MAT/Manage Test"), ("User number", a.number),
                             ("Group number", a.number), ("Home", a.home), ("Shell", entry["loginShell"][0]),
                             ("Terms", T.current()), ("Groups", "club1"), ("Locked", "no")):
            assert re.search(rf"│ {label} +{re.escape(str(value))} +│", text.stdout), (label, text.stdout)
    finally:
        ldap.modify(f"cn=club1,{ldap.groups}", {"uniqueMember": [("MODIFY_DELETE", [a.dn])]})


def test_get_shows_a_locked_account_as_locked(cluster, ldap):
    got = ok_doc(ceo(cluster, "regular1", "get", "expired1", "--json"))
    assert "shadowExpire" in ldap.user("expired1")
    assert got["locked"] is True and got["terms"] and T.current() not in got["terms"]


def test_get_hides_forwarding_from_another_member(cluster, me):
    proc = ceo(cluster, "ofstaff", "modify", me.uid, "--forwarding-address", "hidden@example.org")
    assert proc.returncode == 0, proc.stderr
    assert (me.home / ".forward").read_text() == "hidden@example.org\n"
    got = ok_doc(ceo(cluster, "regular1", "get", me.uid, "--json"))
    assert got["uid"] == me.uid and "forwarding" not in got, got
    text = ceo(cluster, "regular1", "get", me.uid)
    assert text.returncode == 0, text.stderr
    assert re.search(r"│ Name +Manage Test self", text.stdout), text.stdout  # the member is shown...
    assert "forwarding" not in text.stdout and "hidden@example.org" not in text.stdout  # ...without it


@pytest.mark.parametrize("who", ["self", "ofstaff", "ctdalek"])
def test_get_shows_forwarding_to_the_member_office_and_syscom(cluster, me, who):
    addresses = [f"f{uuid.uuid4().hex[:6]}@example.org", f"g{uuid.uuid4().hex[:6]}@example.com"]
    proc = ceo(cluster, "ofstaff", "modify", me.uid, "--forwarding-address", *addresses)
    assert proc.returncode == 0, proc.stderr
    assert (me.home / ".forward").read_text() == "".join(f"{x}\n" for x in addresses)
    caller = me.uid if who == "self" else who
    assert ok_doc(ceo(cluster, caller, "get", me.uid, "--json"))["forwarding"] == addresses
    text = ceo(cluster, caller, "get", me.uid)
    assert text.returncode == 0, text.stderr
    assert re.search(r"│ Mail forwarding +" + re.escape(", ".join(addresses)), text.stdout), text.stdout


def test_get_unknown_member(cluster):
    uid = fresh_uid()
    proc = ceo(cluster, "regular1", "get", uid)
    one_line_error(proc, 2)
    assert f"no member '{uid}'" in proc.stderr
    proc = ceo(cluster, "regular1", "get", uid, "--json")
    assert proc.returncode == 2 and doc(proc)["ok"] is False


# --- list ------------------------------------------------------------------------------------

def list_uids(cluster, *args) -> dict[str, dict]:
    proc = ceo(cluster, "regular1", "list", "--json", *args)
    assert proc.returncode == 0, proc.stderr
    document = doc(proc)
    assert document["ok"] is True and isinstance(document["result"], list)
    return {row["uid"]: row for row in document["result"]}


def test_list_by_term(cluster, ldap, accounts):
    now = T.current()
    rows = list_uids(cluster, "--term", now)
    assert {"regular1", "regular2", accounts["self"].uid} <= set(rows)
    assert "expired1" not in rows and "clubrep1" not in rows and accounts["future"].uid not in rows
    assert set(rows) & SEEDS == ldap.members_with(f"(term={now})") & SEEDS
    assert rows["regular1"]["terms"] == T.sort(ldap.user("regular1")["term"])
    last = T.add(now, -1)  # regular1 had last term, regular2 did not
    assert "regular1" in list_uids(cluster, "--term", last) and "regular2" not in list_uids(cluster, "--term", last)
    text = ceo(cluster, "regular1", "list", "--term", now)
    assert text.returncode == 0, text.stderr
    assert "regular1" in text.stdout and "expired1" not in text.stdout
    assert re.search(rf"^{len(rows)} accounts$", text.stdout, re.M), text.stdout


def test_list_expired_and_clubreps(cluster):
    expired = list_uids(cluster, "--expired")
    assert "expired1" in expired and expired["expired1"]["locked"] is True
    assert not {"regular1", "regular2", "clubrep1", "ofstaff", "ctdalek"} & set(expired)
    reps = list_uids(cluster, "--clubreps")
    assert set(reps) & SEEDS == {"clubrep1"}
    assert reps["clubrep1"]["nonMemberTerms"] == [T.current()]


def test_list_expired_leaves_out_members_of_a_future_term(cluster, ldap, accounts):
    f = accounts["future"]
    assert ldap.user(f.uid)["term"] == [T.add(T.current(), 1)]
    assert f.uid not in list_uids(cluster, "--expired")


@pytest.mark.parametrize("term", ["w20x7", "x2026", "*)(term=*"])
def test_list_malformed_term(cluster, term):
    one_line_error(ceo(cluster, "regular1", "list", "--term", term), 2)


# --- modify ----------------------------------------------------------------------------------

def test_member_changes_their_own_shell_to_a_listed_one_only(cluster, ldap, me):
    shells = {line.strip() for line in Path("/etc/shells").read_text().splitlines() if line.startswith("/")}
    before = ldap.user(me.uid)["loginShell"]
    target = next(s for s in ("/bin/dash", "/bin/sh", "/usr/bin/bash", "/bin/bash") if s in shells and [s] != before)
    proc = ceo(cluster, me.uid, "modify", me.uid, "--login-shell", target)
    assert proc.returncode == 0, proc.stderr
    assert ldap.user(me.uid)["loginShell"] == [target]
    assert "/bin/notashell" not in shells  # so that the next one is refused for the right reason
    proc = ceo(cluster, me.uid, "modify", me.uid, "--login-shell", "/bin/notashell")
    one_line_error(proc, 2)
    assert "/etc/shells" in proc.stderr
    assert ldap.user(me.uid)["loginShell"] == [target]


def test_office_sets_and_removes_forwarding(cluster, me):
    addresses = ["first@example.org", "second.one+tag@example.com"]
    proc = ceo(cluster, "ofstaff", "modify", me.uid, "--forwarding-address", *addresses)
    assert proc.returncode == 0, proc.stderr
    forward = me.home / ".forward"
    assert forward.read_text() == "first@example.org\nsecond.one+tag@example.com\n"
    st = os.lstat(forward)
    assert stat.S_ISREG(st.st_mode) and st.st_uid == me.number and stat.S_IMODE(st.st_mode) == 0o644
    assert not list(me.home.glob(".forward.*"))  # no temporary file left behind
    proc = ceo(cluster, "ofstaff", "modify", me.uid, "--no-forwarding")
    assert proc.returncode == 0, proc.stderr
    assert not os.path.lexists(forward)
    assert ok_doc(ceo(cluster, "ofstaff", "get", me.uid, "--json"))["forwarding"] == []


def test_plain_member_cannot_modify_someone_else(cluster, ldap, me):
    proc = ceo(cluster, "ofstaff", "modify", me.uid, "--forwarding-address", "mine@example.org")
    assert proc.returncode == 0, proc.stderr
    shell, forward = ldap.user(me.uid)["loginShell"], forward_state(me.home)
    assert forward == ("mine@example.org\n", me.number, 0o644)
    for args in (["--login-shell", "/bin/sh"], ["--forwarding-address", "thief@example.org"], ["--no-forwarding"]):
        proc = ceo(cluster, "regular1", "modify", me.uid, *args)
        one_line_error(proc, 3)
    assert ldap.user(me.uid)["loginShell"] == shell and forward_state(me.home) == forward


def test_office_cannot_change_a_syscom_members_forwarding(cluster, ldap):
    home = HOMES / "ctdalek"
    before, shell = forward_state(home), ldap.user("ctdalek")["loginShell"]
    assert before is None
    try:
        proc = ceo(cluster, "ofstaff", "modify", "ctdalek", "--forwarding-address", "office@example.org")
        one_line_error(proc, 3)
        assert "syscom" in proc.stderr
        proc = ceo(cluster, "ofstaff", "modify", "ctdalek", "--no-forwarding")
        one_line_error(proc, 3)
        assert forward_state(home) == before and ldap.user("ctdalek")["loginShell"] == shell
    finally:
        clear_forward(home)  # a seeded person: as it was, whatever happened


def test_modify_check_shows_and_writes_nothing(cluster, ldap, me):
    shell, forward = ldap.user(me.uid)["loginShell"][0], forward_state(me.home)
    new_shell = "/bin/sh" if shell != "/bin/sh" else "/bin/bash"
    before = len(audit_records(cluster))
    proc = ceo(cluster, "ofstaff", "modify", me.uid, "--login-shell", new_shell,
               "--forwarding-address", "checked@example.org", "--check")
    assert proc.returncode == 0, proc.stderr
    assert f"{shell} -> {new_shell}" in proc.stdout and "checked@example.org" in proc.stdout
    assert ldap.user(me.uid)["loginShell"] == [shell] and forward_state(me.home) == forward
    assert audit_for(cluster, me.uid, before) == []


def test_modify_needs_exactly_one_kind_of_forwarding_change(cluster, me):
    forward = forward_state(me.home)
    one_line_error(ceo(cluster, "ofstaff", "modify", me.uid, "--forwarding-address", "x@example.org",
                       "--no-forwarding"), 2)
    one_line_error(ceo(cluster, "ofstaff", "modify", me.uid), 2)  # nothing to change
    one_line_error(ceo(cluster, "ofstaff", "modify", me.uid, "--forwarding-address", "not an address"), 2)
    assert forward_state(me.home) == forward


# --- renew -----------------------------------------------------------------------------------

def test_renew_adds_the_next_unregistered_terms_and_is_audited(cluster, ldap, accounts):
    r = accounts["renew"]
    have = ldap.user(r.uid)["term"]
    expected = T.interval(T.next_unregistered(have), 2)
    assert not set(expected) & set(have)
    start = len(audit_records(cluster))
    proc = ceo(cluster, "ofstaff", "renew", r.uid, "--terms", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    after = ldap.user(r.uid)["term"]
    assert sorted(after) == sorted(have + expected) and len(after) == len(set(after))
    assert doc(proc)["result"]["added"] == expected
    records = audit_for(cluster, r.uid, start)
    assert [(x["caller"], x["plugin"], x["verb"], x["outcome"]) for x in records] == \
        [("ofstaff", "members", "renew_terms", "done")]
    assert records[0]["args"]["terms"] == 2


def test_renew_with_a_term_they_have_is_unchanged(cluster, ldap, accounts):
    r = accounts["renew"]
    have = ldap.user(r.uid)["term"]
    proc = ceo(cluster, "ofstaff", "renew", r.uid, "--term", have[0])
    assert proc.returncode == 0, proc.stderr
    assert "already has" in proc.stdout
    after = ldap.user(r.uid)["term"]
    assert after == have and len(after) == len(set(after))


def test_renew_unlocks_an_expired_account(cluster, ldap, accounts):
    l_ = accounts["locked"]
    old = T.add(T.current(), -3)
    # locked as `members expire` locks a lapsed membership (a lock with another reason stays)
    ldap.modify(l_.dn, {"term": [("MODIFY_REPLACE", [old])], "shadowExpire": [("MODIFY_REPLACE", ["1"])],
                        "lockReason": [("MODIFY_REPLACE", ["lapsed"])]})
    assert ok_doc(ceo(cluster, "ofstaff", "get", l_.uid, "--json"))["locked"] is True
    assert l_.uid in list_uids(cluster, "--expired")
    proc = ceo(cluster, "ofstaff", "renew", l_.uid, "--json")
    assert proc.returncode == 0, proc.stderr
    entry = ldap.user(l_.uid)
    assert "shadowExpire" not in entry
    assert sorted(entry["term"]) == sorted([old, T.current()])
    assert doc(proc)["result"]["unlocked"] is True
    assert l_.uid not in list_uids(cluster, "--expired")


def test_renew_as_club_rep_adds_a_non_member_term(cluster, ldap, accounts):
    r = accounts["renew"]
    entry = ldap.user(r.uid)
    terms, reps = entry["term"], entry.get("nonMemberTerm", [])
    expected = T.next_unregistered(terms + reps)
    proc = ceo(cluster, "ofstaff", "renew", r.uid, "--clubrep")
    assert proc.returncode == 0, proc.stderr
    after = ldap.user(r.uid)
    assert sorted(after["nonMemberTerm"]) == sorted(reps + [expected]) and after["term"] == terms


def test_renew_refusals_and_check_change_nothing(cluster, ldap, accounts):
    r = accounts["renew"]
    entry = ldap.user(r.uid)
    start = len(audit_records(cluster))
    one_line_error(ceo(cluster, "ofstaff", "renew", r.uid, "--terms", "2", "--term", T.add(T.current(), 1)), 2)
    one_line_error(ceo(cluster, "ofstaff", "renew", r.uid, "--term", "w2027", "w2027"), 2)
    one_line_error(ceo(cluster, "ofstaff", "renew", r.uid, "--terms", "13"), 2)
    proc = ceo(cluster, "regular1", "renew", r.uid)
    one_line_error(proc, 3)
    proc = ceo(cluster, "ofstaff", "renew", r.uid, "--terms", "3", "--check")
    assert proc.returncode == 0, proc.stderr
    assert "~ would add terms" in proc.stdout
    assert ldap.user(r.uid) == entry
    # only the member's refusal reached a helper: recorded as refused, nothing done
    assert [(x["caller"], x["outcome"]) for x in audit_for(cluster, r.uid, start)] == [("regular1", "refused")]
    one_line_error(ceo(cluster, "ofstaff", "renew", fresh_uid()), 2)


# --- pwreset ---------------------------------------------------------------------------------

def test_pwreset(cluster, accounts, tmp_path):
    p = accounts["pw"]
    vno = kvno(p.uid)
    one_line_error(ceo(cluster, "ofstaff", "pwreset", p.uid), 3)
    proc = ceo(cluster, "ctdalek", "pwreset", p.uid, "--check")
    assert proc.returncode == 0, proc.stderr
    assert "Temporary password" not in proc.stdout
    assert kvno(p.uid) == vno

    proc = ceo(cluster, "ctdalek", "pwreset", p.uid)
    assert proc.returncode == 0, proc.stderr
    assert re.search(rf"│ Principal +{p.uid}@{cluster.realm} ", proc.stdout), proc.stdout
    found = re.search(r"│ Temporary password +(\S+) ", proc.stdout)
    assert found, proc.stdout
    new = found.group(1)
    assert new != p.password and len(new) >= 12
    info = getprinc(p.uid)
    assert kvno(p.uid) > vno and "REQUIRES_PWCHANGE" in info

    old = kinit(p.uid, p.password, tmp_path / "old")
    assert old.returncode == 1 and "Password incorrect" in old.output, old.output
    chosen = f"Chosen-{uuid.uuid4().hex[:12]}"
    first = kinit(p.uid, new, tmp_path / "new", new=chosen)
    assert first.returncode == 0, first.output
    assert "Password expired" in first.output
    again = kinit(p.uid, chosen, tmp_path / "again")
    assert again.returncode == 0, again.output
    assert "Password expired" not in again.output

    audit = (cluster.state / "audit.jsonl").read_text()
    assert new not in audit and p.password not in audit
    rec = [r for r in audit_for(cluster, p.uid) if r["verb"] == "password"]
    assert [(r["caller"], r["outcome"]) for r in rec] == [("ofstaff", "refused"), ("ctdalek", "done")]


def test_pwreset_unknown_member(cluster):
    one_line_error(ceo(cluster, "ctdalek", "pwreset", fresh_uid()), 2)


# --- delete ----------------------------------------------------------------------------------

def account_state(ldap, mailman, acct):
    return {"user": ldap.user(acct.uid) is not None, "group": ldap.group(acct.uid) is not None,
            "groups": ldap.groups_of(acct.uid), "principal": bool(getprinc(acct.uid)),
            "home": acct.home.is_dir(), "subscribed": f"{acct.uid}@{DOMAIN}" in csc_general(mailman)}


def test_delete(cluster, ldap, mailman, accounts):
    d = accounts["doomed"]
    ldap.modify(f"cn=club1,{ldap.groups}", {"uniqueMember": [("MODIFY_ADD", [d.dn])]})
    (d.home / "www" / "index.html").write_text("kept in the archive\n")
    present = {"user": True, "group": True, "groups": ["club1"], "principal": True, "home": True,
               "subscribed": True}
    assert account_state(ldap, mailman, d) == present

    proc = ceo(cluster, "ctdalek", "delete", d.uid)  # no --yes, no terminal
    one_line_error(proc, 2)
    assert "--yes" in proc.stderr
    assert account_state(ldap, mailman, d) == present

    one_line_error(ceo(cluster, "ofstaff", "delete", d.uid, "--yes"), 3)
    assert account_state(ldap, mailman, d) == present

    proc = ceo(cluster, "ctdalek", "delete", d.uid, "--check")
    assert proc.returncode == 0, proc.stderr
    assert f"would delete LDAP user {d.uid}" in proc.stdout and f"would delete principal {d.uid}" in proc.stdout
    assert account_state(ldap, mailman, d) == present

    archived = set(ARCHIVE.glob(f"{d.uid}-*"))
    proc = ceo(cluster, "ctdalek", "delete", d.uid, "--yes", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert account_state(ldap, mailman, d) == {"user": False, "group": False, "groups": [], "principal": False,
                                              "home": False, "subscribed": False}
    assert d.dn not in ldap.group("club1").get("uniqueMember", [])
    moved = set(ARCHIVE.glob(f"{d.uid}-*")) - archived
    assert len(moved) == 1
    home = moved.pop()
    assert doc(proc)["result"]["home"] == str(home)
    assert (home / "www" / "index.html").read_text() == "kept in the archive\n"
    assert os.stat(home).st_uid == d.number

    one_line_error(ceo(cluster, "ctdalek", "delete", d.uid, "--yes"), 2)


# --- purge_home: removes what remove_home moved into the archive, and nothing else ------------
# `delete` sends it the path remove_home answered; a client can send any path (the hidden verb
# is on the command line too), so the helper must refuse one that is not in the archive.

def make_tree(path: Path, owner: int = 0) -> Path:
    """A directory with a file in it: what a wrongly removed tree would take with it."""
    path.mkdir(mode=0o700)
    (path / "precious").write_text("still here\n")
    for p in (path, path / "precious"):
        os.lchown(p, owner, owner)
    return path


def tree_state(path: Path):
    st = os.lstat(path)
    return stat.S_IFMT(st.st_mode), st.st_ino, st.st_uid, sorted(os.listdir(path)), (path / "precious").read_text()


@pytest.fixture
def in_archive(archive):
    """Things this test puts in the archive, removed after it (checked). The archive is made
    again if a failed purge removed it, so that the failure is this test's only."""
    ensure_archive()
    made: list[Path] = []
    try:
        yield made
    finally:
        for path in made:
            if os.path.islink(path) or path.is_file():
                path.unlink()
            elif os.path.lexists(path):
                shutil.rmtree(path)
        assert not any(os.path.lexists(p) for p in made)


def purge_home(connect, user, path, check=False):
    """The purge_home step as a client sends it (a step is not a command)."""
    events, reply = rawhelper.request(connect("phosphoric-acid", user), "members", "purge_home", {"path": path},
                                      check=check)
    return reply


@pytest.mark.parametrize("how", ["absolute", "dot-dot", "symlink-in-archive", "below-an-archived-home",
                                 "archive-dot", "the-archive"])
def test_purge_home_refuses_a_path_outside_the_archive(cluster, connect, tmp_path, archive, in_archive, how):
    victim = make_tree(tmp_path / "victim")  # a root-only tree outside the archive, like /etc
    name = f"{fresh_uid()}-20000101-000000-abcdef"
    if how == "absolute":
        path = str(victim)
    elif how == "dot-dot":  # /users/.deleted/../../tmp/...: a string that starts in the archive
        path = f"{archive}/../.." + str(victim)
    elif how == "symlink-in-archive":  # a name in the archive that is a link out of it
        link = archive / name
        in_archive.append(link)
        link.symlink_to(victim)
        path = str(link)
    elif how in ("the-archive", "archive-dot"):  # every archived home at once
        victim = make_tree(archive / name)
        in_archive.append(victim)
        path = str(archive) if how == "the-archive" else f"{archive}/."
    else:  # a part of an archived home, not the home
        home = make_tree(archive / name)
        in_archive.append(home)
        victim = make_tree(home / "www")
        path = str(victim)
    before, archive_before = tree_state(victim), sorted(os.listdir(archive))
    link_before = os.readlink(path) if how == "symlink-in-archive" else None

    error = purge_home(connect, "ctdalek", path)["error"]
    assert (error["name"], error["exit"]) == ("BadInput", 2)
    assert f"is not in {archive}" in error["message"], error
    assert tree_state(victim) == before
    assert sorted(os.listdir(archive)) == archive_before
    if link_before is not None:
        assert os.readlink(path) == link_before


def test_purge_home_removes_a_home_in_the_archive_for_syscom_only(cluster, connect, archive, in_archive):
    home = make_tree(archive / f"{fresh_uid()}-20000101-000000-abcdef", owner=20999)
    in_archive.append(home)
    before = tree_state(home)
    assert purge_home(connect, "ofstaff", str(home))["error"]["name"] == "NotPermitted"
    assert tree_state(home) == before
    assert "result" in purge_home(connect, "ctdalek", str(home), check=True)
    assert tree_state(home) == before
    assert "result" in purge_home(connect, "ctdalek", str(home))
    assert not os.path.lexists(home)


# --- hostile input ---------------------------------------------------------------------------

VERBS = {  # verb -> the other arguments it needs, so that only the uid is wrong
    "add": ["--cn", "X"], "get": [], "modify": ["--login-shell", "/bin/sh"], "renew": [], "pwreset": [],
    "delete": ["--yes"],
}
STEPS = {  # the steps behind them (not commands): sent as a client would, with the same uids
    "create": {"cn": "X"}, "principal": {}, "password": {}, "home": {}, "name_free": {},
    "welcome": {"cn": "X"}, "announce": {"cn": "X", "kind": "member"}, "info": {}, "forwarding": {},
    "set_shell": {"shell": "/bin/sh"}, "set_forwarding": {"forwarding_address": ["x@example.org"]},
    "renew_terms": {}, "remove_home": {}, "remove_ldap": {}, "remove_principal": {},
}


def nothing_written(cluster, before, homes, etc):
    assert not any(set(HOSTILE) & {r["args"].get("uid"), r["args"].get("who")} for r in audit_records(cluster)[before:])
    # nothing made under /users, and /users/../etc neither archived nor replaced
    assert sorted(os.listdir(HOMES)) == homes
    assert os.lstat("/etc").st_ino == etc.st_ino and Path("/etc/csc/ceo.ini").is_file()


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_hostile_uids_are_refused_in_one_line(cluster, verb):
    before = len(audit_records(cluster))
    homes, etc = sorted(os.listdir(HOMES)), os.lstat("/etc")
    with ThreadPoolExecutor(len(HOSTILE)) as pool:
        procs = list(pool.map(lambda uid: ceo(cluster, "ctdalek", verb, uid, *VERBS[verb]), HOSTILE))
    for uid, proc in zip(HOSTILE, procs):
        one_line_error(proc, 2)
        assert "uid:" in proc.stderr, (uid, proc.stderr)
    nothing_written(cluster, before, homes, etc)


@pytest.mark.parametrize("verb", sorted(STEPS))
def test_hostile_uids_sent_to_a_step_are_refused(cluster, connect, verb):
    before = len(audit_records(cluster))
    homes, etc = sorted(os.listdir(HOMES)), os.lstat("/etc")
    host = "mail" if verb in ("welcome", "announce") else "phosphoric-acid"
    session = rawhelper.Raw(connect(host, "ctdalek"))
    session.hello()
    for i, uid in enumerate(HOSTILE):
        _, reply = session.request(i, "members", verb, {"uid": uid, **STEPS[verb]})
        assert (reply["error"]["name"], reply["error"]["exit"]) == ("BadInput", 2), (uid, reply)
        assert reply["error"]["message"].startswith("uid: "), (uid, reply)
    assert session.finish()[1] == 0
    nothing_written(cluster, before, homes, etc)


# --- links and FIFOs planted by the member at ~/.forward (the helper runs as root) -----------
# The helper reads ~/.forward with O_NOFOLLOW|O_NONBLOCK and only if it is a regular file, and
# writes it as a new file (mkstemp, then rename over ~/.forward). So the attacks are on
# ~/.forward itself: a symlink to a root-only file (read it? write through it?), a hard link to
# one (write through it?), a FIFO (block the helper?).

def root_only_file(path: Path, text: str) -> Path:
    path.write_text(text)
    os.chown(path, 0, 0)
    path.chmod(0o600)
    return path


def plant(link: Path, owner: int, symlink_to=None, hardlink_to=None, fifo=False):
    if symlink_to is not None:
        link.symlink_to(symlink_to)
    elif hardlink_to is not None:
        os.link(hardlink_to, link)
    else:
        assert fifo
        os.mkfifo(link)
    if hardlink_to is None:  # chown on a hard link would chown the victim
        os.lchown(link, owner, owner)


def test_get_does_not_follow_a_forward_symlink(cluster, planter, tmp_path):
    secret = root_only_file(tmp_path / "secret", "root-only-line@example.org\n")
    before = file_state(secret)
    plant(planter.home / ".forward", planter.number, symlink_to=secret)
    got = ok_doc(ceo(cluster, planter.uid, "get", planter.uid, "--json"))
    assert got["uid"] == planter.uid and "root-only-line" not in json.dumps(got), got
    assert got["forwarding"].startswith("(unavailable: ") and "is not a plain file" in got["forwarding"], got
    assert file_state(secret) == before


@pytest.mark.parametrize("change", [["--forwarding-address", "taken@example.org"], ["--no-forwarding"]])
def test_set_forwarding_refuses_a_forward_symlink(cluster, planter, tmp_path, change):
    victim = root_only_file(tmp_path / "victim", "precious\n")
    before = file_state(victim)
    forward = planter.home / ".forward"
    plant(forward, planter.number, symlink_to=victim)
    proc = ceo(cluster, planter.uid, "modify", planter.uid, *change)
    one_line_error(proc, 2)
    assert "is not a plain file" in proc.stderr, proc.stderr
    assert file_state(victim) == before
    assert forward_state(planter.home) == (str(victim), planter.number, 0o777)  # the link, left as it was
    assert not list(planter.home.glob(".forward.*"))


@pytest.fixture
def users_victim():
    """A root-only file on /users' own filesystem (a hard link cannot cross mounts), in a
    root-only directory, like /etc/shadow on a home server's root filesystem."""
    room = HOMES / f".victim-{uuid.uuid4().hex[:8]}"
    room.mkdir(mode=0o700)
    try:
        yield root_only_file(room / "victim", "precious\n")
    finally:
        shutil.rmtree(room)
        assert not os.path.lexists(room)


@pytest.mark.parametrize("addresses", [["new@example.org"], []], ids=["set", "remove"])
def test_a_forward_hard_link_is_neither_read_nor_replaced(cluster, planter, users_victim, addresses):
    """A second name for a root-only file: reading it would show the file to the member, so
    get shows it unavailable and modify refuses, and both names stay as they were."""
    forward = planter.home / ".forward"
    plant(forward, planter.number, hardlink_to=users_victim)
    assert os.lstat(users_victim).st_nlink == 2
    before = file_state(users_victim)
    got = ok_doc(ceo(cluster, "ofstaff", "get", planter.uid, "--json"))
    assert got["forwarding"].startswith("(unavailable: ") and "is not a plain file" in got["forwarding"], got
    proc = ceo(cluster, "ofstaff", "modify", planter.uid,
               *(["--forwarding-address", *addresses] if addresses else ["--no-forwarding"]))
    one_line_error(proc, 2)
    assert "is not a plain file" in proc.stderr, proc.stderr
    assert file_state(users_victim) == before and os.lstat(users_victim).st_nlink == 2
    assert os.lstat(forward).st_ino == os.lstat(users_victim).st_ino
    assert not list(planter.home.glob(".forward.*"))


def test_a_forward_fifo_neither_blocks_nor_is_replaced(cluster, planter):
    fifo = planter.home / ".forward"
    plant(fifo, planter.number, fifo=True)
    try:
        got = ok_doc(ceo(cluster, "ofstaff", "get", planter.uid, "--json", timeout=30))
        assert got["forwarding"].startswith("(unavailable: ") and "is not a plain file" in got["forwarding"], got
        proc = ceo(cluster, "ofstaff", "modify", planter.uid, "--forwarding-address", "x@example.org", timeout=30)
        one_line_error(proc, 2)
        assert "is not a plain file" in proc.stderr, proc.stderr
        assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and not list(planter.home.glob(".forward.*"))
    except subprocess.TimeoutExpired:
        pytest.fail("ceo members hung on a FIFO at ~/.forward")
    finally:
        try:  # a helper blocked opening the FIFO for reading: a writer's open frees it
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:  # ENXIO: nobody is reading it
            pass
