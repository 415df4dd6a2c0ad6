"""Audit completeness, measured: every change the suite makes appears in the audit file with its
caller, and nothing unchanged does.

Every verb a user can type that changes something (derived from the bundled plugins'
declarations, so a new one cannot be forgotten: it fails here until it has a case) is run for
real, as a role allowed to run it, with every service read before and after: the LDAP tree, the
Kerberos database (a dump: keys too), every file under the homes, the SQL catalogues, Mailman's
rosters and the SMTP sink. Then:

- every service that changed has a `done` record from a step that runs on that service's host;
- every `done` record is by the user whose ticket ran it, and its step's host changed something;
- a refused run, a `--check` run and a run that changes nothing write no `done` record;
- a batch verb (renew --csv, expire, remind, updateprograms) writes one record per row it
  changed: the members its records name are the members whose entries changed.
"""

from __future__ import annotations

import configparser
import contextlib
import csv
import hashlib
import json
import mailbox
import os
import subprocess
import uuid

import pytest
from rootldap import RootLDAP
from test_hostile_input import snapshot

from ceo import terms as T
from ceo.discovery import discover

NOW = T.current()
NEXT, NEXT2 = T.add(NOW, 1), T.add(NOW, 2)
CONFIG = "/etc/csc/ceo.ini"
# Composite verbs users type that only read (they have no --check because they change nothing).
READ_ONLY = {"doctor.check", "members.get", "members.lookup"}
# Which services each inventory role's steps may change (the snapshot's keys).
ROLE_CHANGES = {"ldap": {"ldap", "sink"}, "kerberos": {"kerberos", "kdb"}, "homes": {"homes", "files"},
                "databases": {"sql"}, "mail": {"mailman", "sink"}}


def user_verbs(registry) -> set[str]:
    """The verbs users type that change something: declared mutating, or composite with --check."""
    out = set()
    for plugin in registry.plugins.values():
        if plugin.source != "bundled":
            continue
        for v in plugin.verbs.values():
            if v.hidden:
                continue
            if v.mutating or (v.composite and v.check):
                out.add(v.qualname)
            else:
                assert v.qualname in READ_ONLY or not v.composite, f"{v.qualname}: does it change anything?"
    return out


def state(cluster) -> dict:
    """snapshot() from the hostile-input test, with what it leaves out: Kerberos keys, every
    file of every home (not only .forward), and the mail the SMTP sink got."""
    s = snapshot(cluster)
    s["files"] = s["sql"].pop("files")
    dump = cluster.state / "audit-test.kdb"
    subprocess.run(["kdb5_util", "dump", str(dump)], check=True, capture_output=True, timeout=60)
    s["kdb"] = sorted(dump.read_text().splitlines())
    dump.unlink()
    for extra in dump.parent.glob("audit-test.kdb*"):
        extra.unlink()
    tree = {}
    for top, dirs, files in os.walk("/users"):
        for name in dirs + files:
            path = os.path.join(top, name)
            st = os.lstat(path)
            digest = None
            if os.path.isfile(path) and not os.path.islink(path):
                digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
            tree[path] = (st.st_mode, st.st_uid, st.st_gid, digest)
    s["homes"] = {"forward": s["homes"], "tree": tree}
    s["sink"] = len(mailbox.Maildir(cluster.state / "mail" / "sink", create=False))
    return s


def changed(before, after) -> set[str]:
    return {k for k in before if before[k] != after[k]}


def changed_uids(before, after) -> set[str]:
    """Members named by an LDAP entry that changed (uid=X,...: their own, or a reminder's)."""
    old, new = dict(before["ldap"]), dict(after["ldap"])
    dns = {dn for dn in set(old) | set(new) if old.get(dn) != new.get(dn)}
    return {dn.split(",")[0][4:] for dn in dns if dn.startswith("uid=")}


class Audit:
    def __init__(self):
        parser = configparser.ConfigParser(interpolation=None)
        parser.read(CONFIG)
        self.path = parser.get("audit", "file")
        self.at = os.path.getsize(self.path) if os.path.exists(self.path) else 0

    def new(self) -> list[dict]:
        if not os.path.exists(self.path):  # a new sandbox: no helper has written a record yet
            return []
        with open(self.path, "rb") as f:
            f.seek(self.at)
            data = f.read()
        self.at += len(data)
        return [json.loads(line) for line in data.splitlines()]


