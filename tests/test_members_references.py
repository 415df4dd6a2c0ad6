"""Nothing survives a deleted uid: `members delete` removes every reference ceo can find
(group memberships, sudo rules, Mailman owner and moderator roles, subscriptions) and leaves a
tombstone; `members add` refuses a name something still references, and never hands out a
number a deleted account (or a sudo rule) still carries.

Everything is checked in the services themselves: LDAP as root over ldapi, Mailman's REST
API, kadmin.local, the filesystem. The accounts are this module's own (`r` + 8 hex digits).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import ldap3
import pytest
import rawhelper
from rootldap import RootLDAP
from ldap3.utils.conv import escape_filter_chars

from sandbox import control

BASE = "dc=csclub,dc=internal"
PEOPLE, GROUPS, SUDOERS = f"ou=People,{BASE}", f"ou=Group,{BASE}", f"ou=SUDOers,{BASE}"
TOMBSTONES = f"ou=Tombstones,{BASE}"
DOMAIN = "csclub.internal"
HOMES = Path("/users")
CONFIG = Path("/etc/csc/ceo.ini")


def fresh_uid() -> str:
    return f"r{uuid.uuid4().hex[:8]}"


def ceo(cluster, user, *args):
    return cluster.run(["ceo", "members", *args], user, stdin=subprocess.DEVNULL)


def one_line_error(proc, code):
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(("ceo: ", "ceo ")) and "Traceback" not in proc.stdout, proc.stderr
    return lines[0]


class Directory(RootLDAP):
    def dns(self, base, flt) -> set[str]:
        def search(conn):
            conn.search(base, flt, attributes=["1.1"])
            return {e["dn"] for e in conn.response or [] if e.get("type") == "searchResEntry"}
        return self._do(search)

    def naming(self, uid, number=None) -> set[str]:
        """Every entry anywhere in the directory that names uid (or its number) the ways ceo
        knows: membership, sudo rules, the account and its group themselves."""
        dn = escape_filter_chars(f"uid={uid},{PEOPLE}")
        parts = [f"(uniqueMember={dn})", f"(memberUid={uid})", f"(sudoUser={uid})", f"(sudoUser=%{uid})",
                 f"(sudoRunAsUser={uid})", f"(uid={uid})", f"(cn={uid})"]
        if number is not None:
            parts += [f"(sudoUser=#{number})", f"(sudoRunAsUser=#{number})", f"(uidNumber={number})",
                      f"(gidNumber={number})"]
        return {dn for dn in self.dns(BASE, f"(|{''.join(parts)})") if not dn.endswith(f",{TOMBSTONES}")}

    def tombstones(self, uid) -> list[dict]:
        return [self.read(dn) for dn in sorted(self.dns(TOMBSTONES, f"(uid={escape_filter_chars(uid)})"))]

    def used_numbers(self) -> set[int]:
        def search(conn):
            conn.search(BASE, "(|(uidNumber=*)(gidNumber=*)(sudoUser=#*))",
                        attributes=["uidNumber", "gidNumber", "sudoUser"])
            used = set()
            for e in conn.response or []:
                raw = e.get("raw_attributes", {})
                used.update(int(v) for a in ("uidNumber", "gidNumber") for v in raw.get(a, []))
                used.update(int(v[1:]) for v in raw.get("sudoUser", []) if v.startswith(b"#"))
            return used
        return self._do(search)


def sorted_values(entry):
    """An entry with its values in order: an undo may put a value back at the end."""
    return {k: sorted(v) for k, v in entry.items()}


def principal(uid) -> bool:
    proc = subprocess.run(["kadmin.local", "-q", f"getprinc {uid}"], capture_output=True, text=True, timeout=30)
    return "Principal:" in proc.stdout


@pytest.fixture(scope="module")
def ldap(cluster):
    return Directory(cluster)


def list_roles(mailman, address) -> set[tuple[str, str]]:
    """(list, role) for every role `address` has on every list, read list by list."""
    roles = set()
    for mlist in mailman.lists:
        for role, people in (("owner", mlist.owners), ("moderator", mlist.moderators), ("member", mlist.members)):
            if address in {m.email for m in people}:
                roles.add((mlist.list_name, role))
    return roles


def remove_roles(mailman, address):
    for name, role in list_roles(mailman, address):
        mailman.get_list(f"{name}@{DOMAIN}").remove_role(role, address)
    assert list_roles(mailman, address) == set()


@pytest.fixture
def made(cluster, ldap, mailman):
    """uids this test made: whatever is left of them is removed at the end, and checked."""
    uids: list[str] = []
    extra: list[str] = []  # DNs the test added by hand
    yield uids, extra
    for dn in extra:
        ldap.delete(dn)
    for uid in uids:
        if ldap.read(f"uid={uid},{PEOPLE}") is not None:
            proc = ceo(cluster, "ctdalek", "delete", uid, "--yes")
            assert proc.returncode == 0, proc.stdout + proc.stderr
        for group in ldap.dns(GROUPS, f"(uniqueMember={escape_filter_chars(f'uid={uid},{PEOPLE}')})"):
            ldap.modify(group, {"uniqueMember": [(ldap3.MODIFY_DELETE, [f"uid={uid},{PEOPLE}"])]})
        remove_roles(mailman, f"{uid}@{DOMAIN}")
        for tomb in ldap.dns(TOMBSTONES, f"(uid={uid})"):
            ldap.delete(tomb)
        for old in (HOMES / ".deleted").glob(f"{uid}-*"):
            shutil.rmtree(old)
        assert not principal(uid) and not (HOMES / uid).exists()


def add(cluster, uid, *extra):
    proc = ceo(cluster, "ofstaff", "add", uid, "--cn", f"Reference Test {uid}", "--no-welcome", "--json", *extra)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return int(json.loads(proc.stdout)["result"]["uidNumber"])


def sudo_rule(ldap, extra, name, **attrs):
    dn = f"cn={name},{SUDOERS}"
    extra.append(dn)
    ldap.add(dn, ["top", "sudoRole"], {"cn": name, "sudoHost": "ALL", "sudoCommand": "ALL", **attrs})
    return dn


def nothing_written(cluster, ldap, uid):
    assert ldap.read(f"uid={uid},{PEOPLE}") is None and ldap.read(f"cn={uid},{GROUPS}") is None
    assert not principal(uid) and not (HOMES / uid).exists()


@pytest.fixture
def reuse_allowed():
    """[members] reuse_deleted_names = yes in the sandbox's ceo.ini, for the one test."""
    before = CONFIG.read_text()
    assert "[members]" not in before
    CONFIG.write_text(before + "\n[members]\nreuse_deleted_names = yes\n")
    try:
        yield
    finally:
        CONFIG.write_text(before)
        assert CONFIG.read_text() == before


