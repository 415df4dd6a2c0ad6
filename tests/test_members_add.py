"""`ceo members add`: a real account, or nothing at all. Checked with independent tools."""

from __future__ import annotations

import json
import mailbox
import os
import shutil
import signal
import socket
import stat
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import ldap3
import pytest
import rawhelper

from ceo import terms
from sandbox import control

BASE = "dc=csclub,dc=internal"


def uid_() -> str:
    return f"n{uuid.uuid4().hex[:8]}"


def ceo(cluster, user, *args):
    return cluster.run(["ceo", "members", *args], user)


@pytest.fixture(scope="module")
def ldap(cluster):
    conn = ldap3.Connection(ldap3.Server("ldapi://" + str(cluster.state / "ldap" / "ldapi").replace("/", "%2F")),
                            authentication=ldap3.SASL, sasl_mechanism=ldap3.EXTERNAL, sasl_credentials="",
                            auto_bind=True)
    yield conn
    conn.unbind()


def entry(ldap, dn):
    ldap.search(dn, "(objectClass=*)", search_scope=ldap3.BASE, attributes=["*"])
    return ldap.entries[0].entry_attributes_as_dict if ldap.entries else None


def principal(name) -> str | None:
    proc = subprocess.run(["kadmin.local", "-q", f"getprinc {name}"], capture_output=True, text=True)
    return proc.stdout if "Principal:" in proc.stdout else None


def sink(cluster) -> list:
    return list(mailbox.Maildir(cluster.state / "mail" / "sink", create=False))


def messages_to(cluster, address, subject_part=""):
    return [m for m in sink(cluster) if address in (m["To"] or "") and subject_part in (m["Subject"] or "")]


def mailman():
    from mailmanclient import Client
    return Client("http://127.0.0.4:8001/3.1", "restadmin", "restpass")


def subscribed(address, list_name="csc-general") -> bool:
    return address in {m.email for m in mailman().get_list(f"{list_name}@csclub.internal").members}


def principals() -> set[str]:
    proc = subprocess.run(["kadmin.local", "-q", "listprincs"], capture_output=True, text=True)
    assert proc.returncode == 0 and "K/M@CSCLUB.INTERNAL" in proc.stdout, proc
    return {line for line in proc.stdout.splitlines() if "@" in line and not line.startswith("Authenticating")}


def snapshot(cluster, ldap) -> dict:
    """Everything an add could write, read from each service itself: the whole directory, every
    principal, every entry under /users, every message the SMTP sink took, every list roster."""
    assert ldap.search(BASE, "(objectClass=*)", attributes=["*"]), ldap.result
    tree = {e.entry_dn: e.entry_attributes_as_dict for e in ldap.entries}
    assert f"uid=ofstaff,ou=People,{BASE}" in tree and f"cn=office,ou=Group,{BASE}" in tree
    rosters = {l.fqdn_listname: sorted(m.email for m in l.members) for l in mailman().lists}
    assert "csc-general@csclub.internal" in rosters
    return {"ldap": tree, "kerberos": principals(), "homes": sorted(os.listdir("/users")),
            "mail": sorted(mailbox.Maildir(cluster.state / "mail" / "sink", create=False).keys()),
            "lists": rosters}


def revert(cluster, ldap, before: dict):
    """Undo whatever differs from `before` (only after a failed test: a broken check must not
    leave accounts that make a later test pass or fail)."""
    now = snapshot(cluster, ldap)
    for dn in sorted(set(now["ldap"]) - set(before["ldap"]), key=len, reverse=True):  # children first
        assert ldap.delete(dn), (dn, ldap.result)
    for name in now["kerberos"] - before["kerberos"]:  # kadmin.local exits 0 even when it fails
        subprocess.run(["kadmin.local", "-q", f'delprinc -force "{name}"'], capture_output=True, check=True)
    assert principals() <= before["kerberos"]
    for name in set(now["homes"]) - set(before["homes"]):
        path = os.path.join("/users", name)
        shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.unlink(path)
    for list_name, members in now["lists"].items():
        for address in set(members) - set(before["lists"].get(list_name, [])):
            mailman().get_list(list_name).unsubscribe(address)


