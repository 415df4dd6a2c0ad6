"""Holes closed in the policy: what office may not do, and what a renewal may not undo.

Each test is one hole found by reviewing the helper as office staff trying to get syscom's
power; every check reads LDAP (root over ldapi) or Mailman directly, never ceo's own words.
The accounts here are this file's own (`p` + 8 hex digits), added straight to LDAP and
removed in the fixture's finaliser.
"""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest

from ceo import terms as T
from rawhelper import Raw

NOW = T.current()
PREV = T.add(NOW, -1)


def ceo(cluster, user, *args, stdin=subprocess.DEVNULL, **kw):
    return cluster.run(["ceo", *args], user, stdin=stdin, **kw)


def refused(proc, code: int, *words: str):
    """Exit `code`, one line on stderr naming the problem, no traceback."""
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(("ceo: ", "ceo ")), proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture
def ldap(cluster):
    import ldap3
    server = ldap3.Server("ldapi://" + str(cluster.state / "ldap" / "ldapi").replace("/", "%2F"), get_info=ldap3.NONE)
    conn = ldap3.Connection(server, authentication=ldap3.SASL, sasl_mechanism=ldap3.EXTERNAL,
                            sasl_credentials="", auto_bind=True)
    yield conn
    conn.unbind()


def entry(ldap, dn: str, *attrs: str) -> dict:
    assert ldap.search(dn, "(objectClass=*)", search_scope="BASE", attributes=list(attrs) or ["*"]), dn
    return {k: list(v) if isinstance(v, list) else [v] for k, v in ldap.response[0]["attributes"].items() if v != []}


@pytest.fixture
def member(cluster, ldap):
    """make(terms, lock=None, reason=None) -> uid: a member entry added straight to LDAP."""
    made = []

    def make(terms=(PREV,), lock=None, reason=None):
        uid = f"p{uuid.uuid4().hex[:8]}"
        number = 28000 + int(uuid.uuid4().hex[:3], 16) % 1900
        attrs = {"cn": f"Policy {uid}", "uid": uid, "uidNumber": number, "gidNumber": number,
                 "homeDirectory": f"/users/{uid}", "loginShell": "/bin/bash", "term": list(terms)}
        if lock is not None:
            attrs["shadowExpire"] = lock
        if reason is not None:
            attrs["lockReason"] = reason
        dn = f"uid={uid},ou=People,{cluster.base_dn}"
        assert ldap.add(dn, ["top", "account", "posixAccount", "shadowAccount", "member"], attrs), ldap.result
        made.append(dn)
        return uid
    yield make
    for dn in made:
        assert ldap.delete(dn) or ldap.result["result"] == 32, ldap.result


def user_dn(cluster, uid):
    return f"uid={uid},ou=People,{cluster.base_dn}"


# --- a renewal is for members, and lifts only the lapsed-membership lock --------------------

def test_renewing_a_club_account_is_a_clear_refusal_and_writes_nothing(cluster, ldap):
    before = entry(ldap, user_dn(cluster, "club1"))
    proc = ceo(cluster, "ofstaff", "members", "renew", "club1")
    refused(proc, 2, "club1 is not a member")
    assert entry(ldap, user_dn(cluster, "club1")) == before


def test_a_csv_row_for_a_club_account_is_an_invalid_row(cluster, ldap, member, tmp_path):
    uid = member()
    csv = tmp_path / "renewals.csv"
    csv.write_text(f"uid\n{uid}\nclub1\n")
    before = entry(ldap, user_dn(cluster, uid), "term"), entry(ldap, user_dn(cluster, "club1"))
    proc = ceo(cluster, "ofstaff", "members", "renew", "--csv", str(csv))
    assert proc.returncode == 2, proc.stderr
    assert f"{csv}: line 3: club1 is not a member" in proc.stderr
    assert (entry(ldap, user_dn(cluster, uid), "term"), entry(ldap, user_dn(cluster, "club1"))) == before


