"""`ceo members convert`, `unrenew`, `search`: through the real command, checked in LDAP as root,
in Mailman's roster and in the SMTP sink.

The accounts are this module's own (`f` + 8 hex digits), made by `ceo members add` as syscom
and deleted by `ceo members delete` at the end (test_members_manage.remove_account then reads
every service and removes and reports anything left). Seeded people are only read.
"""

from __future__ import annotations

import mailbox
import uuid

import pytest
from test_members_manage import (ARCHIVE, DOMAIN, Account, Directory, csc_general, ceo, doc, ensure_archive,
                                 ok_doc, one_line_error, remove_account)

from ceo import terms as T

NOW = T.current()
NEXT, AFTER, PAST = T.add(NOW, 1), T.add(NOW, 2), T.add(NOW, -1)
HOSTILE = ["*)(uid=*", "x'; DROP", "../etc", "a\nb", "Regular1"]


@pytest.fixture(scope="module")
def ldap(cluster):
    return Directory(cluster)


@pytest.fixture(scope="module")
def made(cluster, ldap, mailman):
    """new(*add options) -> a fresh account of this module; every one is deleted at the end
    (and the archive of deleted homes removed again if this module made it)."""
    accounts, made_archive = [], ensure_archive()

    def new(*options):
        uid = f"f{uuid.uuid4().hex[:8]}"
        proc = ceo(cluster, "ctdalek", "add", uid, "--cn", f"Fixcase {uid[1:]} Person", *options, "--json")
        result = ok_doc(proc)
        accounts.append(Account(uid, result["uidNumber"], result["password"]))
        return uid
    yield new
    problems = [p for a in accounts for p in remove_account(cluster, ldap, mailman, a)]
    if made_archive:
        ARCHIVE.rmdir()
    assert not problems, problems


def terms(ldap, uid):
    entry = ldap.user(uid)
    return sorted(entry.get("term", []), key=T.ordinal), sorted(entry.get("nonMemberTerm", []), key=T.ordinal)


def welcomes(cluster, uid) -> int:
    box = mailbox.Maildir(cluster.state / "mail" / "sink", create=False)
    return sum(1 for m in box if f"{uid}@{DOMAIN}" in (m["To"] or "") and "Welcome" in (m["Subject"] or ""))


def people(ldap) -> list:
    """Every entry under People, as stored: for "nothing changed"."""
    def read(conn):
        conn.search(ldap.people, "(objectClass=*)", attributes=["*"])
        return sorted((r["dn"], sorted((k, sorted(v)) for k, v in r["raw_attributes"].items()))
                      for r in conn.response)
    return ldap._do(read)


# --- convert -----------------------------------------------------------------------------------

def test_clubrep_to_member_moves_every_term_sends_the_welcome_and_subscribes(cluster, ldap, mailman, made):
    uid = made("--clubrep", "--terms", "2")
    assert terms(ldap, uid) == ([], [NOW, NEXT])
    assert welcomes(cluster, uid) == 0 and f"{uid}@{DOMAIN}" not in csc_general(mailman)
    result = ok_doc(ceo(cluster, "ofstaff", "convert", uid, "--to", "member", "--json"))
    assert result["terms"] == [NOW, NEXT] and result["nonMemberTerms"] == [] and result["kind"] == "member"
    assert terms(ldap, uid) == ([NOW, NEXT], [])
    assert "nonMemberTerm" not in ldap.user(uid)
    assert welcomes(cluster, uid) == 1
    assert f"{uid}@{DOMAIN}" in csc_general(mailman)


def test_member_to_clubrep_moves_every_term_and_unsubscribes_without_a_second_welcome(cluster, ldap, mailman, made):
    uid = made("--terms", "2")  # subscribed and welcomed by add
    assert f"{uid}@{DOMAIN}" in csc_general(mailman) and welcomes(cluster, uid) == 1
    ok_doc(ceo(cluster, "ctdalek", "convert", uid, "--to", "clubrep", "--json"))
    assert terms(ldap, uid) == ([], [NOW, NEXT])
    assert f"{uid}@{DOMAIN}" not in csc_general(mailman)
    # and back: the member rules again (subscribed; the welcome is sent once more, as to any
    # new member: the club rep's account had no member terms)
    ok_doc(ceo(cluster, "ctdalek", "convert", uid, "--to", "member", "--no-welcome", "--json"))
    assert terms(ldap, uid) == ([NOW, NEXT], [])
    assert f"{uid}@{DOMAIN}" in csc_general(mailman) and welcomes(cluster, uid) == 1