@pytest.fixture(scope="module")
def registry():
    return discover(None).everything()


@pytest.fixture(scope="module")
def names(cluster):
    tag = uuid.uuid4().hex[:5]
    yield {"uid": f"au{tag}", "other": f"av{tag}", "club": f"ac{tag}"}


def test_every_change_is_audited_with_its_caller_and_nothing_else(cluster, registry, names, tmp_path, summary):
    from test_maintenance import bulk, drop
    uid, other, club = names["uid"], names["other"], names["club"]
    lapsed = bulk(cluster, 1, 44010)[0]  # of last term only: a second row that changes
    try:
        audited(cluster, registry, uid, other, club, lapsed, tmp_path, summary)
    finally:
        drop(cluster, [lapsed])


def audited(cluster, registry, uid, other, club, lapsed, tmp_path, summary):
    receipts = tmp_path / "receipt.csv"
    renewals = tmp_path / "renewals.csv"
    with open(renewals, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["uid", "terms"])
        w.writerows([(uid, NEXT2), ("regular2", NOW), (lapsed, NOW)])  # regular2 has NOW: unchanged
    # (verb, user, argv, kind): kind "run" (must succeed, changed or not), "same" (must change
    # nothing), "refused", "check"
    cases = [
        ("members.add", "regular1", ["members", "add", other, "--cn", "Audit Other"], "refused"),
        ("members.add", "ofstaff", ["members", "add", uid, "--cn", "Audit Case", "--check"], "check"),
        ("members.add", "ofstaff", ["members", "add", uid, "--cn", "Audit Case"], "run"),
        ("members.renew", "ofstaff", ["members", "renew", uid, "--term", NEXT], "run"),
        ("members.renew", "ofstaff", ["members", "renew", uid, "--term", NEXT], "same"),
        ("members.renew", "regular1", ["members", "renew", uid, "--term", NEXT2], "refused"),
        ("members.unrenew", "ofstaff", ["members", "unrenew", uid, "--term", NEXT], "run"),
        ("members.renew", "ofstaff", ["members", "renew", "--csv", str(renewals), "--receipt", str(receipts)], "run"),
        ("members.modify", "ofstaff", ["members", "modify", uid, "--login-shell", "/bin/sh"], "run"),
        ("members.modify", "ofstaff", ["members", "modify", uid, "--forwarding-address", f"{uid}@example.org"], "run"),
        ("members.modify", "regular1", ["members", "modify", uid, "--login-shell", "/bin/bash"], "refused"),
        ("members.pwreset", "ctdalek", ["members", "pwreset", uid], "run"),
        ("members.pwreset", "ofstaff", ["members", "pwreset", uid], "refused"),
        ("members.convert", "ofstaff", ["members", "convert", uid, "--to", "clubrep"], "run"),
        ("members.convert", "ofstaff", ["members", "convert", uid, "--to", "member", "--no-welcome"], "run"),
        ("lists.subscribe", "ofstaff", ["lists", "subscribe", "ceo", uid], "run"),
        ("lists.subscribe", "ofstaff", ["lists", "subscribe", "ceo", uid, "--check"], "check"),
        ("lists.unsubscribe", "ofstaff", ["lists", "unsubscribe", "ceo", uid], "run"),
        ("lists.unsubscribe", "regular1", ["lists", "unsubscribe", "csc-general", "regular2"], "refused"),
        ("groups.add", "ctdalek", ["groups", "add", club, "--description", "Audit Club"], "run"),
        ("groups.add", "ofstaff", ["groups", "add", f"{club}x", "--description", "Audit Club"], "refused"),
        ("groups.addmember", "ctdalek", ["groups", "addmember", club, uid], "run"),
        ("groups.addmember", "ctdalek", ["groups", "addmember", club, uid], "same"),
        ("groups.removemember", "ctdalek", ["groups", "removemember", club, uid], "run"),
        ("positions.set", "ctdalek", ["positions", "set", "--president", uid, "--vice-president", uid,
                                      "--cro", uid], "run"),
        ("positions.set", "ctdalek", ["positions", "set", "--president", uid, "--vice-president", uid], "same"),
        ("positions.set", "ctdalek", ["positions", "set", "--cro", ""], "run"),
        # president and vice-president may not be left empty: back to vacant (as seeded) by hand
        (None, None, lambda: vacate(cluster, uid), None),
        ("groups.removemember", "ctdalek", ["groups", "removemember", "exec", uid], "run"),
        ("mysql.create", "ctdalek", ["mysql", "create", uid], "run"),
        ("mysql.pwreset", "ctdalek", ["mysql", "pwreset", uid], "run"),
        ("mysql.delete", "regular1", ["mysql", "delete", uid, "--yes"], "refused"),
        ("mysql.delete", "ctdalek", ["mysql", "delete", uid, "--yes"], "run"),
        ("postgresql.create", "ctdalek", ["postgresql", "create", uid], "run"),
        ("postgresql.pwreset", "ctdalek", ["postgresql", "pwreset", uid], "run"),
        ("postgresql.delete", "ctdalek", ["postgresql", "delete", uid, "--yes"], "run"),
        ("members.updateprograms", "ctdalek", ["members", "updateprograms"], "run"),
        ("members.updateprograms", "ctdalek", ["members", "updateprograms"], "same"),
        ("groups.delete", "ctdalek", ["groups", "delete", club, "--yes"], "run"),
        ("members.delete", "ctdalek", ["members", "delete", uid, "--check"], "check"),
        ("members.delete", "ctdalek", ["members", "delete", uid, "--yes"], "run"),
    ]
    figures = {"verbs": 0, "runs": 0, "changes": 0, "records": 0, "rows": 0, "records missing": 0, "spurious": 0}
    problems: list[str] = []
    seen_steps: set[str] = set()
    audit = Audit()
    before = state(cluster)
    for verb, user, argv, kind in cases:
        if verb is None:
            argv()
            before = state(cluster)
            continue
        before = run_case(cluster, registry, audit, before, verb, user, argv, kind, problems, figures, seen_steps)
    before = run_purging_delete(cluster, registry, audit, before, other, problems, figures, seen_steps)
    before = run_maintenance(cluster, registry, audit, before, problems, figures, seen_steps)
    covered = {c[0] for c in cases} | {"members.expire", "members.remind"}
    typed = user_verbs(registry)
    figures["verbs"] = len(typed & covered)
    summary.setdefault("audit", {}).update(figures)
    assert not typed - covered, f"mutating verbs with no audit case: {sorted(typed - covered)}"
    steps = {v.qualname for p in registry.plugins.values() if p.source == "bundled"
             for v in p.verbs.values() if v.mutating and v.hidden}
    assert not problems, "\n".join(problems)
    # Every step a typed verb runs was seen writing its record (the rest: left by these cases)
    assert steps - seen_steps == UNREACHED, (sorted(steps - seen_steps), sorted(seen_steps))


