"""`ceo groups get|list|addmember|removemember` through the real command, checked in the services
themselves: LDAP as root (memberships, grant records), Mailman's REST API (rosters) and NSS
(`id`, through nslcd).

The accounts are this module's own (`g` + 8 hex digits), made by `ceo members add` and deleted by
`ceo members delete`, which must leave no membership, grant record or subscription behind. Each
test puts back what it changed in seeded entries (club1, office, the lists).
"""

from __future__ import annotations

import json

import pytest
import rawhelper
from groupstate import (GROUPS, PEOPLE, Directory, address, ceo, config, delete_member, lists_of, new_member,
                        nss_groups, ok, one_line, state, subscribe)

from sandbox import control

SYSCOM_GIVES = {"office", "staff", "adm", "src"}
SYSCOM_LISTS = {"syscom", "syscom-alerts"}
NOTHING = {"groups": set(), "grants": set(), "lists": set(), "positions": set()}


@pytest.fixture(scope="module")
def ldap(cluster):
    return Directory(cluster)


@pytest.fixture(scope="module")
def people(cluster, ldap, mailman):
    """Three accounts of this module's own, in no group and on no list."""
    made = [new_member(cluster, "g") for _ in range(3)]
    for uid in made:
        assert state(ldap, mailman, uid) == NOTHING
    yield made
    for uid in made:
        delete_member(cluster, ldap, mailman, uid)


@pytest.fixture
def fresh(people, ldap, mailman):
    """One of them; whatever the test left of its changes is taken away by hand afterwards, and
    reported (a test puts back what it did)."""
    uid = people[0]
    yield uid
    left = state(ldap, mailman, uid)
    for group in left["groups"]:
        ldap.membership(group, uid, present=False)
    for cn in left["grants"]:
        ldap.ungrant(cn, uid)
    for name in left["lists"]:
        subscribe(mailman, name, uid, present=False)
    assert state(ldap, mailman, uid) == NOTHING
    assert left == NOTHING, f"the test left {left}"


def groups(cluster, user, *args):
    return ceo(cluster, user, "groups", *args)


# --- what syscom gives, and takes back ------------------------------------------------------------

def test_syscom_gives_four_groups_and_two_lists_and_takes_back_exactly_that(cluster, ldap, mailman, fresh):
    uid = fresh
    assert nss_groups(uid) == {uid}
    result = ok(groups(cluster, "ctdalek", "addmember", "syscom", uid, "--json"))
    assert set(result["subscribed"]) == SYSCOM_LISTS
    assert ldap.groups_of(uid) == {"syscom"} | SYSCOM_GIVES
    assert nss_groups(uid) == {uid, "syscom"} | SYSCOM_GIVES  # what the hosts see, through nslcd
    assert lists_of(mailman, uid) == SYSCOM_LISTS
    assert ldap.grants_of(uid) == {f"syscom:{g}" for g in SYSCOM_GIVES} | {f"syscom:list:{n}" for n in SYSCOM_LISTS}
    # Again: nothing more to do, nothing written.
    again = groups(cluster, "ctdalek", "addmember", "syscom", uid, "--json")
    assert ok(again)["subscribed"] == [] and ldap.groups_of(uid) == {"syscom"} | SYSCOM_GIVES
    shown = ok(groups(cluster, "regular1", "get", "office", "--json"))
    assert {"uid": uid, "name": f"Group Test {uid}", "given_by": ["syscom"]} in shown["members"]

    ok(groups(cluster, "ctdalek", "removemember", "syscom", uid, "--json"))
    assert state(ldap, mailman, uid) == NOTHING
    assert nss_groups(uid) == {uid}