def test_convert_to_what_it_already_is_is_one_line_exit_2_and_changes_nothing(cluster, ldap, made):
    member, clubrep = made("--no-welcome", "--no-subscribe"), made("--clubrep")
    before = people(ldap)
    for uid, kind in ((member, "member"), (clubrep, "clubrep")):
        proc = ceo(cluster, "ofstaff", "convert", uid, "--to", kind)
        one_line_error(proc, 2)
        assert "already a" in proc.stderr
    assert people(ldap) == before


def test_convert_check_says_what_and_changes_nothing(cluster, ldap, mailman, made):
    uid = made("--clubrep")
    before = people(ldap)
    proc = ceo(cluster, "ofstaff", "convert", uid, "--to", "member", "--check")
    assert proc.returncode == 0, proc.stderr
    assert f"~ would make {uid} a member: move {NOW} from nonMemberTerm to term" in proc.stdout
    assert people(ldap) == before and welcomes(cluster, uid) == 0 and f"{uid}@{DOMAIN}" not in csc_general(mailman)


# --- unrenew -----------------------------------------------------------------------------------

def test_unrenew_removes_exactly_a_future_term_then_the_current_one_without_locking(cluster, ldap, made):
    uid = made("--no-welcome", "--no-subscribe", "--terms", "3")
    ok_doc(ceo(cluster, "ofstaff", "unrenew", uid, "--term", NEXT, "--json"))
    assert terms(ldap, uid) == ([NOW, AFTER], [])
    proc = ceo(cluster, "ofstaff", "unrenew", uid, "--term", NOW, "--json")
    result = ok_doc(proc)
    assert result["removed"] == NOW and result["terms"] == [AFTER]
    assert terms(ldap, uid) == ([AFTER], [])
    assert "shadowExpire" not in ldap.user(uid)  # expire locks, after the grace period; not this
    warned = [e for e in doc(proc)["steps"] if e.get("status") == "warning"]
    assert len(warned) == 1 and "no current term" in warned[0]["message"], doc(proc)["steps"]


def test_unrenew_of_a_club_rep_term(cluster, ldap, made):
    uid = made("--clubrep", "--terms", "2")
    ok_doc(ceo(cluster, "ctdalek", "unrenew", uid, "--term", NEXT, "--json"))
    assert terms(ldap, uid) == ([], [NOW])


def test_unrenew_refuses_a_past_term_an_unregistered_one_and_the_last_one(cluster, ldap, made):
    uid = made("--no-welcome", "--no-subscribe", "--term", PAST, "--term", NOW)
    before = people(ldap)
    proc = ceo(cluster, "ofstaff", "unrenew", uid, "--term", PAST)
    one_line_error(proc, 2)
    assert "past" in proc.stderr
    proc = ceo(cluster, "ofstaff", "unrenew", uid, "--term", AFTER)
    one_line_error(proc, 2)
    assert "not registered" in proc.stderr and NOW in proc.stderr
    assert people(ldap) == before
    only = made("--no-welcome", "--no-subscribe")
    before = people(ldap)
    proc = ceo(cluster, "ofstaff", "unrenew", only, "--term", NOW)
    one_line_error(proc, 2)
    assert "only term" in proc.stderr
    assert people(ldap) == before


def test_unrenew_check_changes_nothing(cluster, ldap, made):
    uid = made("--no-welcome", "--no-subscribe", "--terms", "2")
    before = people(ldap)
    proc = ceo(cluster, "ofstaff", "unrenew", uid, "--term", NEXT, "--check")
    assert proc.returncode == 0 and f"~ would remove {NEXT} from {uid}" in proc.stdout
    assert people(ldap) == before


# --- search ------------------------------------------------------------------------------------

