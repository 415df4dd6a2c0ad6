"""The university directory (the sandbox's second slapd, `uwldap`): `members add` fills names and
program from it, `members lookup` shows it, `members updateprograms` copies its programs.
Checked in CSC's LDAP as root."""

from __future__ import annotations

import json

import ldap3
import pytest
from rootldap import RootLDAP

from sandbox import control

BASE = "dc=csclub,dc=internal"
PEOPLE = f"ou=People,{BASE}"
CSC_PROGRAM = "MAT/Mathematics Computer Science"  # what sandbox/seed.py gives seeded members


def ceo(cluster, user, *args):
    return cluster.run(["ceo", "members", *args], user)


def one_line(proc) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def root(cluster):
    return RootLDAP(cluster)


def set_program(root, uid, program):
    root._do(lambda c: c.modify(f"uid={uid},{PEOPLE}", {"program": [(ldap3.MODIFY_REPLACE, [program])]}))


def program(root, uid):
    return (root.read(f"uid={uid},{PEOPLE}") or {}).get("program")


def forget(cluster, root, uid):
    """No account uid, and no tombstone (deleted names are not reused): the directory's
    people can be added again by the next run on the same sandbox."""
    if root.read(f"uid={uid},{PEOPLE}"):
        ceo(cluster, "ctdalek", "delete", uid, "--yes")

    def drop(conn):
        conn.search(f"ou=Tombstones,{BASE}", f"(uid={uid})", search_scope=ldap3.LEVEL, attributes=["uid"])
        for dn in [r["dn"] for r in conn.response if r.get("type") == "searchResEntry"]:
            conn.delete(dn)
    root._do(drop)


@pytest.fixture
def fresh(cluster, root):
    """A directory person who is no CSC account yet; deleted again afterwards."""
    made = []

    def take(uid):
        forget(cluster, root, uid)  # left by an interrupted run
        made.append(uid)
        return uid
    yield take
    for uid in made:
        forget(cluster, root, uid)


# --- members add --------------------------------------------------------------------------

def test_add_without_cn_fills_name_and_program_from_the_directory(cluster, root, fresh):
    uid = fresh("uwnew3")
    proc = ceo(cluster, "ofstaff", "add", uid, "--no-welcome", "--no-subscribe")
    assert proc.returncode == 0, proc.stderr
    e = root.read(f"uid={uid},{PEOPLE}")
    assert (e["cn"], e["givenName"], e["sn"], e["program"]) == (["Alan Turing"], ["Alan"], ["Turing"],
                                                               ["MAT/Pure Mathematics"])


def test_given_values_win_over_the_directory(cluster, root, fresh):
    uid = fresh("uwnew4")
    proc = ceo(cluster, "ofstaff", "add", uid, "--cn", "E. W. Dijkstra", "--program", "MAT/Given Here",
               "--no-welcome", "--no-subscribe")
    assert proc.returncode == 0, proc.stderr
    e = root.read(f"uid={uid},{PEOPLE}")
    assert (e["cn"], e["program"]) == (["E. W. Dijkstra"], ["MAT/Given Here"])
    assert (e["givenName"], e["sn"]) == (["Edsger"], ["Dijkstra"])  # not given: the directory's


def test_add_of_someone_the_directory_does_not_know_needs_cn(cluster, root):
    proc = ceo(cluster, "ofstaff", "add", "nosuchstudent", "--no-welcome", "--no-subscribe")
    assert proc.returncode == 2
    assert "give --cn" in one_line(proc) and "not in the university directory" in proc.stderr
    assert root.read(f"uid=nosuchstudent,{PEOPLE}") is None


def test_directory_down_add_with_cn_works_and_without_fails_clearly(cluster, root, fresh):
    a, b = fresh("uwnew5"), fresh("uwnew6")
    control.service("stop", "uwldap")
    try:
        without = ceo(cluster, "ofstaff", "add", a, "--no-welcome", "--no-subscribe")
        given = ceo(cluster, "ofstaff", "add", b, "--cn", "Donald E. Knuth", "--no-welcome", "--no-subscribe")
        lookup = ceo(cluster, "ofstaff", "lookup", "uwnew1")
    finally:
        control.service("start", "uwldap")
    assert without.returncode == 1
    line = one_line(without)
    assert "university directory" in line and "not answering" in line and "give --cn" in line
    assert root.read(f"uid={a},{PEOPLE}") is None
    assert given.returncode == 0, given.stderr
    assert "university directory" in given.stdout + given.stderr  # the warning
    e = root.read(f"uid={b},{PEOPLE}")
    assert e["cn"] == ["Donald E. Knuth"] and "program" not in e
    assert lookup.returncode == 1 and "not answering" in one_line(lookup)


