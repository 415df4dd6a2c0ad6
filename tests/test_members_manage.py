"""`ceo members` get, list, modify, renew, pwreset, delete: through the real command, checked
independently (LDAP over ldapi as root, kadmin.local, the filesystem, Mailman's REST API, the
audit file).

The accounts are this module's own (`m` + 8 hex digits), made by `ceo members add` as office in
one module fixture and deleted by `ceo members delete` as syscom at the end; seeded people are
only read, never changed. No sandbox service is stopped here.

Some tests pin bugs found while writing this file (symlinks and FIFOs planted at ~/.forward,
refusals shown as errors, future members listed as expired); all are fixed.
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

from ceo import terms as T

DOMAIN = "csclub.internal"
HOMES = Path("/users")
SEEDS = {"ctdalek", "ofstaff", "regular1", "regular2", "expired1", "clubrep1"}
HOSTILE = ["*)(uid=*", "x'; DROP", "../etc", "a\nb"]


# --- helpers ---------------------------------------------------------------------------------

def retrying(fn, again=lambda result: False, attempts=4, pause=1.5):
    """fn(), again while `again(result)` or an exception says so: test_members_add.py stops and
    starts services (failure injection) while this file may be running."""
    for attempt in range(attempts):
        last = attempt == attempts - 1
        try:
            result = fn()
        except Exception:
            if last:
                raise
        else:
            if last or not again(result):
                return result
        time.sleep(pause)


def ceo(cluster, user, *args, **kw):
    """`ceo members ...` as `user`. Exit 1 (a service did not answer; nothing changed) is retried:
    no test here expects it."""
    kw.setdefault("stdin", subprocess.DEVNULL)  # never a terminal: confirmations need --yes
    return retrying(lambda: cluster.run(["ceo", "members", *args], user, **kw), lambda p: p.returncode == 1)


def doc(proc) -> dict:
    """The whole of stdout as one JSON document (fails if anything else is printed)."""
    return json.loads(proc.stdout)


def one_line_error(proc, code):
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ceo: "), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def fresh_uid() -> str:
    return f"m{uuid.uuid4().hex[:8]}"


def ldap_connection(cluster):
    import ldap3
    server = ldap3.Server("ldapi://" + str(cluster.state / "ldap" / "ldapi").replace("/", "%2F"),
                          get_info=ldap3.NONE)
    return ldap3.Connection(server, authentication=ldap3.SASL, sasl_mechanism=ldap3.EXTERNAL,
                            sasl_credentials="", auto_bind=True)


class Directory:
    """Root's view of LDAP: entries as {attr: [str values]} (values as stored, duplicates kept).

    A connection per operation: another test file restarts slapd (failure injection), which
    would break a connection kept for the module."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.people = f"ou=People,{cluster.base_dn}"
        self.groups = f"ou=Group,{cluster.base_dn}"

    def _do(self, fn):
        from ldap3.core.exceptions import LDAPCommunicationError

        def once():
            conn = ldap_connection(self.cluster)
            try:
                return fn(conn)
            finally:
                conn.unbind()
        try:
            return once()
        except LDAPCommunicationError:  # slapd restarted under us: once more, after a pause
            return retrying(once)

    def dn(self, uid):
        return f"uid={uid},{self.people}"

    def _read(self, dn):
        import ldap3

        def read(conn):
            conn.search(dn, "(objectClass=*)", search_scope=ldap3.BASE, attributes=["*"])
            if not conn.response:
                return None
            return {k: [v.decode() for v in vs] for k, vs in conn.response[0]["raw_attributes"].items()}
        return self._do(read)

    def user(self, uid):
        return self._read(self.dn(uid))

    def group(self, cn):
        return self._read(f"cn={cn},{self.groups}")

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
    """kinit with `password`; `new` answers the change a temporary password demands."""
    stdin = f"{password}\n" + (f"{new}\n{new}\n" if new else "")

    def once():
        proc = subprocess.run(["kinit", "-c", f"FILE:{ccache}", uid], input=stdin, capture_output=True, text=True,
                              timeout=30)
        proc.output = proc.stdout + proc.stderr
        return proc
    return retrying(once, lambda p: "Cannot contact any KDC" in p.output)


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