def test_search_finds_by_part_of_a_name_in_any_order_and_by_uid(cluster, made):
    uid = made("--no-welcome", "--no-subscribe")
    tag = uid[1:]
    for text in (tag[:6], f"person {tag}", "FIXCASE " + tag.upper(), uid):
        rows = ok_doc(ceo(cluster, "ofstaff", "search", text, "--json"))["matches"]
        assert [r["uid"] for r in rows] == [uid], text
        assert rows[0]["name"] == f"Fixcase {tag} Person" and rows[0]["terms"] == [NOW] and rows[0]["current"]
    rows = ok_doc(ceo(cluster, "ctdalek", "search", "regular", "--json"))["matches"]
    assert {"regular1", "regular2"} <= {r["uid"] for r in rows}
    # approximately: a misspelt name (slapd's phonetic match)
    rows = ok_doc(ceo(cluster, "ofstaff", "search", "Reguler Onne", "--json"))["matches"]
    assert [r["uid"] for r in rows] == ["regular1"]


def test_search_escapes_filter_text_and_bounds_the_results(cluster):
    for text in ("*)(uid=*", "**", "x)(|(cn=*"):
        result = ok_doc(ceo(cluster, "ofstaff", "search", text, "--json"))
        assert result["matches"] == [] and not result["more"], text
    wide = ok_doc(ceo(cluster, "ofstaff", "search", "re", "--json"))  # Regular One, Two, Club Rep One, ...
    assert len(wide["matches"]) >= 3
    bounded = ok_doc(ceo(cluster, "ofstaff", "search", "re", "--limit", "2", "--json"))
    assert len(bounded["matches"]) == 2 and bounded["more"] and bounded["limit"] == 2
    one_line_error(ceo(cluster, "ofstaff", "search", "re", "--limit", "1000"), 2)
    one_line_error(ceo(cluster, "ofstaff", "search", "x"), 2)
    one_line_error(ceo(cluster, "ofstaff", "search", "a\nb"), 2)


# --- bad input and who may ---------------------------------------------------------------------

@pytest.mark.parametrize("bad", HOSTILE)
def test_hostile_uids_are_one_line_exit_2_and_change_nothing(cluster, ldap, bad):
    before = people(ldap)
    one_line_error(ceo(cluster, "ofstaff", "convert", bad, "--to", "member"), 2)
    one_line_error(ceo(cluster, "ofstaff", "unrenew", bad, "--term", NOW), 2)
    assert people(ldap) == before


def test_unknown_users_malformed_terms_and_kinds_are_one_line_exit_2(cluster, ldap, made):
    uid = made("--no-welcome", "--no-subscribe", "--terms", "2")
    before = people(ldap)
    for args in (["convert", "nosuchuser9", "--to", "member"], ["unrenew", "nosuchuser9", "--term", NOW],
                 ["unrenew", uid, "--term", "w20x7"], ["unrenew", uid, "--term", "x2027"],
                 ["unrenew", uid], ["convert", uid, "--to", "admin"], ["convert", uid],
                 ["convert", "club1", "--to", "member"]):
        proc = ceo(cluster, "ofstaff", *args)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()  # usage errors say `ceo members VERB: ...`
        assert len(lines) == 1 and lines[0].startswith("ceo") and "Traceback" not in proc.stdout, proc.stderr
    assert people(ldap) == before


@pytest.mark.parametrize("user,code", [("ctdalek", 0), ("ofstaff", 0), ("regular1", 3)])
def test_who_may(cluster, ldap, made, user, code):
    uid = made("--clubrep", "--terms", "2")
    before = people(ldap)
    for args in (["search", "regular", "--json"], ["unrenew", uid, "--term", NEXT, "--json"],
                 ["convert", uid, "--to", "member", "--no-welcome", "--no-subscribe", "--json"]):
        proc = ceo(cluster, user, *args)
        if code:
            one_line_error(proc, code)
        else:
            assert proc.returncode == 0, (args, proc.stderr)
    if code:
        assert people(ldap) == before
    else:
        assert terms(ldap, uid) == ([NOW], [])


def test_office_may_not_convert_or_unrenew_a_protected_account(cluster, ldap):
    before = people(ldap)
    converted = ceo(cluster, "ofstaff", "convert", "ctdalek", "--to", "clubrep")
    try:
        one_line_error(converted, 3)
        one_line_error(ceo(cluster, "ofstaff", "unrenew", "ctdalek", "--term", NOW), 3)
        assert people(ldap) == before
    finally:  # a broken guard must not leave the seeded syscom member a club rep for later tests
        if converted.returncode == 0:
            ceo(cluster, "ctdalek", "convert", "ctdalek", "--to", "member", "--no-welcome", "--no-subscribe")

