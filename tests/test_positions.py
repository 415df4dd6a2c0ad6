"""`ceo positions get|set` through the real command, checked in the services themselves: the
`position` values and the exec group (LDAP as root), the exec list (Mailman's REST API), NSS
(`id`).

The holders are this module's own accounts (`q` + 8 hex digits), made by `ceo members add` and
deleted by `ceo members delete` at the end. ctdalek's seeded sysadmin is never changed; after
each test the module's accounts hold nothing and are in no group and on no list again.
"""

from __future__ import annotations

import json

import pytest
import rawhelper
from groupstate import (Directory, ceo, config, delete_member, lists_of, new_member, nss_groups, ok, one_line, state,
                        subscribe)

from sandbox import control

NOTHING = {"groups": set(), "grants": set(), "lists": set(), "positions": set()}


@pytest.fixture(scope="module")
def ldap(cluster):
    return Directory(cluster)


@pytest.fixture(scope="module")
def people(cluster, ldap, mailman):
    made = [new_member(cluster, "q") for _ in range(3)]
    yield made
    for uid in made:
        delete_member(cluster, ldap, mailman, uid)


@pytest.fixture
def team(people, ldap, mailman):
    """(president, vice-president, treasurer) to be; afterwards each holds nothing again."""
    before, exec_before = ldap.positions(), ldap.members_of("exec")
    assert not set(people) & set(before) and before.get("ctdalek") == {"sysadmin"}
    yield people
    for uid in people:
        left = state(ldap, mailman, uid)
        if left != NOTHING:  # a failed test's leftovers, by hand
            for position in left["positions"]:
                ldap._do(lambda conn, p=position, u=uid: conn.modify(
                    f"uid={u},ou=People,dc=csclub,dc=internal", {"position": [("MODIFY_DELETE", [p])]}))
            for group in left["groups"]:
                ldap.membership(group, uid, present=False)
            for cn in left["grants"]:
                ldap.ungrant(cn, uid)
            for name in left["lists"]:
                subscribe(mailman, name, uid, present=False)
        assert left == NOTHING, f"the test left {uid} with {left}"
    assert ldap.positions() == before and ldap.members_of("exec") == exec_before


def positions(cluster, user, *args):
    return ceo(cluster, user, "positions", *args)


def clear(cluster, ldap, team):
    """The team off every position, through ceo. President and vice-president may not be left
    empty, so ctdalek takes them and then gives them back by hand (to sysadmin alone, as seeded),
    and leaves exec the way positions put them in."""
    proc = positions(cluster, "ctdalek", "set", "--president", "ctdalek", "--vice-president", "ctdalek",
                     "--treasurer", "", "--secretary", "")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    ldap._do(lambda conn: conn.modify("uid=ctdalek,ou=People,dc=csclub,dc=internal",
                                      {"position": [("MODIFY_DELETE", ["president", "vice-president"])]}))
    assert ceo(cluster, "ctdalek", "groups", "removemember", "exec", "ctdalek").returncode == 0
    for uid in team:
        assert uid not in ldap.positions()


def test_set_moves_members_on_and_off_exec_group_and_list(cluster, ldap, mailman, team):
    president, vice, treasurer = team
    proc = positions(cluster, "ctdalek", "set", "--president", president, "--vice-president", vice,
                     "--treasurer", treasurer, "--json")
    result = ok(proc)
    assert result["positions"]["president"] == [president] and result["positions"]["sysadmin"] == ["ctdalek"]
    held = ldap.positions()
    assert (held[president], held[vice], held[treasurer]) == ({"president"}, {"vice-president"}, {"treasurer"})
    assert held["ctdalek"] == {"sysadmin"}  # not named: kept
    for uid in team:
        assert ldap.groups_of(uid) == {"exec"} and "exec" in nss_groups(uid)
        assert lists_of(mailman, uid) == {"exec"}
        assert ldap.grants_of(uid) == {"exec:list:exec"}
    shown = {r["position"]: [h["uid"] for h in r["holders"]] for r in ok(positions(cluster, "regular1", "get", "--json"))}
    assert shown["president"] == [president] and shown["treasurer"] == [treasurer] and shown["cro"] == []

    # The treasurer off; the others untouched.
    ok(positions(cluster, "ctdalek", "set", "--treasurer", "", "--json"))
    assert state(ldap, mailman, treasurer) == NOTHING and "exec" not in nss_groups(treasurer)
    assert ldap.positions()[president] == {"president"} and lists_of(mailman, vice) == {"exec"}
    # Two positions held: losing one keeps exec.
    ok(positions(cluster, "ctdalek", "set", "--secretary", president, vice, "--json"))
    ok(positions(cluster, "ctdalek", "set", "--secretary", vice, "--json"))
    assert ldap.positions()[president] == {"president"} and ldap.groups_of(president) == {"exec"}
    assert ldap.positions()[vice] == {"vice-president", "secretary"}
    # Handed over: the old holders leave exec and its list.
    ok(positions(cluster, "ctdalek", "set", "--president", treasurer, "--secretary", "", "--json"))
    assert state(ldap, mailman, president) == NOTHING
    assert ldap.groups_of(treasurer) == {"exec"} and lists_of(mailman, treasurer) == {"exec"}
    clear(cluster, ldap, team)
    for uid in team:
        assert state(ldap, mailman, uid) == NOTHING