# --- fixtures --------------------------------------------------------------------------------

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
    "symlink": ["--no-welcome", "--no-subscribe"],  # has its own ticket: symlinks, a FIFO in its home
    "future": ["--no-welcome", "--no-subscribe", "--term", T.add(T.current(), 1)],
}
WITH_TICKET = ("self", "symlink")


@pytest.fixture(scope="module")
def ldap(cluster):
    return Directory(cluster)


@pytest.fixture(scope="module")
def mailman(cluster):
    from mailmanclient import Client
    return Client(f"http://{cluster.addrs['mail']}:8001/3.1", "restadmin", "restpass")


@pytest.fixture(scope="module")
def accounts(cluster, ldap):
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
                failed.append(f"members add {uid} ({key}) failed: {proc.stdout}{proc.stderr}")
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
        yield made
    finally:
        for acct in made.values():
            ceo(cluster, "ctdalek", "delete", acct.uid, "--yes")  # exit 2 if a test deleted it already
            for old in (HOMES / ".deleted").glob(f"{acct.uid}-*"):
                shutil.rmtree(old, ignore_errors=True)
            if acct.ccache is not None:
                Path(acct.ccache).unlink(missing_ok=True)


# --- get -------------------------------------------------------------------------------------

def test_get_shows_ldap_facts_to_another_member(cluster, ldap, accounts):
    a = accounts["self"]
    ldap.modify(f"cn=club1,{ldap.groups}", {"uniqueMember": [("MODIFY_ADD", [a.dn])]})
    try:
        proc = ceo(cluster, "regular1", "get", a.uid, "--json")
        assert proc.returncode == 0, proc.stderr
        got = doc(proc)["result"]
        entry = ldap.user(a.uid)
        assert got["uid"] == a.uid
        assert got["name"] == entry["cn"][0] == "Manage Test self"
        assert got["program"] == entry["program"][0] == "MAT/Manage Test"
        assert int(got["uidNumber"]) == int(entry["uidNumber"][0]) == a.number
        assert int(got["gidNumber"]) == int(entry["gidNumber"][0]) == a.number
        assert got["home"] == entry["homeDirectory"][0] == str(a.home)
        assert got["shell"] == entry["loginShell"][0]
        assert got["terms"] == T.sort(entry["term"]) == [T.current()]
        assert got["groups"] == ldap.groups_of(a.uid) == ["club1"]
        assert got["locked"] is False

        text = ceo(cluster, "regular1", "get", a.uid)
        assert text.returncode == 0, text.stderr
        for line in ("name: Manage Test self", "program: MAT/Manage Test", f"uidNumber: {a.number}",
                     f"gidNumber: {a.number}", f"home: {a.home}", f"shell: {entry['loginShell'][0]}",
                     f"- {T.current()}", "- club1", "locked: no"):
            assert line in text.stdout, (line, text.stdout)
    finally:
        ldap.modify(f"cn=club1,{ldap.groups}", {"uniqueMember": [("MODIFY_DELETE", [a.dn])]})


def test_get_shows_a_locked_account_as_locked(cluster):
    got = doc(ceo(cluster, "regular1", "get", "expired1", "--json"))["result"]
    assert got["locked"] is True and got["terms"] and T.current() not in got["terms"]


def test_get_hides_forwarding_from_another_member(cluster, accounts):
    a = accounts["self"]
    assert ceo(cluster, "ofstaff", "modify", a.uid, "--forwarding-address", "hidden@example.org").returncode == 0
    got = doc(ceo(cluster, "regular1", "get", a.uid, "--json"))["result"]
    assert "forwarding" not in got, got["forwarding"]
    text = ceo(cluster, "regular1", "get", a.uid).stdout
    assert "forwarding" not in text and "hidden@example.org" not in text