def test_what_they_had_on_their_own_stays(cluster, ldap, mailman, fresh):
    """In office on their own and on syscom-alerts by their own subscription: after a spell in
    syscom they are still in office and still on syscom-alerts, and nothing else."""
    uid = fresh
    ldap.membership("office", uid, present=True)
    subscribe(mailman, "syscom-alerts", uid, present=True)
    try:
        proc = groups(cluster, "ctdalek", "addmember", "syscom", uid)
        assert proc.returncode == 0, proc.stderr
        assert f"{uid} is in office on their own" in proc.stdout
        assert ldap.grants_of(uid) == {"syscom:staff", "syscom:adm", "syscom:src", "syscom:list:syscom"}
        assert ldap.groups_of(uid) == {"syscom"} | SYSCOM_GIVES and lists_of(mailman, uid) == SYSCOM_LISTS

        proc = groups(cluster, "ctdalek", "removemember", "syscom", uid)
        assert proc.returncode == 0, proc.stderr
        assert ldap.groups_of(uid) == {"office"} and nss_groups(uid) == {uid, "office"}
        assert lists_of(mailman, uid) == {"syscom-alerts"} and ldap.grants_of(uid) == set()
    finally:
        ldap.membership("office", uid, present=False)
        subscribe(mailman, "syscom-alerts", uid, present=False)


def test_a_gift_of_two_groups_stays_until_both_take_it_back(cluster, ldap, mailman, fresh):
    """exec also gives staff (a tie of this test's config): staff stays while either gives it."""
    uid = fresh
    with config(ties={"exec.groups": "staff"}):
        assert groups(cluster, "ctdalek", "addmember", "syscom", uid, "--no-subscribe").returncode == 0
        assert groups(cluster, "ctdalek", "addmember", "exec", uid, "--no-subscribe").returncode == 0
        assert {"syscom:staff", "exec:staff"} <= ldap.grants_of(uid)
        assert groups(cluster, "ctdalek", "removemember", "syscom", uid).returncode == 0
        assert ldap.groups_of(uid) == {"exec", "staff"} and ldap.grants_of(uid) == {"exec:staff"}
        assert groups(cluster, "ctdalek", "removemember", "exec", uid).returncode == 0
        assert ldap.groups_of(uid) == set() and ldap.grants_of(uid) == set()
    assert lists_of(mailman, uid) == set()  # --no-subscribe: the lists were left alone


def test_asked_for_directly_it_becomes_their_own(cluster, ldap, mailman, fresh):
    """office given by syscom, then added to office itself: leaving syscom keeps office (and
    office's own gifts); leaving office directly takes those."""
    uid = fresh
    assert groups(cluster, "ctdalek", "addmember", "syscom", uid, "--no-subscribe").returncode == 0
    assert groups(cluster, "ctdalek", "addmember", "office", uid).returncode == 0
    assert "syscom:office" not in ldap.grants_of(uid)
    assert ldap.groups_of(uid) == {"syscom"} | SYSCOM_GIVES | {"cdrom", "audio", "video", "www"}
    assert groups(cluster, "ctdalek", "removemember", "syscom", uid, "--no-unsubscribe").returncode == 0
    assert ldap.groups_of(uid) == {"office", "cdrom", "audio", "video", "www"}
    assert groups(cluster, "ctdalek", "removemember", "office", uid).returncode == 0
    assert state(ldap, mailman, uid)["groups"] == set() and ldap.grants_of(uid) == set()


def test_a_gift_taken_away_directly_takes_its_record_too(cluster, ldap, mailman, fresh):
    """office given by syscom, then `removemember office`: out of office, and no record says
    otherwise; syscom's other gifts stay until syscom itself goes."""
    uid = fresh
    assert groups(cluster, "ctdalek", "addmember", "syscom", uid, "--no-subscribe").returncode == 0
    assert groups(cluster, "ctdalek", "removemember", "office", uid).returncode == 0
    assert ldap.groups_of(uid) == {"syscom", "staff", "adm", "src"} and "syscom:office" not in ldap.grants_of(uid)
    assert groups(cluster, "ctdalek", "removemember", "syscom", uid).returncode == 0
    assert state(ldap, mailman, uid) == NOTHING


