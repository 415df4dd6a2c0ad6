"""`sandbox/demo`, the README's first command: run non-interactively on the sandbox, every step
it shows checked with other tools (root LDAP over ldapi, kadmin.local and kinit, the database
servers as their superusers and as the member, Mailman's REST API, files on disk); it runs twice,
and `--clean` leaves nothing of it. And the test plugin is no user's: `ceo --help`, `ceo plugins`
and `ceo whoami` show it only while a test module loads it (the `testkit` fixture)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess

import pytest
from rootldap import RootLDAP
from test_databases import exists, info_file, login
from test_members_manage import getprinc, kinit

from ceo import terms as T
from sandbox import control, demo

REPO = control.REPO
BASE = "dc=csclub,dc=internal"
PEOPLE, GROUPS = f"ou=People,{BASE}", f"ou=Group,{BASE}"
DOMAIN = "csclub.internal"
NOW = T.current()
LATER = [T.add(NOW, 1), T.add(NOW, 2)]


def run_demo(*args, stdin=subprocess.DEVNULL) -> subprocess.CompletedProcess:
    return subprocess.run([str(REPO / "sandbox" / "demo"), *args], stdin=stdin, capture_output=True,
                          text=True, timeout=300, cwd=REPO)


@pytest.fixture(scope="module")
def root(cluster):
    return RootLDAP(cluster)


@pytest.fixture(scope="module")
def runs(cluster):
    """Two runs of the demo in a row: without a flag (stdin is no terminal: no pauses), then
    --no-pause. Afterwards --clean, as a user would."""
    first = run_demo()
    second = run_demo("--no-pause") if first.returncode == 0 else first
    yield first, second
    run_demo("--clean")


def shown(out: str, pattern: str) -> str:
    found = re.search(pattern, out)
    assert found, f"{pattern!r} not in the demo's output:\n{out}"
    return found.group(1)


def test_the_demo_runs_twice_without_a_terminal(runs):
    first, second = runs
    assert first.returncode == 0, first.stdout + first.stderr
    assert second.returncode == 0, second.stdout + second.stderr
    assert "Enter to go on" not in first.stdout + second.stdout  # never waited
    # the second run removed the first run's accounts itself, before making them again
    assert "removed gamedev, alice, bob left by an earlier run of the demo" in second.stdout
    for out in (first.stdout, second.stdout):
        for step in ("ceo members add alice", "ceo members get alice", "ceo members renew --csv",
                     "ceo mysql create alice", "ceo postgresql create alice", "ceo lists subscribe csc-general bob",
                     "ceo positions set --president alice", "ceo groups add gamedev",
                     "ceo groups addmember gamedev alice", "ceo members expire --check"):
            assert step in out, step
        # and how to go on: the office UI, a shell with a ticket, taking it down
        for hint in ("sandbox/ctl shell", "sandbox/ctl run --as ofstaff -- ceo", "sandbox/ctl shell --as ctdalek",
                     "sandbox/ctl down", "sandbox/demo --clean"):
            assert hint in out, hint


def test_the_members_it_adds_exist_with_the_password_it_shows(runs, root, tmp_path):
    out = runs[1].stdout
    alice, bob = root.read(f"uid=alice,{PEOPLE}"), root.read(f"uid=bob,{PEOPLE}")
    assert (alice["cn"], alice["program"]) == (["Alice Liddell"], ["MAT/Computer Science"])
    assert (bob["cn"], bob["program"]) == (["Bob Builder"], ["ENG/Civil Engineering"])
    assert root.read(f"cn=alice,{GROUPS}") and root.read(f"cn=bob,{GROUPS}")
    for uid in ("alice", "bob"):
        st = os.stat(f"/users/{uid}")
        assert (st.st_uid, st.st_gid) == (int(root.read(f"uid={uid},{PEOPLE}")["uidNumber"][0]),) * 2
        assert "REQUIRES_PWCHANGE" in getprinc(uid)  # a temporary password
    # `members get` showed what LDAP holds
    assert shown(out, r"\$ ceo members get alice\n(?:.*\n)*?│ Name +(\S.*?) *│\n") == "Alice Liddell"
    # the password it showed is alice's: kinit with it asks for a new one, and then works
    password = shown(out, r"alice: a new member(?:.*\n)*?│ Temporary password +(\S+) +│")
    proc = kinit("alice", password, tmp_path / "cc", new="demo-changed-pw-9")
    assert proc.returncode == 0, proc.output
    assert "REQUIRES_PWCHANGE" not in getprinc("alice")


def test_the_csv_renewed_both_and_its_receipt_says_so(runs, root):
    out = runs[1].stdout
    assert sorted(root.read(f"uid=alice,{PEOPLE}")["term"]) == sorted([NOW, LATER[0]])
    assert sorted(root.read(f"uid=bob,{PEOPLE}")["term"]) == sorted([NOW, *LATER])
    assert "line 2 alice: done" in out and "line 3 bob: done" in out  # progress, off a terminal
    receipt = demo.RECEIPT.read_text().splitlines()
    assert receipt[0] == "line,uid,outcome,terms,message"
    assert [row.split(",")[:3] for row in receipt[1:]] == [["2", "alice", "done"], ["3", "bob", "done"]]


@pytest.mark.parametrize("noun, label", [("mysql", "MySQL"), ("postgresql", "PostgreSQL")])
def test_alices_databases_are_hers_with_the_password_shown(runs, noun, label):
    assert exists(noun, "alice") == {"database": True, "user": True}
    info = info_file(noun, "alice")  # mode 0600, owned by alice
    assert shown(runs[1].stdout, rf"{label} database alice ─(?:.*\n)*?│ Password +(\S+) +│") == info["password"]
    conn = login(noun, info)  # over TCP, as alice
    conn.close()


def test_bob_and_alice_are_on_the_lists_it_shows(runs, mailman):
    general = {m.email for m in mailman.get_list(f"csc-general@{DOMAIN}").members}
    execs = {m.email for m in mailman.get_list(f"exec@{DOMAIN}").members}
    assert {f"alice@{DOMAIN}", f"bob@{DOMAIN}"} <= general  # alice by `add`, bob by `lists subscribe`
    assert {f"alice@{DOMAIN}", f"bob@{DOMAIN}"} <= execs  # through the positions


def test_the_positions_and_the_club_are_in_ldap(runs, root):
    assert root.read(f"uid=alice,{PEOPLE}")["position"] == ["president"]
    assert root.read(f"uid=bob,{PEOPLE}")["position"] == ["vice-president"]
    exec_members = root.read(f"cn=exec,{GROUPS}").get("uniqueMember", [])
    assert {f"uid=alice,{PEOPLE}", f"uid=bob,{PEOPLE}"} <= set(exec_members)
    club = root.read(f"uid=gamedev,{PEOPLE}")
    assert "club" in club["objectClass"] and club["cn"] == ["Game Development Club"]
    assert root.read(f"cn=gamedev,{GROUPS}")["uniqueMember"] == [f"uid=alice,{PEOPLE}"]
    assert root.read(f"cn=%gamedev,ou=SUDOers,{BASE}")["sudoRunAsUser"] == ["gamedev"]
    assert os.stat("/users/gamedev").st_uid == int(club["uidNumber"][0])


def test_expire_check_changed_nothing(runs, root):
    assert "(check mode: nothing was changed)" in runs[1].stdout
    for uid in ("alice", "bob", "regular1", "regular2", "ofstaff"):
        assert "shadowExpire" not in root.read(f"uid={uid},{PEOPLE}"), uid


def test_clean_leaves_nothing_of_the_demo(cluster, runs, root, mailman):
    """Last in this file: it takes away what the tests above checked."""
    proc = run_demo("--clean")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "removed gamedev, alice, bob" in proc.stdout
    for name in demo.NAMES:
        assert root.read(f"uid={name},{PEOPLE}") is None and root.read(f"cn={name},{GROUPS}") is None, name
        assert not os.path.exists(f"/users/{name}"), name
        assert not [p for p in os.listdir("/users/.deleted") if p.startswith(f"{name}-")
                    ] if os.path.isdir("/users/.deleted") else True, name
    assert root.read(f"cn=%gamedev,ou=SUDOers,{BASE}") is None
    def tombstones(conn):
        conn.search(f"ou=Tombstones,{BASE}", "(|(uid=alice)(uid=bob)(uid=gamedev)(cn=gamedev))", attributes=["uid"])
        return [r["dn"] for r in conn.response if r.get("type") == "searchResEntry"]
    assert root._do(tombstones) == []
    for uid in ("alice", "bob"):
        assert getprinc(uid) == ""
        for noun in ("mysql", "postgresql"):
            assert exists(noun, uid) == {"database": False, "user": False}
    for ml in mailman.lists:
        emails = {m.email for m in ml.members}
        assert not {f"alice@{DOMAIN}", f"bob@{DOMAIN}"} & emails, ml.list_name
    assert not {f"uid=alice,{PEOPLE}", f"uid=bob,{PEOPLE}"} & set(root.read(f"cn=exec,{GROUPS}").get("uniqueMember", []))
    assert not demo.WORK.exists()
    # MariaDB refuses other hosts again (it keeps '%' after the last user@'%' until a reload)
    import pymysql
    with pytest.raises(pymysql.err.OperationalError) as denied:
        pymysql.connect(host=cluster.addrs["coffee"], user="root", connect_timeout=3)
    assert denied.value.args[0] == 1130, denied.value.args  # ER_HOST_NOT_PRIVILEGED
    # nothing left means a run after it starts from scratch: it has nothing to remove
    assert "left by an earlier run" not in run_demo("--clean").stdout


# --- the test plugin is no user's ------------------------------------------------------------

def seen_testkit(cluster, user) -> list[str]:
    """Where `user` sees testkit: ceo --help, ceo plugins, ceo whoami (the helper's verbs)."""
    seen = []
    for argv in (["--help"], ["plugins"], ["whoami", "--json"]):
        proc = cluster.run(["ceo", *argv], user)
        assert proc.returncode == 0, proc.stderr
        if "testkit" in proc.stdout:
            seen.append(argv[0])
    return seen


def test_users_never_see_the_test_plugin_unless_a_test_loads_it(cluster):
    for user in ("ofstaff", "ctdalek", "regular1"):
        assert seen_testkit(cluster, user) == [], user
    control.testkit_load(os.getpid())  # as the `testkit` fixture does: then it shows
    try:
        assert seen_testkit(cluster, "ofstaff") == ["--help", "plugins", "whoami"]
        doc = json.loads(cluster.run(["ceo", "testkit", "whoami", "--json"], "ofstaff").stdout)
        assert doc["result"]["caller"] == "ofstaff"  # through the helper
    finally:
        assert control.testkit_unload(os.getpid())
    assert seen_testkit(cluster, "ofstaff") == []


def test_a_killed_test_session_leaves_it_until_ctl_up(cluster):
    """A session killed before its teardown (SIGKILL, a lost machine) leaves the plugin and its
    record; `sandbox/ctl up` on the running sandbox takes both away, as the next session does."""
    other = subprocess.Popen(["sleep", "60"])
    try:
        control.testkit_load(other.pid)
        assert not control.testkit_repair()  # a live session keeps it
        assert (control.SITE_DIR / "testkit.py").exists()
    finally:
        other.send_signal(signal.SIGKILL)
        other.wait()
    assert seen_testkit(cluster, "ofstaff") == ["--help", "plugins", "whoami"]  # it stayed behind
    proc = subprocess.run([str(REPO / "sandbox" / "ctl"), "up"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "already up" in proc.stdout, proc.stdout + proc.stderr
    assert seen_testkit(cluster, "ofstaff") == []
    assert not (control.SITE_DIR / "testkit.py").exists() and not list(control.TESTKIT_USERS.iterdir())


def test_a_record_names_one_process_not_a_later_one_with_its_pid(cluster):
    """A dead session's pid reused by another process does not keep the plugin: the record holds
    the process's start time too."""
    control.testkit_load(os.getpid())
    record = control.TESTKIT_USERS / str(os.getpid())
    record.write_text("1\n")  # as if an older process of this pid had written it
    assert control.testkit_repair() and not record.exists()
    assert not (control.SITE_DIR / "testkit.py").exists()