@pytest.mark.parametrize("who", ["self", "ofstaff", "ctdalek"])
def test_get_shows_forwarding_to_the_member_office_and_syscom(cluster, accounts, who):
    a = accounts["self"]
    addresses = [f"f{uuid.uuid4().hex[:6]}@example.org", f"g{uuid.uuid4().hex[:6]}@example.com"]
    assert ceo(cluster, "ofstaff", "modify", a.uid, "--forwarding-address", *addresses).returncode == 0
    caller = a.uid if who == "self" else who
    proc = ceo(cluster, caller, "get", a.uid, "--json")
    assert proc.returncode == 0, proc.stderr
    assert doc(proc)["result"]["forwarding"] == addresses
    text = ceo(cluster, caller, "get", a.uid).stdout
    assert "forwarding:" in text and all(f"- {x}" in text for x in addresses)


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
    assert text.returncode == 0 and "regular1" in text.stdout and "expired1" not in text.stdout
    assert re.search(r"^\d+ accounts$", text.stdout, re.M)


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

def test_member_changes_their_own_shell_to_a_listed_one_only(cluster, ldap, accounts):
    a = accounts["self"]
    shells = {line.strip() for line in Path("/etc/shells").read_text().splitlines() if line.startswith("/")}
    before = ldap.user(a.uid)["loginShell"]
    target = next(s for s in ("/bin/dash", "/bin/sh", "/usr/bin/bash", "/bin/bash") if s in shells and [s] != before)
    proc = ceo(cluster, a.uid, "modify", a.uid, "--login-shell", target)
    assert proc.returncode == 0, proc.stderr
    assert ldap.user(a.uid)["loginShell"] == [target]
    assert "/bin/notashell" not in shells
    proc = ceo(cluster, a.uid, "modify", a.uid, "--login-shell", "/bin/notashell")
    one_line_error(proc, 2)
    assert "/etc/shells" in proc.stderr
    assert ldap.user(a.uid)["loginShell"] == [target]


def test_office_sets_and_removes_forwarding(cluster, accounts):
    a = accounts["self"]
    addresses = ["first@example.org", "second.one+tag@example.com"]
    proc = ceo(cluster, "ofstaff", "modify", a.uid, "--forwarding-address", *addresses)
    assert proc.returncode == 0, proc.stderr
    forward = a.home / ".forward"
    assert forward.read_text() == "first@example.org\nsecond.one+tag@example.com\n"
    st = os.lstat(forward)
    assert stat.S_ISREG(st.st_mode) and st.st_uid == a.number and stat.S_IMODE(st.st_mode) == 0o644
    assert not list(a.home.glob(".forward.*"))  # no temporary file left behind
    proc = ceo(cluster, "ofstaff", "modify", a.uid, "--no-forwarding")
    assert proc.returncode == 0, proc.stderr
    assert not os.path.lexists(forward)
    assert doc(ceo(cluster, "ofstaff", "get", a.uid, "--json"))["result"]["forwarding"] == []


def test_plain_member_cannot_modify_someone_else(cluster, ldap, accounts):
    a = accounts["self"]
    shell, forward = ldap.user(a.uid)["loginShell"], forward_state(a.home)
    for args in (["--login-shell", "/bin/sh"], ["--forwarding-address", "thief@example.org"], ["--no-forwarding"]):
        proc = ceo(cluster, "regular1", "modify", a.uid, *args)
        one_line_error(proc, 3)
    assert ldap.user(a.uid)["loginShell"] == shell and forward_state(a.home) == forward


def test_office_cannot_change_a_syscom_members_forwarding(cluster, ldap):
    home = HOMES / "ctdalek"
    before, shell = forward_state(home), ldap.user("ctdalek")["loginShell"]
    proc = ceo(cluster, "ofstaff", "modify", "ctdalek", "--forwarding-address", "office@example.org")
    one_line_error(proc, 3)
    assert "syscom" in proc.stderr
    proc = ceo(cluster, "ofstaff", "modify", "ctdalek", "--no-forwarding")
    one_line_error(proc, 3)
    assert forward_state(home) == before and ldap.user("ctdalek")["loginShell"] == shell


