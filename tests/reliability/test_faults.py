"""The fault matrix: every multi-step verb, with each service it touches stopped or killed
before, during and after each of its steps (faults.py says how). After each run one of:

- done: exit 0 and every service holds what a run without the fault leaves;
- done, best effort reported: exit 0, only best-effort parts missing, each named in a warning;
- nothing left: a one-line error and every service as before (read as root, in each service);
- left and said: a one-line error naming what could not be undone, and running the command
  again once the service is back finishes the job.

Anything else fails the test. Each cell starts from the state the previous one left restored
(faults.restore), with a fresh name. `CEO_FAULTS=all` runs every cell; the suite runs a fixed
sample (each verb x service x kind of fault once) and the cells that found a bug
(`CEO_FAULTS=regressions`: only those).
"""

from __future__ import annotations

import datetime
import os
import re
import shlex
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
from faults import Fault, Injection, changes, restore, run_ceo, snapshot

from ceo import terms as T

FULL = os.environ.get("CEO_FAULTS", "") == "all"
ONLY_REGRESSIONS = os.environ.get("CEO_FAULTS", "") == "regressions"  # to try a fix quickly
NOW = T.current()
NEXT, PREV = T.add(NOW, 1), T.add(NOW, -1)
CONFIG = Path("/etc/csc/ceo.ini")

# The services each step uses, besides its host's helper and sshd, and slapd, which every
# helper reads for who the caller is.
TOUCHES = {
    "members.university": ["uwldap"], "members.name_free": [], "lists.roles": ["mailman"],
    "members.create": [], "members.principal": ["kadmind", "krb5kdc"], "members.home": [],
    "members.welcome": ["smtp-sink"], "lists.subscribe": ["mailman"], "members.announce": ["smtp-sink"],
    "members.info": [], "members.remove_home": [], "members.remove_ldap": [],
    "members.remove_principal": ["kadmind", "krb5kdc"], "lists.unsubscribe_all": ["mailman"],
    "members.purge_home": [],
    "groups.create": [], "groups.home": [], "groups.club_account": [],
    "groups.join": [], "groups.tied_lists": ["mailman"], "groups.subscribe_tied": ["mailman"],
    "groups.grant_lists": [],
    "positions.assign": [], "positions.subscribe": ["mailman"], "positions.unsubscribe": ["mailman"],
    "mysql.make": ["mariadb"], "mysql.write_info": [], "mysql.state": ["mariadb"], "mysql.remove_info": [],
    "mysql.drop": ["mariadb"],
    "postgresql.make": ["postgresql"], "postgresql.write_info": [], "postgresql.state": ["postgresql"],
    "postgresql.remove_info": [], "postgresql.drop": ["postgresql"],
    "members.renew_lookup": [], "members.renew_rows": [],
    "members.expire": [], "members.remind": ["smtp-sink"],
}


@dataclass
class Scenario:
    name: str
    user: str
    argv: Callable[[str], list[str]]
    setup: Callable[[str], None] | None = None  # what the command needs (the member to delete)
    fixed_token: str | None = None  # the same name in every cell (cleaned up by restore)
    batch: bool = False  # many rows: may end partly done, naming each row that failed


def _ok(user, *argv):
    code, out, err, _ = as_user(user, list(argv))
    assert code == 0, (argv, out, err)


def as_user(user, argv, injection=None):
    os.environ["KRB5CCNAME"] = f"FILE:{CLUSTER.state / 'ccache' / user}"
    return run_ceo(argv, injection)


def member(token):
    _ok("ofstaff", "members", "add", token, "--cn", "Fault Matrix", "--no-welcome", "--no-subscribe")


def club(token):
    _ok("ctdalek", "groups", "add", token, "--description", "Fault Matrix Club")


def csv_file(token):
    path = Path(f"/tmp/ceo-faults-{os.getpid()}.csv")
    path.write_text("uid,terms\n" + "".join(f"fmr{i},{NEXT}\n" for i in range(1, 9)))
    return str(path)


