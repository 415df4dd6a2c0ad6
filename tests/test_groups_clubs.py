"""`ceo groups add` and `ceo groups delete`: club accounts, checked with independent tools (root's
LDAP, `getfacl`, `stat`, commands run as club members and non-members with `setpriv`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid

import ldap3
import pytest
from rootldap import RootLDAP

BASE = "dc=csclub,dc=internal"
PEOPLE, GROUPS, SUDO = f"ou=People,{BASE}", f"ou=Group,{BASE}", f"ou=SUDOers,{BASE}"


def name_() -> str:
    return f"c{uuid.uuid4().hex[:8]}"


def ceo(cluster, user, *args):
    return cluster.run(["ceo", "groups", *args], user)


@pytest.fixture(scope="module")
def root(cluster):
    return RootLDAP(cluster)


def write(root, fn):
    """An LDAP change made as root (test setup: a club member, a reference to the club)."""
    def do(conn):
        assert fn(conn), conn.result
    root._do(do)


def add_members(root, club, *uids):
    write(root, lambda c: c.modify(f"cn={club},{GROUPS}",
                                   {"uniqueMember": [(ldap3.MODIFY_ADD, [f"uid={u},{PEOPLE}" for u in uids])]}))


def snapshot(root) -> dict:
    """The whole directory and every name under /users (and its archive)."""
    def tree(conn):
        conn.search(BASE, "(objectClass=*)", attributes=["*"])
        return {e["dn"]: {k: sorted(v) if isinstance(v, list) else v for k, v in e["attributes"].items()}
                for e in conn.response}
    archive = "/users/.deleted"
    return {"ldap": root._do(tree), "homes": sorted(os.listdir("/users")),
            "archive": sorted(os.listdir(archive)) if os.path.isdir(archive) else []}


def as_user(uid, *argv):
    """Run argv as uid, with the groups NSS (LDAP) gives uid: what a login would have."""
    return subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--init-groups", *argv],
                          capture_output=True, text=True, timeout=30)


def until(attempt, patience=30.0):
    """attempt() again until it exits 0 (a cache catching up), at most `patience` seconds: its
    last result either way. A deadline against a hang, not a claim about speed."""
    import time
    deadline = time.monotonic() + patience
    while True:
        result = attempt()
        if result.returncode == 0 or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def getfacl(path) -> set[str]:
    proc = subprocess.run(["getfacl", "-p", "-E", "--omit-header", path], capture_output=True, text=True, check=True)
    return {line for line in proc.stdout.splitlines() if line}


def remove(cluster, root, name):
    """Whatever an add of `name` left: through ceo when the club exists, else piece by piece."""
    if root.read(f"uid={name},{PEOPLE}") is not None:
        proc = ceo(cluster, "ctdalek", "delete", name, "--yes")
        assert proc.returncode == 0, proc.stderr
    for dn in (f"cn=%{name},{SUDO}", f"cn={name},{GROUPS}", f"uid={name},{PEOPLE}"):
        if root.read(dn) is not None:
            write(root, lambda c, dn=dn: c.delete(dn))
    path = f"/users/{name}"
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)


@pytest.fixture
def cleanup(cluster, root):
    made = []
    yield made
    for name in made:
        remove(cluster, root, name)


def add_club(cluster, cleanup, *extra):
    name = name_()
    cleanup.append(name)
    proc = ceo(cluster, "ctdalek", "add", name, "--description", f"Club {name}", "--json", *extra)
    assert proc.returncode == 0, proc.stderr
    return name, json.loads(proc.stdout)["result"]


def test_a_club_is_an_account_with_a_group_a_sudo_rule_and_a_shared_home(cluster, root, cleanup):
    name, result = add_club(cluster, cleanup)
    user = root.read(f"uid={name},{PEOPLE}")
    number = int(user["uidNumber"][0])
    assert 30001 <= number <= 39999 and result["uidNumber"] == number and user["gidNumber"] == [str(number)]
    assert set(user["objectClass"]) == {"top", "account", "posixAccount", "shadowAccount", "club"}
    assert user["cn"] == [f"Club {name}"] and user["homeDirectory"] == [f"/users/{name}"]
    assert "userPassword" not in user and "member" not in user["objectClass"]
    kadmin = subprocess.run(["kadmin.local", "-q", f"getprinc {name}"], capture_output=True, text=True)
    assert "Principal:" not in kadmin.stdout and "does not exist" in kadmin.stderr + kadmin.stdout
    group = root.read(f"cn={name},{GROUPS}")
    assert group["gidNumber"] == [str(number)] and {"group", "posixGroup"} <= set(group["objectClass"])
    assert "uniqueMember" not in group  # syscom adds the club's members (groups addmember)

    # The sudo rule, exactly: the group's members, as the club, anywhere, anything, no password.
    rule = root.read(f"cn=%{name},{SUDO}")
    assert rule == {"objectClass": ["top", "sudoRole"], "cn": [f"%{name}"], "sudoUser": [f"%{name}"],
                    "sudoRunAsUser": [name], "sudoHost": ["ALL"], "sudoCommand": ["ALL"],
                    "sudoOption": ["!authenticate"]}, rule

    # The home: the club's, its group's, setgid, with default ACLs; www and the skeleton's files.
    home = f"/users/{name}"
    st = os.lstat(home)
    assert (st.st_uid, st.st_gid) == (number, number) and oct(st.st_mode & 0o7777) == oct(0o2771)
    acl = getfacl(home)
    # Others pass through the home (to www) and read nothing else, now or later.
    assert {f"group:{name}:rwx", "mask::rwx", "other::--x", f"default:group:{name}:rwx", "default:group::rwx",
            "default:mask::rwx", "default:user::rwx", "default:other::---"} <= acl, acl
    assert os.path.isdir(f"{home}/www") and not os.path.islink(f"{home}/www")
    assert {f"default:group:{name}:rwx", "other::r-x", "default:other::r-x"} <= getfacl(f"{home}/www")
    assert "other::---" in getfacl(f"{home}/.bashrc")
    for path in (f"{home}/.bashrc", f"{home}/www/index.html"):
        st = os.lstat(path)
        assert (st.st_uid, st.st_gid) == (number, number) and f"group:{name}:rw-" in getfacl(path), path


def test_what_one_club_member_writes_another_can_change_and_a_non_member_cannot(cluster, root, cleanup):
    name, _ = add_club(cluster, cleanup)
    add_members(root, name, "regular2", "clubrep1")
    assert name in as_user("regular2", "id", "-Gn").stdout.split()  # NSS sees the membership
    assert name not in as_user("regular1", "id", "-Gn").stdout.split()
    page = f"/users/{name}/www/notes.txt"
    # A strict umask: the default ACL, not the creator's umask, decides what the group may do.
    made = as_user("regular2", "sh", "-c", f"umask 077; mkdir /users/{name}/www/sub && echo one > {page}")
    assert made.returncode == 0, made.stderr
    assert {f"group:{name}:rwx", "mask::rw-", "other::r--"} <= getfacl(page)  # rw for the group, whatever the umask
    changed = as_user("clubrep1", "sh", "-c", f"echo two >> {page} && echo three > /users/{name}/www/sub/x")
    assert changed.returncode == 0, changed.stderr
    assert open(page).read() == "one\ntwo\n"
    assert os.lstat(f"/users/{name}/www/sub/x").st_gid == int(root.read(f"uid={name},{PEOPLE}")["gidNumber"][0])
    refused = as_user("regular1", "sh", "-c", f"echo four >> {page}")
    assert refused.returncode != 0 and "Permission denied" in refused.stderr
    refused = as_user("regular1", "sh", "-c", f"echo five > /users/{name}/www/new.txt")
    assert refused.returncode != 0 and not os.path.exists(f"/users/{name}/www/new.txt")
    assert open(page).read() == "one\ntwo\n"
    # Outside www a club's files are its members' alone (found by a review: the default ACL
    # used to make them world-readable whatever the umask); www is for the web server.
    secret = f"/users/{name}/db.conf"
    assert as_user("regular2", "sh", "-c", f"umask 022; echo secret > {secret}").returncode == 0
    assert as_user("clubrep1", "cat", secret).stdout == "secret\n"
    assert as_user("regular1", "cat", secret).returncode != 0
    assert as_user("regular1", "cat", page).stdout == "one\ntwo\n"


def test_club_members_sudo_as_the_club_without_a_password_and_others_cannot(cluster, root, cleanup):
    """sudo on the homes host applies the rule ceo wrote in LDAP (through sssd, `sudoers: sss`)."""
    name, _ = add_club(cluster, cleanup)
    add_members(root, name, "regular2")
    # sssd learns of a new rule at its next smart refresh (`ldap_sudo_smart_refresh_interval`,
    # a second in the sandbox): the first sudo after the add may not have it yet, so wait for it.
    member = until(lambda: as_user("regular2", "sudo", "-n", "-u", name, "sh", "-c",
                                   f"id -un; touch /users/{name}/www/by-sudo"))
    assert (member.returncode, member.stdout.strip()) == (0, name), member.stderr
    assert os.lstat(f"/users/{name}/www/by-sudo").st_uid == int(root.read(f"uid={name},{PEOPLE}")["uidNumber"][0])
    for other in ("regular1", "clubrep1"):  # a member of another club (club1) is no member of this one
        refused = as_user(other, "sudo", "-n", "-u", name, "id", "-un")
        assert refused.returncode == 1 and "a password is required" in refused.stderr, refused
    proc = ceo(cluster, "ctdalek", "delete", name, "--yes")
    assert proc.returncode == 0, proc.stderr
    gone = as_user("regular2", "sudo", "-n", "-u", name, "id", "-un")
    assert gone.returncode == 1 and name not in gone.stdout, gone


def test_check_shows_the_steps_and_changes_nothing(cluster, root):
    name = name_()
    before = snapshot(root)
    proc = ceo(cluster, "ctdalek", "add", name, "--description", "Checked Club", "--check", "--json")
    assert proc.returncode == 0, proc.stderr
    would = [s["message"] for s in json.loads(proc.stdout)["steps"] if s["status"] == "would"]
    assert any(f"uid={name},{PEOPLE}" in m for m in would) and any(f"sudo rule %{name}" in m for m in would)
    assert any(f"/users/{name}" in m and "default ACLs" in m for m in would), would
    assert snapshot(root) == before


def test_delete_leaves_no_rule_entry_group_home_reference_or_list_role(cluster, root, cleanup, mailman):
    name, result = add_club(cluster, cleanup)
    number = result["uidNumber"]
    address = f"{name}@csclub.internal"
    add_members(root, name, "regular2")
    # References to the club elsewhere: a membership of another group, another sudo rule, a list role.
    write(root, lambda c: c.modify(f"cn=www,{GROUPS}", {"uniqueMember": [(ldap3.MODIFY_ADD, [f"uid={name},{PEOPLE}"])]}))
    write(root, lambda c: c.add(f"cn=run-as-{name},{SUDO}", ["top", "sudoRole"],
                                {"sudoUser": "regular1", "sudoRunAsUser": [name, "nobody"], "sudoHost": "ALL",
                                 "sudoCommand": "/bin/true"}))
    csc = mailman.get_list("csc-general@csclub.internal")
    csc.add_moderator(address)
    try:
        proc = ceo(cluster, "ctdalek", "delete", name)  # destructive: asks first
        assert proc.returncode == 2 and "--yes" in proc.stderr and root.read(f"uid={name},{PEOPLE}") is not None
        proc = ceo(cluster, "ctdalek", "delete", name, "--yes", "--json")
        assert proc.returncode == 0, proc.stderr
        for dn in (f"cn=%{name},{SUDO}", f"uid={name},{PEOPLE}", f"cn={name},{GROUPS}"):
            assert root.read(dn) is None, dn
        assert f"uid={name},{PEOPLE}" not in root.read(f"cn=www,{GROUPS}").get("uniqueMember", [])
        assert root.read(f"cn=run-as-{name},{SUDO}")["sudoRunAsUser"] == ["nobody"]
        assert address not in {m.email for m in csc.moderators}
        assert not os.path.lexists(f"/users/{name}")
        archived = json.loads(proc.stdout)["result"]["home"]
        assert archived.startswith(f"/users/.deleted/{name}-") and os.path.isdir(archived)
        tomb = root.read(f"uidNumber={number},ou=Tombstones,{BASE}")
        assert tomb["uid"] == [name] and tomb["homeDirectory"] == [archived]
    finally:
        if root.read(f"cn=run-as-{name},{SUDO}") is not None:
            write(root, lambda c: c.delete(f"cn=run-as-{name},{SUDO}"))
        if address in {m.email for m in csc.moderators}:
            csc.remove_role("moderator", address)
    # The name is not reused, as a club or as a member, and the number never.
    again = ceo(cluster, "ctdalek", "add", name, "--description", "Again")
    assert again.returncode == 2 and "deleted account" in again.stderr and len(again.stderr.splitlines()) == 1
    member = cluster.run(["ceo", "members", "add", name, "--cn", "Same Name"], "ctdalek")
    assert member.returncode == 2 and "deleted account" in member.stderr
    assert root.read(f"uid={name},{PEOPLE}") is None


def test_a_failing_home_step_rolls_back_the_user_group_and_sudo_rule(cluster, root, cleanup):
    name = name_()
    cleanup.append(name)
    os.symlink("/etc", f"/users/{name}")  # a squatter where the home would go: the home step fails
    before = snapshot(root)
    proc = ceo(cluster, "ctdalek", "add", name, "--description", "Doomed Club")
    assert proc.returncode == 2 and proc.stderr.strip() == f"ceo: shared home of {name}: /users/{name} already exists"
    for undone in (f"added club account {name}", f"added club group {name}", f"added sudo rule %{name}"):
        assert f"undid: {undone}" in proc.stdout, proc.stdout
    assert snapshot(root) == before  # no user, group, rule or tombstone; the link untouched
    assert os.readlink(f"/users/{name}") == "/etc" and os.lstat("/etc").st_uid == 0


BAD = [("*)(uid=*", 2, "is not a user name"), ("../x", 2, "is not a user name"),
       ("x'; DROP", 2, "is not a user name"), ("a\nb", 2, "control character"),
       ("root", 2, "root is already a user"), ("sudo", 2, "sudo is already a group"),
       ("webmaster", 2, "webmaster is a reserved name"), ("club1", 2, "club1 is already"),
       ("regular1", 2, "regular1 is already a user"), ("syscom", 2, "syscom is already a group"),
       # a list's own addresses (found by a review): the club would be the list's posting address
       ("syscom-alerts", 2, "is an address of the list syscom-alerts"),
       ("csc-general-owner", 2, "is an address of the list csc-general")]


@pytest.mark.parametrize("bad,code,says", BAD, ids=[b for b, *_ in BAD])
def test_bad_names_get_one_line_and_change_nothing(cluster, root, bad, code, says):
    before = snapshot(root)
    proc = ceo(cluster, "ctdalek", "add", bad, "--description", "Bad Club")
    assert proc.returncode == code and says in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert snapshot(root) == before


def test_a_description_with_a_newline_is_refused(cluster, root):
    before = snapshot(root)
    proc = ceo(cluster, "ctdalek", "add", name_(), "--description", "Club\ndn: cn=admin")
    assert proc.returncode == 2 and "control character" in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert snapshot(root) == before


@pytest.mark.parametrize("who", ["ofstaff", "regular2", "clubrep1"])  # office, a club member, a club rep
def test_only_syscom_adds_a_club(cluster, root, who):
    before = snapshot(root)
    proc = ceo(cluster, who, "add", name_(), "--description", "Unwanted Club")
    assert proc.returncode == 3 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert snapshot(root) == before


@pytest.mark.parametrize("target,says", [("regular1", "regular1 is a member account, not a club"),
                                         ("ctdalek", "ctdalek is a member account, not a club"),
                                         ("syscom", "syscom is a group with no club account"),
                                         ("office", "office is a group with no club account"),
                                         ("nosuch", "no club account 'nosuch'"),
                                         ("*)(uid=*", "is not a user name")])
def test_delete_refuses_anything_but_a_club(cluster, root, target, says):
    before = snapshot(root)
    proc = ceo(cluster, "ctdalek", "delete", target, "--yes")
    assert proc.returncode == 2 and says in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert snapshot(root) == before


def test_a_club_is_not_deleted_as_a_member_nor_by_office(cluster, root):
    before = snapshot(root)
    proc = cluster.run(["ceo", "members", "delete", "club1", "--yes"], "ctdalek")
    assert proc.returncode == 3 and "club1 is not a member account ceo manages" in proc.stderr, proc.stderr
    proc = ceo(cluster, "ofstaff", "delete", "club1", "--yes")
    assert proc.returncode == 3, proc.stderr
    assert snapshot(root) == before


def test_a_club_class_outside_the_club_range_is_not_a_club_ceo_manages(cluster, root):
    """The class alone does not make a club: an entry of class `club` numbered outside
    [clubs] uid_min..uid_max (a service's, say) is not ceo's to delete."""
    name = name_()
    dn = f"uid={name},{PEOPLE}"
    write(root, lambda c: c.add(dn, ["top", "account", "posixAccount", "club"],
                                {"uid": name, "cn": "Outside", "uidNumber": 1234, "gidNumber": 1234,
                                 "homeDirectory": "/nonexistent"}))
    try:
        before = snapshot(root)
        proc = ceo(cluster, "ctdalek", "delete", name, "--yes")
        assert proc.returncode == 2 and f"{name} is a system account, not a club account ceo manages" in proc.stderr, \
            proc.stderr
        assert snapshot(root) == before
    finally:
        if root.read(dn) is not None:
            write(root, lambda c: c.delete(dn))