# Steps no case above reaches: none (a new step fails here until a case runs it).
UNREACHED: set[str] = set()


def vacate(cluster, uid):
    RootLDAP(cluster).modify(f"uid={uid},ou=People,{cluster.base_dn}", {"position": [("MODIFY_DELETE", [])]})


def run_case(cluster, registry, audit, before, verb, user, argv, kind, problems, figures, seen_steps):
    proc = cluster.run(["ceo", *argv, "--json"], user, stdin=subprocess.DEVNULL, timeout=180)
    after = state(cluster)
    records = audit.new()
    what = f"{' '.join(argv)} as {user}"
    want = {"run": (0,), "same": (0,), "refused": (3,), "check": (0,)}[kind]
    if proc.returncode not in want:
        problems.append(f"{what}: exit {proc.returncode}: {proc.stderr.strip()[:300]}")
        return after
    figures["runs"] += 1
    done = [r for r in records if r["outcome"] == "done"]
    figures["records"] += len(done)
    diff = changed(before, after)
    if kind != "run" and diff:
        problems.append(f"{what}: a {kind} run changed {sorted(diff)}")
    check(registry, what, user, verb, diff, before, after, records, done, problems, figures, seen_steps)
    return after


def check(registry, what, user, verb, diff, before, after, records, done, problems, figures, seen_steps):
    figures["changes"] += bool(diff)
    for r in records:
        if r["caller"] != user:
            problems.append(f"{what}: a record of {r['plugin']}.{r['verb']} names caller {r['caller']}")
    roles = {}
    for r in done:
        step = registry.verb(r["plugin"], r["verb"])
        direct = not registry.verb(*verb.split(".")).composite
        if step is None or (direct and step.qualname != verb):
            problems.append(f"{what}: a record of {r['plugin']}.{r['verb']}, not {verb} or a step")
            continue
        seen_steps.add(step.qualname)
        roles.setdefault(step.role, []).append(r)
    for service in diff:
        if not any(service in ROLE_CHANGES[role] for role in roles):
            figures["records missing"] += 1
            problems.append(f"{what}: {service} changed, but no done record from a step that changes it "
                            f"(records: {[(r['plugin'], r['verb'], r['outcome']) for r in records]})")
    for role, rs in roles.items():
        if not ROLE_CHANGES[role] & diff:
            figures["spurious"] += len(rs)
            problems.append(f"{what}: {[(r['plugin'], r['verb']) for r in rs]} recorded done, but nothing "
                            f"its host holds changed")
    batch = [r for r in done if registry.verb(r["plugin"], r["verb"]).audit_rows]
    if batch:
        figures["rows"] += len(batch)
        named, touched = {r["args"].get("uid") for r in batch}, changed_uids(before, after)
        figures["records missing"] += len(touched - named)
        figures["spurious"] += len(named - touched)
        if named != touched:
            problems.append(f"{what}: rows recorded for {sorted(named)}, entries changed for {sorted(touched)}")