def test_no_subscribe_and_no_unsubscribe_leave_the_lists_alone(cluster, ldap, mailman, fresh):
    uid = fresh
    assert groups(cluster, "ctdalek", "addmember", "syscom", uid, "--no-subscribe").returncode == 0
    assert lists_of(mailman, uid) == set() and not any(":list:" in g for g in ldap.grants_of(uid))
    assert groups(cluster, "ctdalek", "removemember", "syscom", uid).returncode == 0
    assert groups(cluster, "ctdalek", "addmember", "syscom", uid).returncode == 0
    assert lists_of(mailman, uid) == SYSCOM_LISTS
    assert groups(cluster, "ctdalek", "removemember", "syscom", uid, "--no-unsubscribe").returncode == 0
    assert lists_of(mailman, uid) == SYSCOM_LISTS and ldap.grants_of(uid) == set() and ldap.groups_of(uid) == set()
    for name in SYSCOM_LISTS:
        subscribe(mailman, name, uid, present=False)


def test_check_mode_shows_the_changes_and_makes_none(cluster, ldap, mailman, fresh):
    uid = fresh
    before = state(ldap, mailman, uid)
    proc = groups(cluster, "ctdalek", "addmember", "syscom", uid, "--check")
    assert proc.returncode == 0, proc.stderr
    for line in [f"~ would add {uid} to syscom", f"~ would add {uid} to office (given by syscom)",
                 f"~ would subscribe {address(uid)} to syscom-alerts", "check mode: nothing was changed"]:
        assert line in proc.stdout
    doc = json.loads(groups(cluster, "ctdalek", "addmember", "syscom", uid, "--check", "--json").stdout)
    assert doc["check"] is True and {s["status"] for s in doc["steps"]} >= {"would"}
    assert state(ldap, mailman, uid) == before


# --- Mailman stopped: rolled back, or (best effort) a warning -------------------------------------

def while_mailman_stopped(cluster, *args):
    control.service("stop", "mailman")
    try:
        return groups(cluster, "ctdalek", *args)
    finally:
        control.service("start", "mailman")


def test_mailman_stopped_the_change_is_rolled_back(cluster, ldap, mailman, fresh):
    uid = fresh
    before = state(ldap, mailman, uid)
    proc = while_mailman_stopped(cluster, "addmember", "syscom", uid)
    one_line(proc, 1, "Mailman", "lists are not best effort ([ties] lists_best_effort = no)", "rolled back")
    assert f"undid: added {uid} to syscom" in proc.stdout and f"undid: added {uid} to office" in proc.stdout
    assert state(ldap, mailman, uid) == before and nss_groups(uid) == {uid}
    # ... and a removal likewise: they stay in syscom, with everything it gave.
    assert groups(cluster, "ctdalek", "addmember", "syscom", uid).returncode == 0
    added = state(ldap, mailman, uid)
    proc = while_mailman_stopped(cluster, "removemember", "syscom", uid)  # the lists go first: nothing to undo
    one_line(proc, 1, "Mailman", "lists are not best effort", "none of the change is made")
    assert state(ldap, mailman, uid) == added
    assert groups(cluster, "ctdalek", "removemember", "syscom", uid).returncode == 0


def test_mailman_stopped_lists_best_effort_warns_and_the_groups_stand(cluster, ldap, mailman, fresh):
    uid = fresh
    with config(ties={"lists_best_effort": "yes"}):
        proc = while_mailman_stopped(cluster, "addmember", "syscom", uid, "--json")
        result = ok(proc)
        assert any("lists are best effort ([ties] lists_best_effort = yes)" in w for w in result["warnings"])
        assert ldap.groups_of(uid) == {"syscom"} | SYSCOM_GIVES and lists_of(mailman, uid) == set()
        assert not any(":list:" in g for g in ldap.grants_of(uid))  # no record of what was not given
        assert groups(cluster, "ctdalek", "removemember", "syscom", uid).returncode == 0
        # ... and a removal: out of the groups, still on the lists, and told so.
        assert groups(cluster, "ctdalek", "addmember", "syscom", uid).returncode == 0
        result = ok(while_mailman_stopped(cluster, "removemember", "syscom", uid, "--json"))
        assert any("still on syscom, syscom-alerts" in w for w in result["warnings"])
        assert ldap.groups_of(uid) == set() and ldap.grants_of(uid) == set() and lists_of(mailman, uid) == SYSCOM_LISTS
    for name in SYSCOM_LISTS:
        subscribe(mailman, name, uid, present=False)
    assert state(ldap, mailman, uid) == NOTHING