def test_renewal_lifts_a_lapsed_lock(cluster, ldap, member):
    uid = member(lock=1, reason="lapsed")
    proc = ceo(cluster, "ofstaff", "members", "renew", uid)
    assert proc.returncode == 0, proc.stderr
    after = entry(ldap, user_dn(cluster, uid), "term", "shadowExpire", "lockReason")
    assert NOW in after["term"] and "shadowExpire" not in after and "lockReason" not in after


@pytest.mark.parametrize("reason", ["syscom: compromised key", None], ids=["syscom-lock", "no-reason"])
def test_renewal_does_not_lift_a_lock_syscom_set(cluster, ldap, member, reason):
    uid = member(lock=12345, reason=reason)
    proc = ceo(cluster, "ofstaff", "members", "renew", uid, "--json")
    assert proc.returncode == 0, proc.stderr
    steps = json.loads(proc.stdout)["steps"]
    assert [s["status"] for s in steps if s["step"] == "lock"] == ["warning"]
    after = entry(ldap, user_dn(cluster, uid), "term", "shadowExpire", "lockReason")
    assert NOW in after["term"]  # the membership is renewed ...
    assert after["shadowExpire"] == ["12345"]  # ... and the account stays locked
    assert after.get("lockReason") == ([reason] if reason else None)


def test_csv_renewal_does_not_lift_a_lock_syscom_set(cluster, ldap, member, tmp_path):
    lapsed, kept = member(lock=1, reason="lapsed"), member(lock=12345, reason="syscom: abuse")
    csv = tmp_path / "renewals.csv"
    csv.write_text(f"uid\n{lapsed}\n{kept}\n")
    proc = ceo(cluster, "ofstaff", "members", "renew", "--csv", str(csv))
    assert proc.returncode == 0, proc.stderr
    assert "shadowExpire" not in entry(ldap, user_dn(cluster, lapsed), "shadowExpire")
    after = entry(ldap, user_dn(cluster, kept), "term", "shadowExpire")
    assert NOW in after["term"] and after["shadowExpire"] == ["12345"]


def test_a_raw_client_cannot_plan_an_unlock_of_a_syscom_lock(cluster, ldap, member, connect):
    """renew_rows writes what the client planned; the unlock is tied to the lapsed reason in the
    same LDAP modify, so a plan that says "unlock" for another lock is refused by LDAP itself."""
    uid = member(lock=12345, reason="syscom: abuse")
    session = Raw(connect("phosphoric-acid", "ofstaff"))
    session.hello()
    events, reply = session.request("r1", "members", "renew_rows",
                                    {"uids": [uid], "adds": [""], "expires": [12345], "clubrep": False})
    assert session.finish()[1] == 0
    assert reply["result"]["rows"][0]["status"] != "done", reply
    after = entry(ldap, user_dn(cluster, uid), "shadowExpire", "lockReason")
    assert after["shadowExpire"] == ["12345"] and after["lockReason"] == ["syscom: abuse"]


# --- lists tied to a group are syscom's -------------------------------------------------------

def mailing_list(cluster, name: str):
    from mailmanclient import Client

    from sandbox.topology import MAILMAN_PASS, MAILMAN_USER
    client = Client(f"http://{cluster.addrs['mail']}:8001/3.1", MAILMAN_USER, MAILMAN_PASS)
    return client.get_list(f"{name}@csclub.internal")


def roster(cluster, name: str) -> set[str]:
    return {m.email for m in mailing_list(cluster, name).members}


@pytest.fixture
def kept_roster(cluster):
    """kept_roster(name) -> the roster now; whatever a failing test changed is put back."""
    kept = {}

    def keep(name):
        kept[name] = roster(cluster, name)
        return kept[name]
    yield keep
    for name, before in kept.items():
        mlist = mailing_list(cluster, name)
        now = roster(cluster, name)
        for address in now - before:
            mlist.unsubscribe(address, pre_confirmed=True, pre_approved=True)
        for address in before - now:
            mlist.subscribe(address, pre_verified=True, pre_confirmed=True, pre_approved=True,
                            send_welcome_message=False)
        assert roster(cluster, name) == before