def remove(cluster, ldap, uid):
    """Whatever an add of `uid` left, gone: through ceo when the account exists, else piece by
    piece (a broken add may have left a principal or a home without its LDAP entry)."""
    if entry(ldap, f"uid={uid},ou=People,{BASE}") is not None:
        proc = cluster.run(["ceo", "members", "delete", uid, "--yes"], "ctdalek")
        assert proc.returncode == 0, proc.stderr
    if entry(ldap, f"cn={uid},ou=Group,{BASE}") is not None:
        assert ldap.delete(f"cn={uid},ou=Group,{BASE}"), ldap.result
    if principal(uid) is not None:
        proc = subprocess.run(["kadmin.local", "-q", f"delprinc -force {uid}"], capture_output=True, text=True)
        assert proc.returncode == 0 and principal(uid) is None, proc
    if os.path.lexists(f"/users/{uid}"):
        shutil.rmtree(f"/users/{uid}")


@pytest.fixture
def cleanup(cluster, ldap):
    made = []
    yield made
    for uid in made:
        remove(cluster, ldap, uid)


def test_a_new_member_is_a_real_account(cluster, ldap, cleanup, tmp_path):
    uid = uid_()
    cleanup.append(uid)
    proc = ceo(cluster, "ofstaff", "add", uid, "--cn", "Newt Member", "--program", "MAT/Computer Science",
               "--forwarding-address", f"{uid}@example.org", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)["result"]
    password = result["password"]
    assert len(password) >= 12

    # LDAP: the user with its classes, a number in the member range, the current term; its group.
    user = entry(ldap, f"uid={uid},ou=People,{BASE}")
    assert {"account", "posixAccount", "shadowAccount", "member"} <= set(user["objectClass"])
    number = int(user["uidNumber"][0])
    assert 20001 <= number <= 29999 and int(user["gidNumber"][0]) == number == result["uidNumber"]
    assert user["term"] == [terms.current()] and user["loginShell"] == ["/bin/bash"]
    assert user["homeDirectory"] == [f"/users/{uid}"] and "shadowExpire" not in user
    group = entry(ldap, f"cn={uid},ou=Group,{BASE}")
    assert int(group["gidNumber"][0]) == number and {"group", "posixGroup"} <= set(group["objectClass"])

    # Kerberos: the principal must change its password; kinit with the temporary one says so.
    assert "REQUIRES_PWCHANGE" in principal(uid)
    ccache = tmp_path / "cc"
    new_password = "Chosen-by-" + uid
    first = subprocess.run(["kinit", "-c", f"FILE:{ccache}", uid], input=f"{password}\n{new_password}\n{new_password}\n",
                           capture_output=True, text=True)
    assert first.returncode == 0 and "Password expired" in first.stdout, first
    ccache.unlink()
    again = subprocess.run(["kinit", "-c", f"FILE:{ccache}", uid], input=f"{new_password}\n", capture_output=True,
                           text=True)
    assert again.returncode == 0, again.stderr

    # NSS from LDAP, and an SSH login to phosphoric-acid with the changed password's ticket.
    assert subprocess.run(["id", "-u", uid], capture_output=True, text=True).stdout.strip() == str(number)
    hello = json.dumps({"hello": "ceo", "protocol": [1, 1]}) + "\n"
    login = subprocess.run(["ssh", "-o", "BatchMode=yes", f"{uid}@phosphoric-acid.csclub.internal"], input=hello,
                           capture_output=True, text=True, env={**os.environ, "KRB5CCNAME": f"FILE:{ccache}"})
    assert login.returncode == 0, login.stderr
    assert json.loads(login.stdout)["caller"] == uid

    # The home directory: the skeleton's files, recursively, owned by the member, mode 0755.
    home = f"/users/{uid}"
    assert stat.S_IMODE(os.stat(home).st_mode) == 0o755
    for name in (".bashrc", ".profile", "www/index.html"):
        st = os.stat(os.path.join(home, name))
        assert (st.st_uid, st.st_gid) == (number, number), name
    assert open(f"{home}/.forward").read() == f"{uid}@example.org\n"

    # Mail: the welcome message, csc-general, and the announcement naming who added whom.
    welcome = messages_to(cluster, f"{uid}@csclub.internal", "Welcome")
    assert len(welcome) == 1 and password not in welcome[0].get_payload()
    assert subscribed(f"{uid}@csclub.internal")
    announced = messages_to(cluster, "ceo@csclub.internal", f"New Member: {uid}")
    assert len(announced) == 1 and "Added by: ofstaff" in announced[0].get_payload()
    assert "FAILED" not in announced[0]["Subject"]

    # The password was shown once, to the operator, and is nowhere else.
    assert password not in (cluster.state / "audit.jsonl").read_text()
    assert all(password not in m.as_string() for m in sink(cluster))