# --- delete ----------------------------------------------------------------------------------

def test_delete_removes_every_reference_and_leaves_a_tombstone(cluster, ldap, mailman, made):
    uids, extra = made
    uid = fresh_uid()
    uids.append(uid)
    number = add(cluster, uid)  # subscribed to csc-general
    dn, address = f"uid={uid},{PEOPLE}", f"{uid}@{DOMAIN}"
    # What syscom might have given the account over the years.
    ldap.modify(f"cn=syscom,{GROUPS}", {"uniqueMember": [(ldap3.MODIFY_ADD, [dn])]})
    ldap.modify(f"cn=adm,{GROUPS}", {"memberUid": [(ldap3.MODIFY_ADD, [uid])]})
    rule = sudo_rule(ldap, extra, f"ref-{uid}", sudoUser=[uid, "regular1", f"#{number}"], sudoRunAsUser=[uid])
    shared = sudo_rule(ldap, extra, f"ref-{uid}-group", sudoUser=[f"%{uid}", "%syscom"])
    syscom = mailman.get_list(f"syscom@{DOMAIN}")
    syscom.add_owner(address)
    mailman.get_list(f"exec@{DOMAIN}").add_moderator(address)
    home = HOMES / uid
    (home / ".k5login").write_text(f"{uid}@{cluster.realm}\nregular1@{cluster.realm}\n")
    assert list_roles(mailman, address) == {("syscom", "owner"), ("exec", "moderator"), ("csc-general", "member")}
    assert {f"cn=syscom,{GROUPS}", f"cn=adm,{GROUPS}", rule, shared} <= ldap.naming(uid, number)

    archived = set((HOMES / ".deleted").glob(f"{uid}-*"))
    proc = ceo(cluster, "ctdalek", "delete", uid, "--yes", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["result"]["uid"] == uid

    assert ldap.naming(uid, number) == set()  # nothing in the directory names it or its number
    assert list_roles(mailman, address) == set()  # nor on any list, in any role
    assert not principal(uid)
    # The rules themselves stay, with their other users.
    assert ldap.read(rule)["sudoUser"] == ["regular1"] and "sudoRunAsUser" not in ldap.read(rule)
    assert ldap.read(shared)["sudoUser"] == ["%syscom"]
    # The old .k5login went into the root-only archive with the home, never to a new account.
    moved = set((HOMES / ".deleted").glob(f"{uid}-*")) - archived
    assert len(moved) == 1
    old = moved.pop()
    assert (old / ".k5login").read_text().startswith(f"{uid}@")
    assert (HOMES / ".deleted").stat().st_mode & 0o077 == 0
    [tomb] = ldap.tombstones(uid)
    assert tomb["uidNumber"] == [str(number)] and tomb["homeDirectory"] == [str(old)]
    assert "by ctdalek" in tomb["description"][0]
    assert "posixAccount" not in tomb["objectClass"]  # never an account NSS would resolve
    assert subprocess.run(["getent", "passwd", uid], capture_output=True).returncode == 2


def test_a_failed_delete_puts_the_references_back(cluster, ldap, mailman, made):
    """kadmind down: the principal step fails after the LDAP step; its undo restores the sudo
    values and memberships it removed, and takes the tombstone away again."""
    uids, extra = made
    uid = fresh_uid()
    uids.append(uid)
    number = add(cluster, uid, "--no-subscribe")
    dn = f"uid={uid},{PEOPLE}"
    ldap.modify(f"cn=syscom,{GROUPS}", {"uniqueMember": [(ldap3.MODIFY_ADD, [dn])]})
    rule = sudo_rule(ldap, extra, f"ref-{uid}", sudoUser=[uid, "regular1"])
    before = {d: sorted_values(ldap.read(d)) for d in ldap.naming(uid, number)}
    control.service("stop", "kadmind")
    try:
        proc = ceo(cluster, "ctdalek", "delete", uid, "--yes")
    finally:
        control.service("start", "kadmind")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"undid: removed {uid} from sudo rule ref-{uid}" in proc.stdout, proc.stdout
    assert {d: sorted_values(ldap.read(d)) for d in ldap.naming(uid, number)} == before
    assert sorted(ldap.read(rule)["sudoUser"]) == sorted([uid, "regular1"])
    assert ldap.tombstones(uid) == []
    assert (HOMES / uid).is_dir() and principal(uid)


# --- add -------------------------------------------------------------------------------------

def test_add_refuses_a_name_the_directory_still_names(cluster, ldap, made, connect):
    uids, extra = made
    uid = fresh_uid()
    uids.append(uid)
    dn = f"uid={uid},{PEOPLE}"  # a dangling member: no such account (yet)
    ldap.modify(f"cn=syscom,{GROUPS}", {"uniqueMember": [(ldap3.MODIFY_ADD, [dn])]})
    sudo_rule(ldap, extra, f"ref-{uid}", sudoUser=[uid])
    proc = ceo(cluster, "ofstaff", "add", uid, "--cn", "Inheritor")
    line = one_line_error(proc, 2)
    assert "group syscom" in line and f"sudo rule ref-{uid}" in line, line
    nothing_written(cluster, ldap, uid)
    # The helper's create step refuses it itself, asked directly (no client-side check).
    _, reply = rawhelper.request(connect("phosphoric-acid", "ofstaff"), "members", "create",
                                 {"uid": uid, "cn": "Inheritor"})
    line = reply["error"]["message"]
    assert reply["error"]["exit"] == 2 and "group syscom (uniqueMember)" in line, reply
    assert f"sudo rule ref-{uid} (sudoUser)" in line, line
    nothing_written(cluster, ldap, uid)


def test_add_refuses_a_name_the_lists_still_name(cluster, ldap, mailman, made):
    uids, _ = made
    uid = fresh_uid()
    uids.append(uid)
    mailman.get_list(f"syscom@{DOMAIN}").add_owner(f"{uid}@{DOMAIN}")
    mailman.get_list(f"exec@{DOMAIN}").add_moderator(f"{uid}@{DOMAIN}")
    proc = ceo(cluster, "ofstaff", "add", uid, "--cn", "Inheritor")
    line = one_line_error(proc, 2)
    assert "owner of syscom" in line and "moderator of exec" in line, line
    nothing_written(cluster, ldap, uid)
    assert list_roles(mailman, f"{uid}@{DOMAIN}") == {("syscom", "owner"), ("exec", "moderator")}


def test_a_deleted_name_is_not_reused(cluster, ldap, made):
    uids, _ = made
    uid = fresh_uid()
    uids.append(uid)
    number = add(cluster, uid, "--no-subscribe")
    assert ceo(cluster, "ctdalek", "delete", uid, "--yes").returncode == 0
    proc = ceo(cluster, "ofstaff", "add", uid, "--cn", "Second Coming")
    line = one_line_error(proc, 2)
    assert "deleted account" in line and str(number) in line and "reuse_deleted_names" in line, line
    nothing_written(cluster, ldap, uid)


def test_a_reused_name_gets_a_new_number_and_a_clean_home_once_nothing_names_it(cluster, ldap, made,
                                                                                 reuse_allowed):
    uids, extra = made
    uid = fresh_uid()
    uids.append(uid)
    first = add(cluster, uid, "--no-subscribe")
    (HOMES / uid / ".k5login").write_text(f"{uid}@{cluster.realm}\nregular1@{cluster.realm}\n")
    assert ceo(cluster, "ctdalek", "delete", uid, "--yes").returncode == 0
    # References left by hand after the delete: the reuse is refused, naming them.
    dn = f"uid={uid},{PEOPLE}"
    ldap.modify(f"cn=syscom,{GROUPS}", {"uniqueMember": [(ldap3.MODIFY_ADD, [dn])]})
    rule = sudo_rule(ldap, extra, f"ref-{uid}", sudoUser=[uid])
    line = one_line_error(ceo(cluster, "ofstaff", "add", uid, "--cn", "Second Coming"), 2)
    assert "group syscom" in line and f"sudo rule ref-{uid}" in line, line
    nothing_written(cluster, ldap, uid)
    ldap.modify(f"cn=syscom,{GROUPS}", {"uniqueMember": [(ldap3.MODIFY_DELETE, [dn])]})
    ldap.delete(rule)
    second = add(cluster, uid, "--no-subscribe")
    assert second != first  # the archived home still carries the first number
    assert not (HOMES / uid / ".k5login").exists()
    # Deleted again: the tombstone keeps both numbers.
    assert ceo(cluster, "ctdalek", "delete", uid, "--yes").returncode == 0
    assert sorted(t["uidNumber"][0] for t in ldap.tombstones(uid)) == sorted([str(first), str(second)])


def test_numbers_a_deleted_account_or_a_sudo_rule_holds_are_not_handed_out(cluster, ldap, made):
    uids, extra = made
    gone, after, later = fresh_uid(), fresh_uid(), fresh_uid()
    uids += [gone, after, later]
    number = add(cluster, gone, "--no-subscribe")
    assert ceo(cluster, "ctdalek", "delete", gone, "--yes").returncode == 0
    assert add(cluster, after, "--no-subscribe") != number
    assert ldap.dns(BASE, f"(uidNumber={number})") == {f"uidNumber={number},{TOMBSTONES}"}  # it holds the number
    # The lowest number nothing uses, named by a sudo rule (`#N`): not given out either.
    used = ldap.used_numbers()
    low = min(n for n in range(20001, 30000) if n not in used)
    sudo_rule(ldap, extra, f"ref-{later}", sudoUser=[f"#{low}"])
    assert add(cluster, later, "--no-subscribe") != low