# --- who may -------------------------------------------------------------------------------------

@pytest.fixture
def club2(cluster, ldap):
    """A second club (account and group, straight into LDAP), with ofstaff as its one member."""
    name = "gclub2"
    ldap.add(f"uid={name},{PEOPLE}", ["top", "account", "posixAccount", "club"],
             {"uid": name, "cn": "Group Test Club", "uidNumber": 39990, "gidNumber": 39990,
              "homeDirectory": f"/users/{name}"})
    ldap.add(f"cn={name},{GROUPS}", ["top", "group", "posixGroup"],
             {"cn": name, "gidNumber": 39990, "uniqueMember": [f"uid=ofstaff,{PEOPLE}"]})
    yield name
    ldap.delete(f"cn={name},{GROUPS}")
    ldap.delete(f"uid={name},{PEOPLE}")


def test_a_club_member_changes_their_own_clubs_members(cluster, ldap, mailman, fresh):
    uid = fresh
    before = ldap.members_of("club1")
    assert before == {"regular2", "clubrep1"}
    assert groups(cluster, "regular2", "addmember", "club1", uid).returncode == 0
    assert ldap.members_of("club1") == before | {uid} and "club1" in nss_groups(uid)
    assert groups(cluster, "regular2", "removemember", "club1", uid).returncode == 0
    assert ldap.members_of("club1") == before and ldap.grants_of(uid) == set()


@pytest.mark.parametrize("user, group, words", [
    ("regular2", "syscom", "needs syscom or membership in syscom"),  # not theirs
    ("regular2", "office", "needs syscom or membership in office"),
    ("regular2", "exec", "needs syscom or membership in exec"),
    ("regular2", "gclub2", "needs syscom or membership in gclub2"),  # another club
    ("ofstaff", "office", "only syscom changes the members of office"),  # theirs, but protected
    ("ofstaff", "cdrom", "only syscom changes the members of cdrom"),  # theirs, but not a club
    ("regular1", "club1", "needs syscom or membership in club1"),
])
def test_who_may_not(cluster, ldap, mailman, fresh, club2, user, group, words):
    uid = fresh
    for verb in ("addmember", "removemember"):
        one_line(groups(cluster, user, verb, group, uid), 3, words)
    assert state(ldap, mailman, uid)["groups"] == set() and ldap.members_of("club1") == {"regular2", "clubrep1"}


def test_a_club_that_gives_a_protected_group_is_syscoms_alone(cluster, ldap, mailman, fresh):
    uid = fresh
    with config(ties={"club1.groups": "office"}):
        one_line(groups(cluster, "regular2", "addmember", "club1", uid), 3, "club1 gives office")
    assert state(ldap, mailman, uid)["groups"] == set()


def test_each_host_decides_for_itself(cluster, connect, ldap, mailman, fresh):
    """The steps, sent raw as a client would that skips the others: each helper checks who may
    on its own, and the mail host takes no one off a list the group does not tie in its config."""
    uid = fresh
    for host, verb, args in [("mail", "tied_lists", {}), ("mail", "subscribe_tied", {}),
                             ("phosphoric-acid", "join", {}),
                             ("phosphoric-acid", "grant_lists", {"giving": ["syscom"], "already": []}),
                             ("phosphoric-acid", "leave", {"keep_lists": False}), ("mail", "unsubscribe_tied", {})]:
        # ofstaff is in office and cdrom, neither a club: being in a group is not managing it.
        for group in ("office", "cdrom"):
            _, reply = rawhelper.request(connect(host, "ofstaff"), "groups", verb, {"group": group, "uid": uid, **args})
            assert reply["error"]["name"] == "NotPermitted", (host, verb, group, reply)
        _, reply = rawhelper.request(connect(host, "regular2"), "groups", verb, {"group": "syscom", "uid": uid, **args})
        assert reply["error"]["name"] == "NotPermitted", (host, verb, reply)
    assert state(ldap, mailman, uid) == NOTHING
    # Which lists someone is on is asked of their group's managers only once they are in it.
    _, reply = rawhelper.request(connect("mail", "ctdalek"), "groups", "tied_lists", {"group": "syscom", "uid": uid})
    assert reply["error"]["name"] == "BadInput" and "is not in syscom" in reply["error"]["message"], reply
    # syscom's own step, alone: no record says syscom subscribed them, so they stay subscribed.
    subscribe(mailman, "syscom-alerts", uid, present=True)
    try:
        events, reply = rawhelper.request(connect("mail", "ctdalek"), "groups", "unsubscribe_tied",
                                          {"group": "syscom", "uid": uid})
        assert reply["result"]["unsubscribed"] == [] and "syscom-alerts" in lists_of(mailman, uid)
    finally:
        subscribe(mailman, "syscom-alerts", uid, present=False)


