"""`ceo lists` through the real command, checked through Mailman's REST API directly."""

from __future__ import annotations

import json
import uuid

import pytest

from sandbox import control

DOMAIN = "csclub.internal"


def members_of(mailman, name):
    return {m.email for m in mailman.get_list(f"{name}@{DOMAIN}").members}


def ceo(cluster, user, *args):
    return cluster.run(["ceo", "lists", *args], user)


def fresh_address():
    return f"t{uuid.uuid4().hex[:10]}@example.org"


def pending_requests(mailman, name, address):
    """Mailman's own pending requests (confirmation, moderation tokens) for `address` on a list."""
    return [r for r in mailman.get_list(f"{name}@{DOMAIN}").requests if r["email"] == address]


@pytest.fixture
def unsubscribe_after(mailman):
    made = []
    yield made
    for name, address in made:
        mlist = mailman.get_list(f"{name}@{DOMAIN}")
        for request in pending_requests(mailman, name, address):  # a failed test's leftovers
            mlist.moderate_request(request["token"], "discard")
        if address in members_of(mailman, name):
            mlist.unsubscribe(address, pre_confirmed=True, pre_approved=True)
        assert address not in members_of(mailman, name) and not pending_requests(mailman, name, address)


@pytest.fixture
def strict_exec(mailman):
    """exec as the strictest list: a subscriber must confirm and a moderator approve, unless the
    subscription is pre-confirmed and pre-approved. Restored afterwards."""
    settings = mailman.get_list(f"exec@{DOMAIN}").settings
    before = settings["subscription_policy"]
    settings["subscription_policy"] = "confirm_then_moderate"
    settings.save()
    try:
        assert mailman.get_list(f"exec@{DOMAIN}").settings["subscription_policy"] == "confirm_then_moderate"
        yield
    finally:
        settings["subscription_policy"] = before
        settings.save()
        assert mailman.get_list(f"exec@{DOMAIN}").settings["subscription_policy"] == before


def test_list_shows_descriptions_and_counts(cluster, mailman, unsubscribe_after):
    address = fresh_address()
    unsubscribe_after.append(("syscom-alerts", address))
    mailman.get_list(f"syscom-alerts@{DOMAIN}").subscribe(address, pre_verified=True, pre_confirmed=True,
                                                          pre_approved=True)
    proc = ceo(cluster, "regular1", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["list"]: r for r in json.loads(proc.stdout)["result"]}
    assert set(rows) >= {"csc-general", "syscom", "syscom-alerts", "exec", "ceo"}
    assert rows["syscom"]["description"] == "The systems committee"
    # The counts are Mailman's own, list by list (syscom-alerts has at least the one just added).
    assert {name: row["members"] for name, row in rows.items()} == \
        {ml.list_name: len(ml.members) for ml in mailman.lists}
    assert rows["syscom-alerts"]["members"] >= 1