# --- members lookup -----------------------------------------------------------------------

def test_lookup_shows_what_the_directory_holds(cluster):
    proc = ceo(cluster, "ofstaff", "lookup", "regular1", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["result"] == {"uid": "regular1", "cn": "Regular One", "given_name": "Regular",
                                                 "sn": "One", "program": "ENG/Software Engineering"}
    text = ceo(cluster, "ctdalek", "lookup", "uwnew2")
    assert text.returncode == 0 and "Grace Hopper" in text.stdout and "ENG/Electrical Engineering" in text.stdout


def test_lookup_of_an_unknown_uid(cluster):
    proc = ceo(cluster, "ofstaff", "lookup", "nosuchstudent")
    assert proc.returncode == 2 and "nosuchstudent is not in the university directory" in one_line(proc)


@pytest.mark.parametrize("bad", ["*)(uid=*", "x'; DROP", "../etc", "a\nb"])
def test_hostile_uids_are_refused(cluster, root, bad):
    for args in (["lookup", bad], ["add", bad, "--no-welcome"]):
        proc = ceo(cluster, "ofstaff", *args)
        assert proc.returncode == 2 and "uid" in one_line(proc)


def test_lookup_is_for_office_and_syscom(cluster):
    proc = ceo(cluster, "regular1", "lookup", "uwnew1")
    assert proc.returncode == 3 and "office or syscom" in one_line(proc)


# --- members updateprograms ---------------------------------------------------------------

def test_updateprograms_check_lists_then_the_run_changes_exactly_those(cluster, root):
    # Known differences, whatever earlier runs left: regular1's and regular2's programs differ
    # from the directory's; expired1's directory value ("expired") is a placeholder, never copied.
    set_program(root, "regular1", CSC_PROGRAM)
    set_program(root, "regular2", "MAT/Something Else")
    set_program(root, "expired1", CSC_PROGRAM)
    before = {u: program(root, u) for u in ("regular1", "regular2", "expired1", "ctdalek", "clubrep1")}

    check = ceo(cluster, "ctdalek", "updateprograms", "--check", "--json")
    assert check.returncode == 0, check.stderr
    listed = {c["uid"]: (c["old"], c["new"]) for c in json.loads(check.stdout)["result"]["changes"]}
    assert listed["regular1"] == (CSC_PROGRAM, "ENG/Software Engineering")
    assert listed["regular2"] == ("MAT/Something Else", CSC_PROGRAM)
    assert "expired1" not in listed and "ctdalek" not in listed
    assert {u: program(root, u) for u in before} == before  # --check changed nothing

    text = ceo(cluster, "ctdalek", "updateprograms", "--check")
    assert "~ would change the program of regular1: MAT/Mathematics Computer Science -> ENG/Software Engineering" \
        in " ".join(text.stdout.split())

    run = ceo(cluster, "ctdalek", "updateprograms", "--json")
    assert run.returncode == 0, run.stderr
    done = {c["uid"]: (c["old"], c["new"]) for c in json.loads(run.stdout)["result"]["changes"]}
    assert done == listed
    for uid, (_, new) in listed.items():
        assert program(root, uid) == [new]
    assert program(root, "expired1") == [CSC_PROGRAM] and program(root, "ctdalek") == before["ctdalek"]

    again = ceo(cluster, "ctdalek", "updateprograms", "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["result"]["changes"] == []


def test_updateprograms_is_syscom_only(cluster, root):
    set_program(root, "regular2", "MAT/Something Else")
    for user in ("ofstaff", "regular1"):
        proc = ceo(cluster, user, "updateprograms")
        assert proc.returncode == 3 and "needs syscom" in one_line(proc)
    assert program(root, "regular2") == ["MAT/Something Else"]