SCENARIOS = [
    Scenario("members add", "ofstaff", lambda t: ["members", "add", t, "--cn", "Fault Matrix"]),
    Scenario("members delete", "ctdalek", lambda t: ["members", "delete", t, "--yes"], setup=member),
    Scenario("groups add", "ctdalek", lambda t: ["groups", "add", t, "--description", "Fault Matrix Club"]),
    Scenario("groups delete", "ctdalek", lambda t: ["groups", "delete", t, "--yes"], setup=club),
    Scenario("groups addmember", "ctdalek", lambda t: ["groups", "addmember", "syscom", t], setup=member),
    Scenario("positions set", "ctdalek", lambda t: ["positions", "set", "--secretary", t], setup=member),
    Scenario("mysql create", "ctdalek", lambda t: ["mysql", "create", t], fixed_token="fmdb"),
    Scenario("mysql delete", "ctdalek", lambda t: ["mysql", "delete", t, "--yes"], fixed_token="fmdb",
             setup=lambda t: _ok("ctdalek", "mysql", "create", t)),
    Scenario("postgresql create", "ctdalek", lambda t: ["postgresql", "create", t], fixed_token="fmdb"),
    Scenario("postgresql delete", "ctdalek", lambda t: ["postgresql", "delete", t, "--yes"], fixed_token="fmdb",
             setup=lambda t: _ok("ctdalek", "postgresql", "create", t)),
    Scenario("members renew --csv", "ofstaff", lambda t: ["members", "renew", "--csv", csv_file(t), "--yes"],
             fixed_token="fmr", batch=True),
    Scenario("members expire", "ctdalek", lambda t: ["members", "expire"], fixed_token="fmx", batch=True),
    Scenario("members remind", "ctdalek", lambda t: ["members", "remind"], fixed_token="fmx", batch=True),
]


# Cells that found a bug, run by the suite whatever the sample: (target, request, when).
REGRESSIONS = {
    "members add": [("slapd", "members.create", "during"), ("mailman", "lists.subscribe", "during")],
    "members delete": [("slapd", "members.remove_ldap", "during")],
    "groups add": [("slapd", "groups.create", "during"), ("slapd", "groups.home", "before")],
    # A subscription made, then its record lost: now the record goes first.
    "groups addmember": [("slapd", "groups.grant_lists", "during"), ("slapd", "groups.subscribe_tied", "before"),
                         ("mailman", "groups.subscribe_tied", "during")],
    "positions set": [("slapd", "groups.join", "before"), ("slapd", "groups.subscribe_tied", "during"),
                      ("slapd", "groups.grant_lists", "during"), ("slapd", "groups.subscribe_tied", "before")],
    "mysql create": [("slapd", "mysql.write_info", "during")],
    "mysql delete": [("mariadb", "mysql.drop", "during")],
    "postgresql delete": [("postgresql", "postgresql.drop", "during")],
    "members renew --csv": [("slapd", "members.renew_rows", "before")],
}

# Found and not fixed yet: run, counted and shown, not failed (each says why it fails).
KNOWN: dict[tuple[str, str, str, str], str] = {}


def regressions(scenario, sent) -> list:
    out = []
    for target, qualname, when in REGRESSIONS.get(scenario.name, []):
        at = next(i for i, (q, _) in enumerate(sent) if q == qualname)
        out.append((target, at, when))
    return out


# --- cells -------------------------------------------------------------------------------------------

def targets(sent) -> dict[str, list[int]]:
    """Each service, helper and sshd the command's requests touch: the requests that touch it."""
    out: dict[str, list[int]] = {}
    for i, (qualname, fqdn) in enumerate(sent):
        host = fqdn.split(".")[0]
        for target in ["slapd", *TOUCHES[qualname], f"helper@{host}", f"sshd@{host}"]:
            out.setdefault(target, []).append(i)
    return out