@pytest.mark.parametrize("name", ["syscom", "syscom-alerts", "exec"])
@pytest.mark.parametrize("who", ["ofstaff", "regular1", "someone@example.org"])
def test_office_cannot_subscribe_anyone_to_a_group_list(cluster, kept_roster, name, who):
    before = kept_roster(name)
    proc = ceo(cluster, "ofstaff", "lists", "subscribe", name, who)
    refused(proc, 3, f"{name} follows a group's membership")
    assert roster(cluster, name) == before


def test_office_cannot_unsubscribe_syscom_from_their_list(cluster, kept_roster):
    if "ctdalek@csclub.internal" not in roster(cluster, "syscom"):
        assert ceo(cluster, "ctdalek", "lists", "subscribe", "syscom", "ctdalek").returncode == 0
    kept_roster("syscom")
    proc = ceo(cluster, "ofstaff", "lists", "unsubscribe", "syscom", "ctdalek")
    refused(proc, 3, "syscom follows a group's membership")
    assert "ctdalek@csclub.internal" in roster(cluster, "syscom")


def test_syscom_still_changes_a_group_list(cluster):
    address = f"{uuid.uuid4().hex[:8]}@example.org"
    assert ceo(cluster, "ctdalek", "lists", "subscribe", "exec", address).returncode == 0
    try:
        assert address in roster(cluster, "exec")
    finally:
        assert ceo(cluster, "ctdalek", "lists", "unsubscribe", "exec", address).returncode == 0
    assert address not in roster(cluster, "exec")


# --- protected accounts: their mail and shell are theirs and syscom's ---------------------------

def forward_of(uid: str):
    from pathlib import Path
    path = Path("/users") / uid / ".forward"
    return path.read_text() if path.exists() else None


@pytest.fixture
def kept_account(cluster, ldap):
    """kept_account(uid): its ~/.forward and login shell are put back after the test."""
    import os
    kept = []

    def keep(uid):
        kept.append((uid, forward_of(uid), entry(ldap, user_dn(cluster, uid), "loginShell")["loginShell"]))
    yield keep
    for uid, forward, shell in kept:
        path = f"/users/{uid}/.forward"
        if forward_of(uid) != forward:
            if forward is None:
                os.unlink(path)
            else:
                with open(path, "w") as f:
                    f.write(forward)
        assert ldap.modify(user_dn(cluster, uid), {"loginShell": [("MODIFY_REPLACE", shell)]}), ldap.result
        assert forward_of(uid) == forward


@pytest.fixture
def in_group(cluster, ldap):
    """in_group(uid, group): uid joins the group for this test (and leaves it after)."""
    added = []

    def join(uid, group):
        dn = f"cn={group},ou=Group,{cluster.base_dn}"
        assert ldap.modify(dn, {"uniqueMember": [("MODIFY_ADD", [user_dn(cluster, uid)])]}), ldap.result
        added.append((dn, uid))
        return uid
    yield join
    for dn, uid in added:
        assert ldap.modify(dn, {"uniqueMember": [("MODIFY_DELETE", [user_dn(cluster, uid)])]}), ldap.result


@pytest.mark.parametrize("target", ["ctdalek", "exec-member"])
def test_office_cannot_redirect_a_protected_accounts_mail(cluster, in_group, kept_account, target):
    uid = in_group("regular2", "exec") if target == "exec-member" else target
    kept_account(uid)
    before = forward_of(uid)
    proc = ceo(cluster, "ofstaff", "members", "modify", uid, "--forwarding-address", "thief@example.org")
    refused(proc, 3, "a protected account")
    assert forward_of(uid) == before
    proc = ceo(cluster, "ofstaff", "members", "modify", uid, "--login-shell", "/bin/sh")
    refused(proc, 3, "a protected account")


def test_office_cannot_redirect_another_office_members_mail(cluster, in_group, kept_account):
    uid = in_group("regular2", "office")
    kept_account(uid)
    before = forward_of(uid)
    proc = ceo(cluster, "ofstaff", "members", "modify", uid, "--forwarding-address", "thief@example.org")
    refused(proc, 3, "a protected account")
    assert forward_of(uid) == before