@contextlib.contextmanager
def ceo_ini(edit):
    """Every process's ceo.ini edited (edit: text -> text) while the block runs."""
    original = open(CONFIG).read()

    def write(text):
        with open(CONFIG + ".audit-test", "w") as f:
            f.write(text)
        os.chmod(CONFIG + ".audit-test", 0o644)
        os.replace(CONFIG + ".audit-test", CONFIG)
    write(edit(original))
    try:
        yield
    finally:
        write(original)


def run_purging_delete(cluster, registry, audit, before, uid, problems, figures, seen_steps):
    """With `[homes] on_delete = remove`, members delete removes the home it moved aside
    (members.purge_home): a member made for it, deleted so."""
    before = run_case(cluster, registry, audit, before, "members.add", "ofstaff",
                      ["members", "add", uid, "--cn", "Audit Other", "--no-welcome", "--no-subscribe"], "run",
                      problems, figures, seen_steps)
    with ceo_ini(lambda text: text.replace("\n[homes]\n", "\n[homes]\non_delete = remove\n")):
        return run_case(cluster, registry, audit, before, "members.delete", "ctdalek",
                        ["members", "delete", uid, "--yes"], "run", problems, figures, seen_steps)


def run_maintenance(cluster, registry, audit, before, problems, figures, seen_steps):
    """expire and remind change something only past the grace period: ceo's clock moved there
    (`[testing] today`), two members of last term only to remind and to lock."""
    from test_maintenance import AFTER, bulk, drop
    uids = bulk(cluster, 2, 44000)
    before = state(cluster)
    try:
        with ceo_ini(lambda text: text + f"\n[testing]\ntoday = {AFTER.isoformat()}\n"):
            for verb, kind in (("remind", "run"), ("remind", "same"), ("expire", "check"), ("expire", "run"),
                               ("expire", "same")):
                argv = ["members", verb] + (["--check"] if kind == "check" else [])
                before = run_case(cluster, registry, audit, before, f"members.{verb}", "ctdalek", argv, kind,
                                  problems, figures, seen_steps)
    finally:
        drop(cluster, uids)
    return state(cluster)