def cells(sent) -> list[tuple[str, int | None, str]]:
    """(target, request index, before|during|after): before and during each request that
    touches the target, and after the last one; an sshd before the command (its listener; an
    open session does not need it) and during its first request (the connection's own sshd)."""
    out = []
    for target, touched in targets(sent).items():
        if target.startswith("sshd@"):
            out += [(target, None, "before"), (target, touched[0], "during")]
            continue
        out += [(target, i, when) for i in touched for when in ("before", "during")]
        out.append((target, touched[-1], "after"))
    return out


def sample(all_cells, seed: int) -> list:
    """The suite's share: one cell per service a verb touches, the kind of fault (and the
    step) turning from one service to the next, so that across the verbs every verb x
    service and every kind of fault is run. `CEO_FAULTS=all` runs them all."""
    chosen = []
    for n, target in enumerate(dict.fromkeys(t for t, _, _ in all_cells)):
        mine = [c for c in all_cells if c[0] == target]
        kinds = [k for k in ("during", "before", "after") if any(c[2] == k for c in mine)]
        of = [c for c in mine if c[2] == kinds[(n + seed) % len(kinds)]]
        chosen.append(of[(n + seed) % len(of)])
    return chosen


# --- judging a cell ----------------------------------------------------------------------------------

def judge(code, out, err, diff, reference, batch=False) -> tuple[str, str | None]:
    """(outcome, None) or (outcome, what is wrong with it)."""
    text = out + err
    if "Traceback" in text:
        return "traceback", text[-600:]
    if code == 0:
        if diff == reference:
            return "done", None
        missing, extra = reference - diff, diff - reference
        if extra:
            return "done, with more", f"exit 0, but also {sorted(extra)}"
        if all(_named(c, text) for c in missing):
            return "done, best effort reported", None
        return "done, part missing", f"exit 0, but missing {sorted(missing)} unreported"
    if batch and code in (1, 4) and not err.strip() and re.search(r"^FAILED |: failed \(|\b[1-9]\d* failed\b", out, re.M):
        return "partly done, said", None  # each failed row named; a re-run must finish
    lines = err.strip().splitlines()
    if len(lines) != 1:
        return "not one line", f"exit {code}, stderr {lines}"
    if not diff:
        return "nothing left", None
    if "could not undo" in text:
        return "left and said", None
    return "left, unsaid", f"exit {code} ({err.strip()}) and left {sorted(diff)}"


def _named(change: str, text: str) -> bool:
    """Whether a warning (a line marked !) names the list of a missing subscription."""
    service, rest = change.split(" ", 1)
    warnings = " ".join(re.findall(r"(?ms)^! .*?(?=^[✓✗!╭]|\Z)", text))  # a warning, with its wrapped lines
    return service == "mailman" and rest.split(" ")[0].split("@")[0] in warnings


@pytest.fixture(scope="module")
def world(cluster, mailman):
    """Module setup: the members the database, renewal and maintenance scenarios use; a clock
    past the grace period (expire acts); all removed again at the end."""
    global CLUSTER
    CLUSTER = cluster
    original_env = os.environ.get("KRB5CCNAME")
    start = snapshot(cluster)
    config = CONFIG.read_text()
    try:
        for uid in ["fmdb", *(f"fmr{i}" for i in range(1, 9))]:
            member(uid)
        for i in range(1, 4):
            _ok("ofstaff", "members", "add", f"fmx{i}", "--cn", "Lapsed Matrix", "--term", PREV,
                "--no-welcome", "--no-subscribe")
        _ok("ctdalek", "positions", "set", "--president", "fmr7", "--vice-president", "fmr8")  # none in the seed
        day = T.start(NOW) + datetime.timedelta(days=40)
        CONFIG.write_text(config + f"\n[testing]\ntoday = {day.isoformat()}\n")
        yield
    finally:
        CONFIG.write_text(config)
        restore(cluster, start, snapshot(cluster))  # archived homes too
        if original_env is None:
            os.environ.pop("KRB5CCNAME", None)
        else:
            os.environ["KRB5CCNAME"] = original_env


CLUSTER = None
OUTCOMES: Counter = Counter()
TOKENS = iter(range(1, 100000))