def test_a_protected_member_and_syscom_still_change_it(cluster, in_group, kept_account):
    uid = in_group("regular2", "exec")
    kept_account(uid)
    assert ceo(cluster, uid, "members", "modify", uid, "--forwarding-address", "r2@example.org").returncode == 0
    assert forward_of(uid) == "r2@example.org\n"
    assert ceo(cluster, "ctdalek", "members", "modify", uid, "--forwarding-address",
               "r2b@example.org").returncode == 0
    assert forward_of(uid) == "r2b@example.org\n"


# --- text from LDAP never drives a staff terminal ---------------------------------------------

HOSTILE_TEXT = "Eve \x1b]0;pwned\x07\x1b[2J\x1b[31mred\u202eelif.exe\u2066\x9b"


@pytest.mark.parametrize("command", [["members", "get", "{uid}"], ["members", "list", "--term", PREV]])
def test_names_from_ldap_reach_the_terminal_neutralised(cluster, ldap, member, command):
    uid = member()
    assert ldap.modify(user_dn(cluster, uid), {"cn": [("MODIFY_REPLACE", [HOSTILE_TEXT])],
                                               "program": [("MODIFY_REPLACE", ["[bold]Math[/]\x1b[5m"])]}), ldap.result
    proc = ceo(cluster, "ofstaff", *[c.format(uid=uid) for c in command])
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    assert uid in out
    for char in "\x1b\x07\x9b\u202e\u2066":
        assert char not in out, (char, out)
    if command[1] == "get":  # (a table wraps its cells)
        assert "\\x1b]0;pwned\\x07" in out and "\\u202e" in out  # shown, as visible escapes
        assert "[bold]Math[/]" in out  # markup in data is printed, not obeyed


# --- steps are not commands -------------------------------------------------------------------

STEPS = ["create", "principal", "password", "home", "welcome", "announce", "info", "forwarding",
         "set_shell", "set_forwarding", "renew_lookup", "university", "renew_rows", "renew_terms", "remove_home",
         "purge_home", "remove_ldap", "remove_principal"]


def test_a_step_typed_as_a_command_is_refused_and_writes_nothing(cluster, ldap):
    uid = f"p{uuid.uuid4().hex[:8]}"
    proc = ceo(cluster, "ofstaff", "members", "create", uid, "--cn", "Alice")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "invalid choice: 'create'" in proc.stderr
    assert not ldap.search(f"ou=People,{cluster.base_dn}", f"(uid={uid})")
    assert not ldap.search(f"ou=Group,{cluster.base_dn}", f"(cn={uid})")


@pytest.mark.parametrize("argv", [["members", "nosuchverb"], ["members", "--help"], ["lists", "nosuchverb"]])
def test_steps_are_not_listed(cluster, argv):
    proc = ceo(cluster, "ofstaff", *argv)
    text = proc.stdout + proc.stderr
    assert "add" in text or "subscribe" in text, text  # the real verbs are listed
    # Verbs are indented by four spaces; wrapped help text (which may start with any word) by more.
    listed = {line.split()[0] for line in text.splitlines() if line.startswith("    ") and line[4:5].strip()}
    for step in STEPS + ["unsubscribe_all"]:
        assert f"'{step}'" not in text and step not in listed, (step, text)


# --- reserved names: any host's system users and groups, and the configured list --------------

@pytest.fixture
def no_account_left(cluster, ldap):
    """names(...) that a failing test might have added are deleted again (as syscom)."""
    names = []
    yield names.extend
    for name in names:
        if ldap.search(f"ou=People,{cluster.base_dn}", f"(uid={name})"):
            assert ceo(cluster, "ctdalek", "members", "delete", name, "--yes").returncode == 0


# On no host here (the list catches them), and one that is a group on this machine.
@pytest.mark.parametrize("name, why", [("docker", "a reserved name"), ("lpadmin", "a reserved name"),
                                       ("libvirt", "a reserved name"), ("lxd", "a reserved name"),
                                       ("systemd-journal", "already a group on")])