@pytest.mark.parametrize("who", ["regular1", "address"])
def test_subscribe_and_unsubscribe(cluster, mailman, unsubscribe_after, who):
    address = fresh_address() if who == "address" else "regular1@csclub.internal"
    who = address if who == "address" else who
    mailman_list = "ceo"
    unsubscribe_after.append((mailman_list, address))
    assert address not in members_of(mailman, mailman_list)
    proc = ceo(cluster, "ofstaff", "subscribe", mailman_list, who)
    assert proc.returncode == 0, proc.stderr
    assert f"subscribed {address} to ceo" in proc.stdout
    assert address in members_of(mailman, mailman_list)
    # the list wants confirmation: ceo makes a full member at once, nothing pending
    assert mailman.get_list(f"ceo@{DOMAIN}").get_member(address).role == "member"
    assert pending_requests(mailman, "ceo", address) == []
    again = ceo(cluster, "ofstaff", "subscribe", mailman_list, who, "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["result"]["changed"] is False
    proc = ceo(cluster, "ofstaff", "unsubscribe", mailman_list, who)
    assert proc.returncode == 0, proc.stderr
    assert address not in members_of(mailman, mailman_list)
    again = ceo(cluster, "ofstaff", "unsubscribe", mailman_list, who)
    assert again.returncode == 0 and "is not on ceo" in again.stdout


def test_member_subscribes_themself_to_open_list_only(cluster, mailman, unsubscribe_after):
    unsubscribe_after.append(("csc-general", "regular2@csclub.internal"))
    unsubscribe_after.append(("csc-general", "regular1@csclub.internal"))
    assert "regular2@csclub.internal" not in members_of(mailman, "csc-general")
    assert "regular1@csclub.internal" not in members_of(mailman, "csc-general")
    proc = ceo(cluster, "regular2", "subscribe", "csc-general", "regular2")
    assert proc.returncode == 0, proc.stderr
    assert "regular2@csclub.internal" in members_of(mailman, "csc-general")
    proc = ceo(cluster, "regular2", "subscribe", "syscom", "regular2")
    assert proc.returncode == 3
    assert "regular2@csclub.internal" not in members_of(mailman, "syscom")
    # ... and not for someone else, even on the open list
    proc = ceo(cluster, "regular2", "subscribe", "csc-general", "regular1")
    assert proc.returncode == 3
    assert "regular1@csclub.internal" not in members_of(mailman, "csc-general")


@pytest.mark.parametrize("who", ["regular1", "address"])
def test_subscription_is_preconfirmed_and_preapproved_in_mailman(cluster, mailman, strict_exec,
                                                                  unsubscribe_after, who):
    """On a list that wants the subscriber's confirmation and a moderator's approval, ceo's
    subscription is a full, active membership at once: nothing pending in Mailman."""
    address = fresh_address() if who == "address" else "regular1@csclub.internal"
    who = address if who == "address" else who
    unsubscribe_after.append(("exec", address))
    assert address not in members_of(mailman, "exec") and not pending_requests(mailman, "exec", address)
    proc = ceo(cluster, "ctdalek", "subscribe", "exec", who)
    assert proc.returncode == 0, proc.stderr
    assert pending_requests(mailman, "exec", address) == []        # no confirmation or moderation token
    member = mailman.get_list(f"exec@{DOMAIN}").get_member(address)  # ValueError if not a member
    assert (member.email, member.role, member.delivery_mode) == (address, "member", "regular")
    assert mailman.get_address(address).verified is True          # pre-verified: no verification mail
    # ... and the audit record says so.
    records = [json.loads(line) for line in (cluster.state / "audit.jsonl").read_text().splitlines()]
    rec = [r for r in records if r["verb"] == "subscribe" and r["args"].get("who") == who][-1]
    assert rec["caller"] == "ctdalek" and rec["host"] == "mail.csclub.internal" and rec["outcome"] == "done"
    assert rec["pre_confirmed"] is True and rec["pre_approved"] is True


def test_check_mode_shows_the_change_and_makes_none(cluster, mailman):
    address = fresh_address()
    proc = ceo(cluster, "ofstaff", "subscribe", "ceo", address, "--check")
    assert proc.returncode == 0 and f"~ would subscribe {address} to ceo" in proc.stdout and "check mode" in proc.stdout
    assert address not in members_of(mailman, "ceo")


def test_members_for_staff_not_for_members(cluster, mailman, unsubscribe_after):
    address = fresh_address()
    unsubscribe_after.append(("ceo", address))
    mailman.get_list(f"ceo@{DOMAIN}").subscribe(address, pre_verified=True, pre_confirmed=True, pre_approved=True)
    proc = ceo(cluster, "ofstaff", "members", "ceo", "--json")
    assert proc.returncode == 0 and address in {m["address"] for m in json.loads(proc.stdout)["result"]}
    assert ceo(cluster, "regular1", "members", "ceo").returncode == 3


def test_list_owner_sees_their_lists_members(cluster, mailman):
    mlist = mailman.get_list(f"syscom-alerts@{DOMAIN}")
    assert "regular1@csclub.internal" not in {o.email for o in mlist.owners}
    assert ceo(cluster, "regular1", "members", "syscom-alerts").returncode == 3
    mlist.add_owner("regular1@csclub.internal")
    try:
        assert ceo(cluster, "regular1", "members", "syscom-alerts").returncode == 0
        assert ceo(cluster, "regular1", "members", "exec").returncode == 3
    finally:
        mlist.remove_owner("regular1@csclub.internal")
        assert "regular1@csclub.internal" not in {o.email for o in mailman.get_list(f"syscom-alerts@{DOMAIN}").owners}


@pytest.mark.parametrize("args, message", [
    (["subscribe", "no-such-list", "regular1"], "no list 'no-such-list'"),
    (["subscribe", "ceo", "a b@example.org"], "is not a user name or an email address"),
    (["subscribe", "ceo", "a@example.org\nBcc: x@example.org"], "control character"),
    (["subscribe", "ceo", "nosuchuser"], "no user 'nosuchuser'"),
    (["subscribe", "ceo", "*)(uid=*"], "is not a user name or an email address"),
    (["subscribe", "../ceo", "regular1"], "is not a list name"),
    (["unsubscribe", "ceo", "x'; DROP TABLE members; --"], "is not a user name or an email address"),
])
def test_bad_input_changes_nothing(cluster, mailman, args, message):
    before = {name: members_of(mailman, name) for name in ("ceo", "csc-general")}
    proc = ceo(cluster, "ofstaff", *args)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and message in proc.stderr
    assert {name: members_of(mailman, name) for name in before} == before


def test_mailman_down_names_the_host_and_service(cluster, mailman):
    control.service("stop", "mailman")
    try:
        proc = ceo(cluster, "ofstaff", "subscribe", "ceo", fresh_address())
        assert proc.returncode == 1
        assert proc.stderr.startswith("ceo: Mailman's REST API on mail.csclub.internal is not answering")
        assert len(proc.stderr.strip().splitlines()) == 1
    finally:
        control.service("start", "mailman")
    assert ceo(cluster, "ofstaff", "list").returncode == 0