def fresh(scenario) -> str:
    return scenario.fixed_token or f"fx{os.getpid() % 1000}n{next(TOKENS)}"


def run_cell(cluster, scenario, injection, start) -> tuple[int, str, str, list, set, dict]:
    """The scenario's command with the injection, from the state `start` (read before)."""
    token = fresh(scenario)
    if scenario.setup:
        scenario.setup(token)
    ready = snapshot(cluster) if scenario.setup else start
    code, out, err, sent = as_user(scenario.user, scenario.argv(token), injection)
    after = snapshot(cluster)
    return code, out, err, sent, changes(ready, after, token), {"start": start, "ready": ready, "after": after,
                                                                 "token": token}


def back_to(cluster, start, now) -> dict:
    """Restore what differs from `start` and check that it did: the state the next cell starts from."""
    restore(cluster, start, now)
    state = snapshot(cluster)
    left = changes(start, state, None)
    assert not left, f"restoring the sandbox left {sorted(left)}"
    return state


def finish(cluster, scenario, err, states, reference) -> str | None:
    """With every service back: the command the error names for what is left (as syscom)
    leaves nothing but a tombstone; else running the same command again finishes the job."""
    named = re.search(r"to remove what is left: ceo (.*)$", err.strip())
    if named and shlex.split(named.group(1)) == scenario.argv(states["token"]):
        named = None  # the command itself (a delete cut short): run again, it must finish the job
    if named:
        code, _, e, _ = as_user("ctdalek", shlex.split(named.group(1)))
        # A grant record emptied by the restore of an earlier cell (restore works on values) is
        # no record: removemember deleting it, as it deletes the records it empties, leaves nothing.
        empty = {dn for dn, attrs in states["ready"]["ldap"]
                 if ",ou=Grants," in dn and not dict(attrs).get("uniqueMember")}
        final = {c for c in changes(states["ready"], snapshot(cluster), states["token"])
                 if ",ou=Tombstones," not in c and c.removeprefix("ldap -") not in empty}
        want = set()
    else:
        code, _, e, _ = as_user(scenario.user, scenario.argv(states["token"]))
        final, want = changes(states["ready"], snapshot(cluster), states["token"]), reference
    if code != 0 or final != want:
        return f"{'`' + named.group(0) + '`' if named else 'the re-run'} ended {code} ({e.strip()}), " \
               f"leaving {sorted(final ^ want)}"
    return None


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_fault_matrix(cluster, world, summary, scenario):
    state = snapshot(cluster)
    code, out, err, sent, reference, states = run_cell(cluster, scenario, None, state)
    assert code == 0 and reference, (out, err)
    state = back_to(cluster, state, states["after"])
    chosen = cells(sent) if FULL else [] if ONLY_REGRESSIONS else sample(cells(sent), SCENARIOS.index(scenario))
    chosen += [c for c in regressions(scenario, sent) if c not in chosen]
    bad = []
    for target, at, when in chosen:
        injection = Injection(Fault(target, during=when == "during"), at, when)
        code, out, err, _, diff, states = run_cell(cluster, scenario, injection, state)
        outcome, problem = judge(code, out, err, diff, reference, scenario.batch)
        now = states["after"]
        if outcome in ("left and said", "partly done, said"):
            problem = finish(cluster, scenario, err, states, reference)
            now = snapshot(cluster)
        step = sent[at][0] if at is not None else "the command"
        where = f"{when} {step}"
        if problem and (scenario.name, target, step, when) in KNOWN:
            outcome, problem = "known, not fixed", None
        OUTCOMES[outcome if problem is None else "FAILED"] += 1
        if problem:
            bad.append(f"{scenario.name}: {target} {where}: {outcome}: {problem}")
        state = back_to(cluster, state, now)
    figures = summary.setdefault("fault matrix", {})
    figures["cells"] = figures.get("cells", 0) + len(chosen)
    figures.update({k: v for k, v in sorted(OUTCOMES.items())})
    assert not bad, "\n".join(bad)