def test_a_club_rep_gets_nonmember_terms_and_no_welcome(cluster, ldap, cleanup):
    uid = uid_()
    cleanup.append(uid)
    proc = ceo(cluster, "ctdalek", "add", uid, "--cn", "Rep Resentative", "--clubrep", "--terms", "2")
    assert proc.returncode == 0, proc.stderr
    user = entry(ldap, f"uid={uid},ou=People,{BASE}")
    assert user["nonMemberTerm"] == terms.interval(terms.current(), 2) and "term" not in user
    assert messages_to(cluster, f"{uid}@csclub.internal") == []
    assert not subscribed(f"{uid}@csclub.internal")
    assert len(messages_to(cluster, "ceo@csclub.internal", f"New Club Rep: {uid}")) == 1


def add_while_stopped(cluster, service: str, *args):
    """`ceo members add ARGS` as office while one sandbox service is stopped (started again after)."""
    control.service("stop", service)
    try:
        return ceo(cluster, "ofstaff", "add", *args)
    finally:
        control.service("start", service)


def test_kadmind_down_leaves_nothing_behind(cluster, ldap, cleanup):
    uid = uid_()
    cleanup.append(uid)  # only if the test fails: then a half account would be left
    proc = add_while_stopped(cluster, "kadmind", uid, "--cn", "Half Account")
    assert proc.returncode == 1
    assert "kadmind" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert f"undid: added LDAP user {uid}" in proc.stdout and f"undid: added personal group {uid}" in proc.stdout
    assert entry(ldap, f"uid={uid},ou=People,{BASE}") is None
    assert entry(ldap, f"cn={uid},ou=Group,{BASE}") is None
    assert not os.path.exists(f"/users/{uid}") and principal(uid) is None
    failed = messages_to(cluster, "ceo@csclub.internal", f"New Member: {uid} (FAILED)")
    assert len(failed) == 1 and "NOT created" in failed[0].get_payload()
    assert messages_to(cluster, f"{uid}@csclub.internal") == []


