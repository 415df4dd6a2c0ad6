"""`ceo lists` through the real command, checked through Mailman's REST API directly."""

from __future__ import annotations

import json
import uuid

import pytest

from sandbox import control

DOMAIN = "csclub.internal"


@pytest.fixture(scope="module")
def mailman(cluster):
    from mailmanclient import Client
    return Client(f"http://{cluster.addrs['mail']}:8001/3.1", "restadmin", "restpass")


def members_of(mailman, name):
    return {m.email for m in mailman.get_list(f"{name}@{DOMAIN}").members}


def ceo(cluster, user, *args):
    return cluster.run(["ceo", "lists", *args], user)


def fresh_address():
    return f"t{uuid.uuid4().hex[:10]}@example.org"


@pytest.fixture
def unsubscribe_after(mailman):
    made = []
    yield made
    for name, address in made:
        try:
            mailman.get_list(f"{name}@{DOMAIN}").unsubscribe(address)
        except ValueError:
            pass


def test_list_shows_descriptions_and_counts(cluster):
    proc = ceo(cluster, "regular1", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["list"]: r for r in json.loads(proc.stdout)["result"]}
    assert set(rows) >= {"csc-general", "syscom", "syscom-alerts", "exec", "ceo"}
    assert rows["syscom"]["description"] == "The systems committee"
    assert all(isinstance(r["members"], int) for r in rows.values())


@pytest.mark.parametrize("who", ["regular1", "address"])
def test_subscribe_and_unsubscribe(cluster, mailman, unsubscribe_after, who):
    address = fresh_address() if who == "address" else "regular1@csclub.internal"
    who = address if who == "address" else who
    mailman_list = "exec"
    unsubscribe_after.append((mailman_list, address))
    assert address not in members_of(mailman, mailman_list)
    proc = ceo(cluster, "ofstaff", "subscribe", mailman_list, who)
    assert proc.returncode == 0, proc.stderr
    assert f"subscribed {address} to exec" in proc.stdout
    assert address in members_of(mailman, mailman_list)
    # pre-approved: a full member at once, nothing pending
    assert mailman.get_list(f"exec@{DOMAIN}").get_member(address).role == "member"
    again = ceo(cluster, "ofstaff", "subscribe", mailman_list, who, "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["result"]["changed"] is False
    proc = ceo(cluster, "ofstaff", "unsubscribe", mailman_list, who)
    assert proc.returncode == 0, proc.stderr
    assert address not in members_of(mailman, mailman_list)
    again = ceo(cluster, "ofstaff", "unsubscribe", mailman_list, who)
    assert again.returncode == 0 and "is not on exec" in again.stdout


def test_member_subscribes_themself_to_open_list_only(cluster, mailman, unsubscribe_after):
    unsubscribe_after.append(("csc-general", "regular2@csclub.internal"))
    proc = ceo(cluster, "regular2", "subscribe", "csc-general", "regular2")
    assert proc.returncode == 0, proc.stderr
    assert "regular2@csclub.internal" in members_of(mailman, "csc-general")
    proc = ceo(cluster, "regular2", "subscribe", "syscom", "regular2")
    assert proc.returncode == 3
    assert "regular2@csclub.internal" not in members_of(mailman, "syscom")
    # ... and not for someone else, even on the open list
    proc = ceo(cluster, "regular2", "subscribe", "csc-general", "regular1")
    assert proc.returncode == 3


def test_subscriptions_are_audited_as_preapproved(cluster, unsubscribe_after):
    address = fresh_address()
    unsubscribe_after.append(("exec", address))
    assert ceo(cluster, "ctdalek", "subscribe", "exec", address).returncode == 0
    records = [json.loads(line) for line in (cluster.state / "audit.jsonl").read_text().splitlines()]
    rec = [r for r in records if r["verb"] == "subscribe" and r["args"].get("who") == address][-1]
    assert rec["caller"] == "ctdalek" and rec["host"] == "mail.csclub.internal"
    assert rec["pre_confirmed"] is True and rec["pre_approved"] is True and rec["outcome"] == "done"


def test_check_mode_shows_the_change_and_makes_none(cluster, mailman):
    address = fresh_address()
    proc = ceo(cluster, "ofstaff", "subscribe", "exec", address, "--check")
    assert proc.returncode == 0 and f"subscribed {address} to exec" in proc.stdout and "check mode" in proc.stdout
    assert address not in members_of(mailman, "exec")


def test_members_for_staff_not_for_members(cluster, mailman, unsubscribe_after):
    address = fresh_address()
    unsubscribe_after.append(("ceo", address))
    mailman.get_list(f"ceo@{DOMAIN}").subscribe(address, pre_verified=True, pre_confirmed=True, pre_approved=True)
    proc = ceo(cluster, "ofstaff", "members", "ceo", "--json")
    assert proc.returncode == 0 and address in {m["address"] for m in json.loads(proc.stdout)["result"]}
    assert ceo(cluster, "regular1", "members", "ceo").returncode == 3


def test_list_owner_sees_their_lists_members(cluster, mailman):
    mlist = mailman.get_list(f"syscom-alerts@{DOMAIN}")
    mlist.add_owner("regular1@csclub.internal")
    try:
        assert ceo(cluster, "regular1", "members", "syscom-alerts").returncode == 0
        assert ceo(cluster, "regular1", "members", "exec").returncode == 3
    finally:
        mlist.remove_owner("regular1@csclub.internal")


@pytest.mark.parametrize("args, message", [
    (["subscribe", "no-such-list", "regular1"], "no list 'no-such-list'"),
    (["subscribe", "exec", "a b@example.org"], "is not a user name or an email address"),
    (["subscribe", "exec", "a@example.org\nBcc: x@example.org"], "control character"),
    (["subscribe", "exec", "nosuchuser"], "no user 'nosuchuser'"),
    (["subscribe", "exec", "*)(uid=*"], "is not a user name or an email address"),
    (["subscribe", "../exec", "regular1"], "is not a list name"),
    (["unsubscribe", "exec", "x'; DROP TABLE members; --"], "is not a user name or an email address"),
])
def test_bad_input_changes_nothing(cluster, mailman, args, message):
    before = {name: members_of(mailman, name) for name in ("exec", "csc-general")}
    proc = ceo(cluster, "ofstaff", *args)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and message in proc.stderr
    assert {name: members_of(mailman, name) for name in before} == before


def test_mailman_down_names_the_host_and_service(cluster, mailman):
    control.service("stop", "mailman")
    try:
        proc = ceo(cluster, "ofstaff", "subscribe", "exec", fresh_address())
        assert proc.returncode == 1
        assert proc.stderr.startswith("ceo: Mailman's REST API on mail.csclub.internal is not answering")
        assert len(proc.stderr.strip().splitlines()) == 1
    finally:
        control.service("start", "mailman")
    assert ceo(cluster, "ofstaff", "list").returncode == 0