def test_check_mode_shows_the_diff_and_changes_nothing(cluster, ldap, mailman, team):
    president, vice, treasurer = team
    before = ldap.positions(), ldap.members_of("exec")
    proc = positions(cluster, "ctdalek", "set", "--president", president, "--vice-president", vice, "--check")
    assert proc.returncode == 0, proc.stderr
    assert f"~ would change {president}'s positions: +president" in proc.stdout
    assert f"~ would add {president} to exec" in proc.stdout
    assert "check mode: nothing was changed" in proc.stdout
    assert (ldap.positions(), ldap.members_of("exec")) == before and lists_of(mailman, president) == set()


def while_mailman_stopped(cluster, *args):
    control.service("stop", "mailman")
    try:
        return positions(cluster, "ctdalek", *args)
    finally:
        control.service("start", "mailman")


def test_mailman_stopped_set_is_rolled_back(cluster, ldap, mailman, team):
    president, vice, _ = team
    before = ldap.positions(), ldap.members_of("exec")
    proc = while_mailman_stopped(cluster, "set", "--president", president, "--vice-president", vice)
    one_line(proc, 1, "Mailman", "lists are not best effort ([ties] lists_best_effort = no)", "rolled back")
    assert f"undid: {president}: +president" in proc.stdout
    assert (ldap.positions(), ldap.members_of("exec")) == before


def test_mailman_stopped_lists_best_effort_warns(cluster, ldap, mailman, team):
    president, vice, _ = team
    with config(ties={"lists_best_effort": "yes"}):
        result = ok(while_mailman_stopped(cluster, "set", "--president", president, "--vice-president", vice,
                                          "--json"))
        assert any("lists are best effort ([ties] lists_best_effort = yes)" in w for w in result["warnings"])
        assert ldap.positions()[president] == {"president"} and ldap.groups_of(president) == {"exec"}
        assert lists_of(mailman, president) == set() and ldap.grants_of(president) == set()
        clear(cluster, ldap, team)


@pytest.mark.parametrize("args, words", [
    (["--treasurer", "nosuchuser"], "no member 'nosuchuser'"),
    (["--treasurer", "{p}", "nosuchuser"], "no member 'nosuchuser'"),
    (["--treasurer", "club1"], "no member 'club1'"),  # a club account holds no position
    (["--treasurer", "*)(uid=*"], "is not a user name, or '' for nobody"),
    (["--treasurer", "x'; DROP"], "is not a user name, or '' for nobody"),
    (["--treasurer", "a\nb"], "control character"),
    (["--chancellor", "{p}"], "unrecognized arguments: --chancellor"),
    (["--sysadmin", ""], "sysadmin may not be left empty"),
    (["--treasurer", "{p}"], "president, vice-president may not be left empty"),  # never filled in the seed
    (["--treasurer", "", "{p}"], "'' (nobody) goes alone"),
    (["--treasurer", "{p}", "{p}"], "named twice"),
    ([], "nothing to change"),
])
def test_bad_input_one_line_and_no_change(cluster, ldap, mailman, team, args, words):
    before = ldap.positions(), ldap.members_of("exec")
    proc = positions(cluster, "ctdalek", "set", *[a.replace("{p}", team[0]) for a in args])
    one_line(proc, 2, words)
    assert (ldap.positions(), ldap.members_of("exec")) == before


def test_a_position_the_config_does_not_name_is_unknown(cluster, ldap, team):
    before = ldap.positions()
    with config(positions={"names": "president vice-president treasurer secretary sysadmin"}):
        one_line(positions(cluster, "ctdalek", "set", "--offsck", team[0]), 2, "unknown position 'offsck'")
        got = ok(positions(cluster, "regular1", "get", "--json"))
        assert [r["position"] for r in got] == ["president", "vice-president", "treasurer", "secretary", "sysadmin"]
    assert ldap.positions() == before


def test_only_syscom_sets_positions(cluster, connect, ldap, team):
    before = ldap.positions(), ldap.members_of("exec")
    one_line(positions(cluster, "ofstaff", "set", "--president", team[0], "--vice-president", team[1]), 3,
             "ceo positions set needs syscom")
    # ... nor by sending the step itself.
    _, reply = rawhelper.request(connect("phosphoric-acid", "ofstaff"), "positions", "assign",
                                 {"assign": [f"president={team[0]}", f"vice-president={team[1]}"]})
    assert reply["error"]["name"] == "NotPermitted"
    assert (ldap.positions(), ldap.members_of("exec")) == before
    assert json.loads(positions(cluster, "regular1", "get", "--json").stdout)["ok"] is True