def test_mailman_down_the_add_succeeds_with_a_warning(cluster, ldap, cleanup):
    uid = uid_()
    cleanup.append(uid)
    proc = add_while_stopped(cluster, "mailman", uid, "--cn", "Quiet Member", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert any("csc-general" in w and "Mailman" in w for w in doc["result"]["warnings"])
    assert [s for s in doc["steps"] if s["status"] == "warning"]
    assert entry(ldap, f"uid={uid},ou=People,{BASE}") is not None and principal(uid) is not None
    assert os.path.isdir(f"/users/{uid}")


def test_smtp_down_the_add_succeeds_with_a_warning(cluster, ldap, cleanup):
    uid = uid_()
    cleanup.append(uid)
    proc = add_while_stopped(cluster, "smtp-sink", uid, "--cn", "Unwelcomed Member", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    warned = {s["step"] for s in doc["steps"] if s["status"] == "warning"}
    assert warned == {"welcome email", "announcement to the ceo list"}, doc["steps"]
    assert len(doc["result"]["warnings"]) == 2 and all("SMTP" in w for w in doc["result"]["warnings"])
    # The account itself is whole: LDAP, its group, the principal, the home; and it is on the list.
    user = entry(ldap, f"uid={uid},ou=People,{BASE}")
    number = int(user["uidNumber"][0])
    assert int(entry(ldap, f"cn={uid},ou=Group,{BASE}")["gidNumber"][0]) == number
    assert "REQUIRES_PWCHANGE" in principal(uid)
    assert os.stat(f"/users/{uid}/.bashrc").st_uid == number
    assert subscribed(f"{uid}@csclub.internal")
    assert messages_to(cluster, f"{uid}@csclub.internal", "Welcome") == []


def as_from_a_terminal():
    """SIGINT at its default in the ceo a Ctrl-C test starts: a suite started in the background
    (`pytest &`) has it ignored, and would pass that on, and the test would test nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _sigint_ignored(pid: int) -> bool:
    with open(f"/proc/{pid}/status") as f:
        mask = next(int(line.split()[1], 16) for line in f if line.startswith("SigIgn:"))
    return bool(mask & (1 << (signal.SIGINT - 1)))


def test_ctrl_c_during_add_undoes_the_done_steps(cluster, ldap, cleanup):
    """SIGINT while the principal step waits on kadmind, with the LDAP user and group already
    added: the runner undoes them, exits 1 (CeoError), and sends no mail."""
    uid = uid_()
    cleanup.append(uid)
    before = snapshot(cluster, ldap)
    # kadmind stopped, and in its place a socket that accepts and never answers: the principal
    # step is provably in flight (its connection arrived) after the LDAP step has finished.
    control.service("stop", "kadmind")
    hole = socket.socket()
    proc = None
    try:
        hole.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        hole.bind(("127.0.0.2", 749))
        hole.listen(8)
        hole.settimeout(60)
        proc = subprocess.Popen(["ceo", "members", "add", uid, "--cn", "Interrupted Member"], text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cluster.env("ofstaff"),
                                preexec_fn=as_from_a_terminal)
        conn, _ = hole.accept()
        with conn:
            assert entry(ldap, f"uid={uid},ou=People,{BASE}") is not None  # a step is done
            assert entry(ldap, f"cn={uid},ou=Group,{BASE}") is not None
            proc.send_signal(signal.SIGINT)
            # The runner ignores SIGINT while it undoes: wait until it is in there (no timing
            # involved), then let the stuck step fail so the helper reaches the undo requests.
            # (If it exits instead, the checks below say what it left.)
            deadline = time.monotonic() + 60
            while proc.poll() is None and not _sigint_ignored(proc.pid):
                assert time.monotonic() < deadline, "the client neither undid nor exited"
                time.sleep(0.02)
        hole.close()
        out, err = proc.communicate(timeout=120)
    finally:
        hole.close()
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        control.service("start", "kadmind")
    assert entry(ldap, f"uid={uid},ou=People,{BASE}") is None and entry(ldap, f"cn={uid},ou=Group,{BASE}") is None
    assert principal(uid) is None and not os.path.lexists(f"/users/{uid}")
    assert snapshot(cluster, ldap) == before  # nothing anywhere: no principal, home, mail or subscription
    assert proc.returncode == 1, err
    assert err == "ceo: interrupted: the completed steps were undone\n"
    assert f"undid: added LDAP user {uid}" in out and f"undid: added personal group {uid}" in out


def test_twenty_concurrent_adds_get_distinct_numbers(cluster, ldap, cleanup):
    uids = [uid_() for _ in range(20)]
    cleanup.extend(uids)

    def add(uid):
        return ceo(cluster, "ofstaff", "add", uid, "--cn", f"Crowd {uid}", "--no-welcome", "--no-subscribe")
    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(add, uids))
    assert [r.returncode for r in results] == [0] * 20, [r.stderr for r in results if r.returncode]
    numbers = [int(entry(ldap, f"uid={u},ou=People,{BASE}")["uidNumber"][0]) for u in uids]
    assert len(set(numbers)) == 20


def test_adding_an_existing_uid_changes_nothing(cluster, ldap):
    before = entry(ldap, f"uid=regular1,ou=People,{BASE}")
    proc = ceo(cluster, "ofstaff", "add", "regular1", "--cn", "Imposter")
    assert proc.returncode == 2
    # every host is asked first whether the name is free: the ldap host knows it (NSS from LDAP)
    assert proc.stderr.strip() == "ceo: regular1 is already a user on phosphoric-acid.csclub.internal"
    assert entry(ldap, f"uid=regular1,ou=People,{BASE}") == before
    assert not [m for m in sink(cluster) if "Imposter" in m.as_string()]
    records = [json.loads(line) for line in (cluster.state / "audit.jsonl").read_text().splitlines()]
    assert not [r for r in records if r["args"].get("cn") == "Imposter" and r["outcome"] == "done"]


def test_check_mode_shows_the_plan_and_writes_nothing(cluster, ldap):
    uid = uid_()
    proc = ceo(cluster, "ofstaff", "add", uid, "--cn", "Maybe Member", "--forwarding-address", "m@example.org",
               "--check")
    assert proc.returncode == 0, proc.stderr
    for expected in (f"~ would add uid={uid},ou=People", f"~ would create principal {uid}@CSCLUB.INTERNAL",
                     f"~ would copy /users/skel to /users/{uid}", f"~ would write /users/{uid}/.forward: m@example.org",
                     f"~ would email the welcome message to {uid}@csclub.internal",
                     f"~ would subscribe {uid}@csclub.internal to csc-general", "~ would email ceo@csclub.internal"):
        assert expected in proc.stdout.replace("\n", " "), expected
    assert entry(ldap, f"uid={uid},ou=People,{BASE}") is None and principal(uid) is None
    assert not os.path.exists(f"/users/{uid}") and not [m for m in sink(cluster) if uid in m.as_string()]


HOSTILE_UIDS = ["*)(uid=*", "x'; DROP TABLE members; --", "../etc", "../../root", "a\nb", "a\rb", "a,ou=Group",
                "Root", "a b", "$(touch /tmp/ceo-pwn)", "ümlaut", "a" * 33, "", "-rf", "a\x1b[2Jb", "a/b"]


@pytest.mark.parametrize("uid", HOSTILE_UIDS)
def test_hostile_uids_are_refused_and_nothing_is_written(cluster, ldap, uid):
    before = snapshot(cluster, ldap)
    try:
        proc = ceo(cluster, "ofstaff", "add", uid, "--cn", "Hostile Name", "--forwarding-address", "h@example.org")
        assert proc.returncode == 2, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert snapshot(cluster, ldap) == before
    except BaseException:
        revert(cluster, ldap, before)
        raise


@pytest.mark.parametrize("args", [
    ["okname", "--cn", "x", "--term", "w20x7"], ["okname", "--cn", "x", "--terms", "0"],
    ["okname", "--cn", "x", "--terms", "2", "--term", "w2027"], ["okname", "--cn", "line\nbreak"],
    ["okname", "--cn", "x", "--forwarding-address", "a@b.org\nBcc: c@d.org"], ["okname"],
])
def test_bad_input_is_refused_before_anything_is_written(cluster, ldap, args):
    before = snapshot(cluster, ldap)
    try:
        proc = ceo(cluster, "ofstaff", "add", *args)
        assert proc.returncode == 2, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
        assert snapshot(cluster, ldap) == before
    except BaseException:
        revert(cluster, ldap, before)
        raise


def test_members_cannot_add(cluster, ldap):
    uid = uid_()
    proc = ceo(cluster, "regular1", "add", uid, "--cn", "Sneaky")
    assert proc.returncode == 3 and "needs office or syscom" in proc.stderr
    assert entry(ldap, f"uid={uid},ou=People,{BASE}") is None


# --- what office staff cannot do through the step verbs (found in review) -------------------

@pytest.mark.parametrize("address", ["|/tmp/ceo-pwn@example.org", "/tmp/x@example.org", ":include:/etc/x@a.org",
                                     '"x y"@example.org'])
def test_forwarding_is_an_address_never_a_pipe_or_file(cluster, address):
    proc = ceo(cluster, "ofstaff", "add", uid_(), "--cn", "X", "--forwarding-address", address)
    assert proc.returncode == 2 and "is not an email address" in proc.stderr


@pytest.mark.parametrize("name", ["root", "postgres", "ceod"])
def test_no_principal_for_a_system_account(cluster, connect, name):
    # the principal step, sent as a client would (a step is not a command)
    _, reply = rawhelper.request(connect("phosphoric-acid", "ofstaff"), "members", "principal", {"uid": name})
    assert reply["error"] == {"name": "NotPermitted", "exit": 3,
                              "message": f"{name} is not a member account ceo manages"}, reply
    if name != "ceod":
        assert principal(name) is None


@pytest.mark.parametrize("name, why", [("sudo", "already a group"), ("adm", "adm is already a group on"),
                                       ("postgres", "already a user"), ("postmaster", "reserved name"),
                                       ("csc-general", "is an address of the list csc-general"),
                                       ("exec-request", "is an address of the list exec")])
def test_system_names_cannot_become_members(cluster, ldap, name, why):
    proc = ceo(cluster, "ofstaff", "add", name, "--cn", "Sneaky")
    assert proc.returncode == 2 and why in proc.stderr
    assert entry(ldap, f"uid={name},ou=People,{BASE}") is None


def test_home_step_only_for_member_accounts(cluster, connect):
    try:
        _, reply = rawhelper.request(connect("phosphoric-acid", "ofstaff"), "members", "home", {"uid": "newname"})
        assert reply["error"] == {"name": "NotPermitted", "exit": 3,
                                  "message": "newname is not a member account ceo manages"}, reply
        assert not os.path.lexists("/users/newname")
    finally:  # a broken step must not leave a home that a later test trips over
        if os.path.lexists("/users/newname"):
            shutil.rmtree("/users/newname")
