"""Concurrency, measured through the real command: 20 `members add` at once from different
sessions, parallel renewals of the same members (the same term and different ones), parallel
`groups addmember` on one group, and two office staff renewing from overlapping CSV files at
the same time. Afterwards: distinct numbers, no lost term, no duplicate, no deadlock (every
process ends within its timeout), all checked in LDAP and Kerberos as root.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from test_members_manage import Account, Directory, getprinc, remove_account

from ceo import terms as T

NOW = T.current()
NEXT, AFTER = T.add(NOW, 1), T.add(NOW, 2)
N = 20
TIMEOUT = 240  # a process still running then is a deadlock


def ceo(cluster, user, *args, **kw):
    return cluster.run(["ceo", *args], user, stdin=subprocess.DEVNULL, timeout=TIMEOUT, **kw)


def parallel(calls):
    """Start every call at once; their CompletedProcesses, in order."""
    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda call: call(), calls))


@pytest.fixture(scope="module")
def ldap(cluster):
    return Directory(cluster)


@pytest.fixture(scope="module")
def accounts(cluster, ldap, mailman, summary):
    """20 members added at once by office staff, each from its own `ceo` process and session;
    deleted at the end (every service read for what is left)."""
    tag = uuid.uuid4().hex[:6]
    uids = [f"c{tag}{i:02d}" for i in range(N)]
    procs = parallel([lambda u=u: ceo(cluster, "ofstaff", "members", "add", u, "--cn", f"Concurrent {u}",
                                      "--json") for u in uids])
    made = {}
    for uid, proc in zip(uids, procs):
        if proc.returncode == 0:
            made[uid] = json.loads(proc.stdout)["result"]
    yield uids, made, procs
    problems = [p for uid, r in made.items()
                for p in remove_account(cluster, ldap, mailman, Account(uid, r["uidNumber"], r["password"]))]
    assert not problems, problems


def test_twenty_parallel_adds_all_succeed_with_distinct_numbers(cluster, ldap, accounts, summary):
    uids, made, procs = accounts
    failed = [(u, p.returncode, p.stderr[-300:]) for u, p in zip(uids, procs) if p.returncode != 0]
    numbers = [int(ldap.user(u)["uidNumber"][0]) for u in made]
    summary.setdefault("concurrency", {}).update(
        {"parallel adds": N, "adds failed": len(failed), "duplicate numbers": len(numbers) - len(set(numbers))})
    assert not failed, failed
    assert len(set(numbers)) == N and sorted(numbers) == sorted(r["uidNumber"] for r in made.values())
    for uid in uids:
        assert f"{uid}@{cluster.realm}" in getprinc(uid)


def test_parallel_renewals_of_the_same_members_lose_no_term_and_repeat_none(cluster, ldap, accounts, summary):
    uids, _, _ = accounts
    targets = uids[:5]
    calls = []
    for uid in targets:  # the same term twice, and another term, all at once
        calls += [lambda u=uid: ceo(cluster, "ofstaff", "members", "renew", u, "--term", NEXT),
                  lambda u=uid: ceo(cluster, "ctdalek", "members", "renew", u, "--term", NEXT),
                  lambda u=uid: ceo(cluster, "ofstaff", "members", "renew", u, "--term", AFTER)]
    procs = parallel(calls)
    failed = [(p.returncode, p.stderr[-300:]) for p in procs if p.returncode != 0]
    terms = {u: ldap.user(u)["term"] for u in targets}
    lost = [u for u, t in terms.items() if set(t) != {NOW, NEXT, AFTER}]
    repeated = [u for u, t in terms.items() if len(t) != len(set(t))]
    summary.setdefault("concurrency", {}).update(
        {"parallel renewals": len(calls), "renewals failed": len(failed), "lost terms": len(lost),
         "repeated terms": len(repeated)})
    assert not failed and not lost and not repeated, (failed, terms)


def test_parallel_addmember_on_one_group_keeps_every_member(cluster, ldap, accounts, summary):
    uids, _, _ = accounts
    club = f"cc{uuid.uuid4().hex[:6]}"
    made = ceo(cluster, "ctdalek", "groups", "add", club, "--description", "Concurrency club")
    assert made.returncode == 0, made.stderr
    try:
        members = uids[:10]
        procs = parallel([lambda u=u: ceo(cluster, "ctdalek", "groups", "addmember", club, u) for u in members])
        failed = [(p.returncode, p.stderr[-300:]) for p in procs if p.returncode != 0]
        group = ldap._do(lambda c: (c.search(f"ou=Group,{cluster.base_dn}", f"(cn={club})", attributes=["*"]),
                                    c.response)[1])
        attrs = group[0]["raw_attributes"]
        held = {v.decode() for v in attrs.get("memberUid", [])} | {  # a DN's first value: uid=X,...
            v.decode().split(",")[0].split("=", 1)[1] for v in attrs.get("uniqueMember", [])}
        summary.setdefault("concurrency", {}).update(
            {"parallel addmember on one group": len(members), "addmember failed": len(failed),
             "members lost": len(set(members) - held)})
        assert not failed, failed
        assert held >= set(members), sorted(set(members) - held)
    finally:
        gone = ceo(cluster, "ctdalek", "groups", "delete", club, "--yes")
        assert gone.returncode == 0, gone.stderr


def test_two_office_staff_renewing_overlapping_csv_files_at_once(cluster, ldap, accounts, summary, tmp_path):
    uids, _, _ = accounts
    later = T.add(NOW, 3)
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    first.write_text("uid,terms\n" + "".join(f"{u},{later}\n" for u in uids[:13]))
    second.write_text("uid,terms\n" + "".join(f"{u},{later}\n" for u in uids[7:]))
    procs = parallel([
        lambda: ceo(cluster, "ofstaff", "members", "renew", "--csv", str(first), "--receipt", str(tmp_path / "r1.csv")),
        lambda: ceo(cluster, "ctdalek", "members", "renew", "--csv", str(second), "--receipt", str(tmp_path / "r2.csv")),
    ])
    failed = [(p.returncode, p.stderr[-300:]) for p in procs if p.returncode != 0]
    counts = {u: ldap.user(u)["term"].count(later) for u in uids}
    summary.setdefault("concurrency", {}).update(
        {"overlapping CSV renewals": 2, "rows": 13 + 13, "CSV runs failed": len(failed),
         "rows with the term missing or twice": sum(c != 1 for c in counts.values())})
    assert not failed, failed
    assert all(c == 1 for c in counts.values()), counts


def _renew_racing(ldap, monkeypatch, uid, racer_adds, **asked):
    """renew_terms in this process against the real LDAP, with another renewal (root) adding
    `racer_adds` right after its first read: (result, the reads it made, its events)."""
    from types import SimpleNamespace

    from plugins.members import accounts as acct
    from plugins.members import steps

    from ceo.config import Config
    from ceo.context import Context
    from ceo.services import directory

    config = Config.load("/etc/csc/ceo.ini")
    conn = directory.connect(config, "phosphoric-acid.csclub.internal")
    read, reads = acct.user, []

    def read_then_race(ctx, who, *a, **kw):
        entry = read(ctx, who, *a, **kw)
        if not reads:
            ldap.modify(ldap.dn(who), {"term": [("MODIFY_ADD", [racer_adds])]})
        reads.append(entry)
        return entry

    monkeypatch.setattr(acct, "user", read_then_race)
    events = []
    ctx = Context(SimpleNamespace(config=config, ldap=lambda pipelined=False: conn), "1", False, events.append)
    try:
        return steps.renew_terms(ctx, uid, asked.get("terms"), asked.get("term"), False), reads, events
    finally:
        conn.unbind()


def test_a_renewal_whose_entry_changes_before_its_write_reads_again(cluster, ldap, accounts, monkeypatch):
    """The race the parallel test can only hit by chance, made certain: another renewal adds
    one of the asked terms between this renewal's read and its write. The write is refused by
    LDAP (the value is there); the renewal reads again and adds only what is still missing."""
    uid = accounts[0][5]
    first, second = T.add(NOW, 5), T.add(NOW, 6)
    result, reads, events = _renew_racing(ldap, monkeypatch, uid, first, term=[first, second])
    terms = ldap.user(uid)["term"]
    assert len(reads) == 2 and result["added"] == [second], (result, events)
    assert terms.count(first) == terms.count(second) == 1
    assert [e["status"] for e in events] == ["done"], events


def test_two_renewals_counting_the_next_term_for_one_payment_add_it_once(cluster, ldap, accounts, monkeypatch):
    """`renew UID` (the next term, counted) twice at once for the same payment: the one that
    loses the race finds the term it counted there, and adds nothing more (not the term after)."""
    uid = accounts[0][6]
    before = ldap.user(uid)["term"]
    counted = T.next_unregistered(set(before))
    result, reads, events = _renew_racing(ldap, monkeypatch, uid, counted, terms=1)
    assert len(reads) == 2 and result["added"] == [] and not result["changed"], (result, events)
    assert sorted(ldap.user(uid)["term"]) == sorted(before + [counted])
    assert [e["status"] for e in events] == ["unchanged"], events