def test_modify_check_shows_and_writes_nothing(cluster, ldap, accounts):
    a = accounts["self"]
    shell, forward = ldap.user(a.uid)["loginShell"][0], forward_state(a.home)
    new_shell = "/bin/sh" if shell != "/bin/sh" else "/bin/bash"
    before = len(audit_records(cluster))
    proc = ceo(cluster, "ofstaff", "modify", a.uid, "--login-shell", new_shell,
               "--forwarding-address", "checked@example.org", "--check")
    assert proc.returncode == 0, proc.stderr
    assert f"{shell} -> {new_shell}" in proc.stdout and "checked@example.org" in proc.stdout
    assert ldap.user(a.uid)["loginShell"] == [shell] and forward_state(a.home) == forward
    assert audit_for(cluster, a.uid, before) == []


def test_modify_needs_exactly_one_kind_of_forwarding_change(cluster, accounts):
    a = accounts["self"]
    forward = forward_state(a.home)
    one_line_error(ceo(cluster, "ofstaff", "modify", a.uid, "--forwarding-address", "x@example.org",
                       "--no-forwarding"), 2)
    one_line_error(ceo(cluster, "ofstaff", "modify", a.uid), 2)  # nothing to change
    one_line_error(ceo(cluster, "ofstaff", "modify", a.uid, "--forwarding-address", "not an address"), 2)
    assert forward_state(a.home) == forward


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
    ldap.modify(l_.dn, {"term": [("MODIFY_REPLACE", [old])], "shadowExpire": [("MODIFY_REPLACE", ["1"])]})
    assert doc(ceo(cluster, "ofstaff", "get", l_.uid, "--json"))["result"]["locked"] is True
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
    assert "added terms" in proc.stdout
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
    assert proc.returncode == 0 and "Temporary password" not in proc.stdout
    assert kvno(p.uid) == vno

    proc = ceo(cluster, "ctdalek", "pwreset", p.uid)
    assert proc.returncode == 0, proc.stderr
    found = re.search(rf"Temporary password for {p.uid}@{cluster.realm}: (\S+)", proc.stdout)
    assert found, proc.stdout
    new = found.group(1)
    assert new != p.password and len(new) >= 12
    info = getprinc(p.uid)
    assert kvno(p.uid) > vno and "REQUIRES_PWCHANGE" in info

    old = kinit(p.uid, p.password, tmp_path / "old")
    assert old.returncode != 0 and "Password expired" not in old.output
    chosen = f"Chosen-{uuid.uuid4().hex[:12]}"
    first = kinit(p.uid, new, tmp_path / "new", new=chosen)
    assert first.returncode == 0, first.output
    assert "Password expired" in first.output
    again = kinit(p.uid, chosen, tmp_path / "again")
    assert again.returncode == 0 and "Password expired" not in again.output

    audit = (cluster.state / "audit.jsonl").read_text()
    assert new not in audit and p.password not in audit
    rec = [r for r in audit_for(cluster, p.uid) if r["verb"] == "password"]
    assert [(r["caller"], r["outcome"]) for r in rec] == [("ofstaff", "refused"), ("ctdalek", "done")]


def test_pwreset_unknown_member(cluster):
    one_line_error(ceo(cluster, "ctdalek", "pwreset", fresh_uid()), 2)


# --- delete ----------------------------------------------------------------------------------