def test_a_member_cannot_take_a_system_groups_name(cluster, ldap, no_account_left, name, why):
    no_account_left([name])
    proc = ceo(cluster, "ofstaff", "members", "add", name, "--cn", "Sneaky", "--no-welcome")
    refused(proc, 2, f"{name} is {why}")
    assert not ldap.search(f"ou=People,{cluster.base_dn}", f"(uid={name})")
    assert not ldap.search(f"ou=Group,{cluster.base_dn}", f"(cn={name})")


def sshd_logins(cluster, host: str) -> int:
    return (cluster.state / "hosts" / host / "sshd.log").read_text().count("Accepted gssapi-with-mic")


def test_add_asks_every_host_whether_the_name_is_free(cluster, ldap):
    """The name check runs on each host of the inventory (a group may exist on one only),
    before anything is written."""
    before = {h: sshd_logins(cluster, h) for h in ("phosphoric-acid", "coffee", "mail")}
    proc = ceo(cluster, "ofstaff", "members", "add", "postgres", "--cn", "X", "--no-welcome")
    refused(proc, 2, "postgres is already a user on")
    assert {h: sshd_logins(cluster, h) - n for h, n in before.items()} == \
        {"phosphoric-acid": 1, "coffee": 1, "mail": 1}
    assert not ldap.search(f"ou=Group,{cluster.base_dn}", "(cn=postgres)")


# --- found by an attacker's review --------------------------------------------------------------

def audit_since(cluster, start: int) -> list[dict]:
    with open(cluster.state / "audit.jsonl", "rb") as f:
        f.seek(start)
        return [json.loads(line) for line in f.read().splitlines()]


def test_a_batch_row_with_nothing_to_do_is_not_sent_and_the_others_are_audited(cluster, ldap, member, connect):
    """An empty row used to make ldap3 refuse the modify after earlier rows were in flight:
    the request failed, the earlier rows were written anyway, and none was audited."""
    first, second = member(), member()
    audit = cluster.state / "audit.jsonl"
    start = audit.stat().st_size if audit.exists() else 0
    session = Raw(connect("phosphoric-acid", "ofstaff"))
    session.hello()
    _, reply = session.request("r1", "members", "renew_rows",
                               {"uids": [first, second], "adds": [NOW, ""], "expires": [-1, -1], "clubrep": False})
    assert session.finish()[1] == 0
    assert [(r["uid"], r["status"]) for r in reply["result"]["rows"]] == [(first, "done"), (second, "unchanged")]
    assert NOW in entry(ldap, user_dn(cluster, first), "term")["term"]
    assert NOW not in entry(ldap, user_dn(cluster, second), "term")["term"]
    records = [r for r in audit_since(cluster, start) if r["verb"] == "renew_rows"]
    assert [(r["args"]["uid"], r["outcome"]) for r in records] == [(first, "done")]


@pytest.mark.parametrize("target", ["club1", "ceod"])
def test_office_cannot_change_the_shell_of_an_account_ceo_does_not_manage(cluster, ldap, connect, target):
    dn = user_dn(cluster, target)
    exists = ldap.search(dn, "(objectClass=*)", search_scope="BASE", attributes=["loginShell"])
    before = entry(ldap, dn, "loginShell") if exists else None
    try:
        session = Raw(connect("phosphoric-acid", "ofstaff"))
        session.hello()
        _, reply = session.request("r1", "members", "set_shell", {"uid": target, "shell": "/bin/sh"})
        assert session.finish()[1] == 0
        assert reply["error"] == {"name": "NotPermitted", "exit": 3,
                                  "message": f"{target} is not a member account ceo manages"}, reply
        if exists:
            assert entry(ldap, dn, "loginShell") == before
        proc = ceo(cluster, "ofstaff", "members", "modify", target, "--login-shell", "/bin/sh")
        refused(proc, 3, f"{target} is not a member account ceo manages")
    finally:  # a broken check must not leave the club with another shell
        if exists and entry(ldap, dn, "loginShell") != before:
            assert ldap.modify(dn, {"loginShell": [("MODIFY_REPLACE", before["loginShell"])]}), ldap.result