# --- bad input -----------------------------------------------------------------------------------

@pytest.mark.parametrize("args, words", [
    (["addmember", "syscom", "nosuchuser"], "no user 'nosuchuser'"),
    (["addmember", "nosuchgroup", "{uid}"], "no group 'nosuchgroup'"),
    (["removemember", "nosuchgroup", "{uid}"], "no group 'nosuchgroup'"),
    (["addmember", "*)(cn=*", "{uid}"], "is not a group name"),
    (["addmember", "syscom", "*)(uid=*"], "is not a user name"),
    (["addmember", "syscom", "x'; DROP"], "is not a user name"),
    (["addmember", "../syscom", "{uid}"], "is not a group name"),
    (["addmember", "syscom", "a\nb"], "control character"),
    (["get", "nosuchgroup"], "no group 'nosuchgroup'"),
])
def test_bad_input_one_line_and_no_change(cluster, ldap, mailman, fresh, args, words):
    uid = fresh
    before = (state(ldap, mailman, uid), ldap.members_of("syscom"))
    one_line(groups(cluster, "ctdalek", *[a.replace("{uid}", uid) for a in args]), 2, words)
    assert (state(ldap, mailman, uid), ldap.members_of("syscom")) == before


# --- get and list --------------------------------------------------------------------------------

def test_get_shows_gid_members_and_ties(cluster):
    result = ok(groups(cluster, "regular1", "get", "syscom", "--json"))
    assert result["gid"] == 10001 and result["club"] is False
    assert {"uid": "ctdalek", "name": "Calum T. Dalek", "given_by": []} in result["members"]
    assert result["ties"] == {"groups": ["office", "staff", "adm", "src"], "lists": ["syscom", "syscom-alerts"]}
    club = ok(groups(cluster, "regular1", "get", "club1", "--json"))
    assert club["club"] is True and club["description"] == "Club One"
    assert {m["uid"] for m in club["members"]} == {"regular2", "clubrep1"}


def test_list_counts_members_and_clubs_only_with_clubs(cluster, ldap):
    rows = {r["group"]: r for r in ok(groups(cluster, "regular1", "list", "--json"))}
    assert {"syscom", "office", "exec", "club1"} <= set(rows) and "regular1" not in rows  # no personal groups
    for name in ("syscom", "office", "club1"):
        assert rows[name]["members"] == len(ldap.members_of(name))
    assert rows["club1"]["kind"] == "club" and rows["office"]["kind"] == "group"
    clubs = ok(groups(cluster, "regular1", "list", "--clubs", "--json"))
    assert clubs and {r["kind"] for r in clubs} == {"club"} and "club1" in {r["group"] for r in clubs}


def test_members_delete_takes_the_grant_records_too(cluster, ldap, mailman, people):
    uid = people[2]
    assert groups(cluster, "ctdalek", "addmember", "syscom", uid).returncode == 0
    assert ldap.grants_of(uid)
    delete_member(cluster, ldap, mailman, uid)  # asserts no membership, grant or subscription is left
    people[2] = new_member(cluster, "g")