def csc_general(mailman) -> set[str]:
    return retrying(lambda: {m.email for m in mailman.get_list(f"csc-general@{DOMAIN}").members})


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
    assert f"deleted LDAP user {d.uid}" in proc.stdout and f"deleted principal {d.uid}" in proc.stdout
    assert account_state(ldap, mailman, d) == present

    archived = set((HOMES / ".deleted").glob(f"{d.uid}-*"))
    proc = ceo(cluster, "ctdalek", "delete", d.uid, "--yes", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert account_state(ldap, mailman, d) == {"user": False, "group": False, "groups": [], "principal": False,
                                              "home": False, "subscribed": False}
    assert d.dn not in ldap.group("club1").get("uniqueMember", [])
    moved = set((HOMES / ".deleted").glob(f"{d.uid}-*")) - archived
    assert len(moved) == 1
    home = moved.pop()
    assert doc(proc)["result"]["home"] == str(home)
    assert (home / "www" / "index.html").read_text() == "kept in the archive\n"
    assert os.stat(home).st_uid == d.number

    one_line_error(ceo(cluster, "ctdalek", "delete", d.uid, "--yes"), 2)


# --- hostile input ---------------------------------------------------------------------------

VERBS = {  # verb -> the other arguments it needs, so that only the uid is wrong
    "add": ["--cn", "X"], "get": [], "modify": ["--login-shell", "/bin/sh"], "renew": [], "pwreset": [],
    "delete": ["--yes"],
    # the hidden steps, runnable from the command line too
    "create": ["--cn", "X"], "principal": [], "password": [], "home": [],
    "welcome": ["--cn", "X"], "announce": ["--cn", "X", "--kind", "member"], "info": [], "forwarding": [],
    "set_shell": ["--shell", "/bin/sh"], "set_forwarding": ["--forwarding-address", "x@example.org"],
    "renew_terms": [], "remove_home": [], "remove_ldap": [], "remove_principal": [],
}


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_hostile_uids_are_refused_in_one_line(cluster, verb):
    before = len(audit_records(cluster))
    with ThreadPoolExecutor(len(HOSTILE)) as pool:
        procs = list(pool.map(lambda uid: ceo(cluster, "ctdalek", verb, uid, *VERBS[verb]), HOSTILE))
    for uid, proc in zip(HOSTILE, procs):
        one_line_error(proc, 2)
        assert "uid:" in proc.stderr, (uid, proc.stderr)
    assert not any(set(HOSTILE) & {r["args"].get("uid"), r["args"].get("who")} for r in audit_records(cluster)[before:])
    assert not (HOMES / "etc").exists()


# --- symlinks planted by the member in their own home (the helper runs as root) ---------------

def test_get_does_not_follow_a_forward_symlink(cluster, accounts, tmp_path):
    s = accounts["symlink"]
    secret = tmp_path / "secret"
    secret.write_text("root-only-line@example.org\n")
    secret.chmod(0o600)
    forward = s.home / ".forward"
    forward.unlink(missing_ok=True)
    forward.symlink_to(secret)
    os.lchown(forward, s.number, s.number)
    try:
        proc = ceo(cluster, s.uid, "get", s.uid, "--json")
        assert "root-only-line" not in proc.stdout + proc.stderr
    finally:
        forward.unlink(missing_ok=True)


def test_set_forwarding_does_not_follow_a_planted_symlink(cluster, accounts, tmp_path):
    s = accounts["symlink"]
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    victim.chmod(0o600)
    planted = s.home / ".forward.ceo-tmp"
    (s.home / ".forward").unlink(missing_ok=True)
    planted.unlink(missing_ok=True)
    planted.symlink_to(victim)
    os.lchown(planted, s.number, s.number)
    try:
        ceo(cluster, s.uid, "modify", s.uid, "--forwarding-address", "taken@example.org")
        st = os.stat(victim)
        assert victim.read_text() == "precious\n" and st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o600
    finally:
        for path in (planted, s.home / ".forward"):
            if os.path.lexists(path):
                path.unlink()


def test_get_does_not_hang_on_a_forward_fifo(cluster, accounts):
    s = accounts["symlink"]
    fifo = s.home / ".forward"
    if os.path.lexists(fifo):
        fifo.unlink()
    os.mkfifo(fifo)
    os.lchown(fifo, s.number, s.number)
    try:
        proc = cluster.run(["ceo", "members", "get", s.uid], "ofstaff", timeout=8, stdin=subprocess.DEVNULL)
        assert proc.returncode in (0, 2) and "Traceback" not in proc.stderr
    except subprocess.TimeoutExpired:
        pytest.fail("ceo members get hung on a FIFO at ~/.forward")
    finally:
        for _ in range(20):  # a helper blocked in open() for reading: a writer's open and close frees it
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:  # ENXIO: no reader (any more)
                break
            time.sleep(0.1)
        fifo.unlink()
