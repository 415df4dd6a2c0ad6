"""`ceo members renew --csv`: whole-file validation, idempotent re-runs, clean stops."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import uuid

import ldap3
import pytest
from test_members_add import as_from_a_terminal

from ceo import terms
from plugins.members import csvrenew
from sandbox import control

BASE = "dc=csclub,dc=internal"
NOW = terms.current()
PREV = terms.add(NOW, -1)
NEXT, NEXT2 = terms.add(NOW, 1), terms.add(NOW, 2)


def root_ldap(cluster):
    return ldap3.Connection(ldap3.Server("ldapi://" + str(cluster.state / "ldap" / "ldapi").replace("/", "%2F")),
                            authentication=ldap3.SASL, sasl_mechanism=ldap3.EXTERNAL, sasl_credentials="",
                            auto_bind=True)


def make_members(cluster, n, start_number):
    """n members straight into LDAP (fast): every third already has the current term, every
    fifth is locked. Returns their uids."""
    prefix = f"c{uuid.uuid4().hex[:5]}"
    conn = root_ldap(cluster)
    uids = []
    try:
        for i in range(n):
            uid = f"{prefix}{i:04d}"
            attrs = {"cn": f"Member {i}", "uid": uid, "uidNumber": start_number + i, "gidNumber": start_number + i,
                     "homeDirectory": f"/users/{uid}", "term": [PREV] + ([NOW] if i % 3 == 0 else [])}
            if i % 5 == 0:  # locked as `members expire` locks a lapsed membership
                attrs["shadowExpire"], attrs["lockReason"] = 1, "lapsed"
            assert conn.add(f"uid={uid},ou=People,{BASE}", ["account", "posixAccount", "shadowAccount", "member"],
                            attrs), conn.result
            uids.append(uid)
    except BaseException:
        conn.unbind()
        drop_members(cluster, uids)  # the ones made before the failure
        raise
    conn.unbind()
    return uids


def drop_members(cluster, uids):
    conn = root_ldap(cluster)
    try:
        for uid in uids:
            assert conn.delete(f"uid={uid},ou=People,{BASE}"), (uid, conn.result)
    finally:
        conn.unbind()


def state(cluster, uids) -> dict:
    conn = root_ldap(cluster)
    out = {}
    for entry in conn.extend.standard.paged_search(f"ou=People,{BASE}", "(uid=c*)", attributes=["uid", "term",
                                                   "shadowExpire"], paged_size=1000, generator=True):
        uid = entry["attributes"]["uid"][0]
        if uid in uids:
            out[uid] = (entry["attributes"]["term"], entry["attributes"].get("shadowExpire") or None)
    conn.unbind()
    return out


def write_csv(path, rows, bom=True, crlf=True):
    """rows: (uid, terms spec). Extra columns like a real spreadsheet's, quoted fields."""
    with open(path, "w", newline="", encoding="utf-8-sig" if bom else "utf-8") as f:
        w = csv.writer(f, lineterminator="\r\n" if crlf else "\n")
        w.writerow(["Name", "uid", "Email", "terms", "Amount"])
        for i, (uid, spec) in enumerate(rows):
            w.writerow([f"Surname, Given {i}", uid, f"{uid}@example.org", spec, "2.00"])
    return str(path)


def expected(spec: str, have: list[str]) -> list[str]:
    wanted = spec.split() if spec and not spec.isdigit() else terms.interval(NOW, int(spec or 1))
    return terms.sort(set(have) | set(wanted))


def renew(cluster, *args, **kw):
    return cluster.run(["ceo", "members", "renew", "--csv", *args], "ofstaff", **kw)


@pytest.fixture(scope="module")
def two_hundred(cluster):
    uids = make_members(cluster, 200, 40000)
    yield uids
    drop_members(cluster, uids)


def test_two_hundred_rows_then_again(cluster, two_hundred, tmp_path):
    specs = ["1", f"{NOW} {NEXT}", "2", "", f"{NEXT2}"]
    rows = [(uid, specs[i % len(specs)]) for i, uid in enumerate(two_hundred)]
    path = write_csv(tmp_path / "renewals.csv", rows)
    before = state(cluster, set(two_hundred))
    receipt = tmp_path / "receipt.csv"
    audit = cluster.state / "audit.jsonl"
    audit_before = len(audit.read_text().splitlines()) if audit.exists() else 0

    proc = renew(cluster, path, "--receipt", str(receipt), "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)["result"]
    after = state(cluster, set(two_hundred))
    changed = 0
    for uid, spec in rows:
        want = expected(spec, before[uid][0])
        assert terms.sort(after[uid][0]) == want and len(after[uid][0]) == len(set(after[uid][0])), uid
        assert after[uid][1] is None, f"{uid} still locked"
        changed += want != terms.sort(before[uid][0]) or before[uid][1] is not None
    assert doc["counts"] == {"done": changed, "unchanged": 200 - changed}
    assert 0 < changed < 200

    # The receipt: every row, its outcome and the terms the member now has.
    with open(receipt, newline="") as f:
        got = {r["uid"]: r for r in csv.DictReader(f)}
    assert len(got) == 200
    for uid, spec in rows:
        assert got[uid]["terms"].split() == terms.sort(after[uid][0])
        changes = expected(spec, before[uid][0]) != terms.sort(before[uid][0]) or before[uid][1] is not None
        assert got[uid]["outcome"] == ("done" if changes else "unchanged"), uid

    # One audit record per changed row, by ofstaff.
    new_records = [json.loads(line) for line in (cluster.state / "audit.jsonl").read_text().splitlines()[audit_before:]]
    mine = [r for r in new_records if r["args"].get("uid") in set(two_hundred)]
    assert len(mine) == changed and {r["caller"] for r in mine} == {"ofstaff"}

    # Again: nothing changes.
    again = renew(cluster, path, "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["result"]["counts"] == {"unchanged": 200}
    assert state(cluster, set(two_hundred)) == after


def test_three_bad_rows_apply_nothing(cluster, two_hundred, tmp_path):
    good = [(uid, "s2031") for uid in two_hundred[:10]]
    rows = good[:3] + [("nosuchmember", "1")] + good[3:6] + [(two_hundred[0], "1")] + good[6:] + [(two_hundred[20], "w20x1")]
    path = write_csv(tmp_path / "bad.csv", rows)
    before = state(cluster, set(two_hundred))
    proc = renew(cluster, path)
    assert proc.returncode == 2
    err = proc.stderr
    assert "line 5: unknown uid 'nosuchmember'" in err
    assert f"line 9: uid {two_hundred[0]} appears twice (also line 2)" in err
    assert "line 14: malformed term 'w20x1'" in err
    assert "3 invalid rows; nothing was applied" in err
    assert state(cluster, set(two_hundred)) == before


def test_skip_invalid_applies_the_valid_rows(cluster, two_hundred, tmp_path):
    rows = [(two_hundred[50], "s2032"), ("../etc", "1"), (two_hundred[51], "s2032")]
    path = write_csv(tmp_path / "some.csv", rows, bom=False, crlf=False)
    receipt = tmp_path / "r.csv"
    proc = renew(cluster, path, "--skip-invalid", "--receipt", str(receipt))
    assert proc.returncode == 4  # some were skipped
    assert "malformed uid '../etc'" in proc.stderr
    after = state(cluster, {two_hundred[50], two_hundred[51]})
    assert all("s2032" in t for t, _ in after.values())
    outcomes = [r["outcome"] for r in csv.DictReader(open(receipt, newline=""))]
    assert sorted(outcomes) == ["done", "done", "skipped"]


def test_check_mode_shows_each_row_and_writes_nothing(cluster, two_hundred, tmp_path):
    path = write_csv(tmp_path / "c.csv", [(two_hundred[60], "s2033"), (two_hundred[61], "1")])
    before = state(cluster, set(two_hundred))
    proc = renew(cluster, path, "--check")
    assert proc.returncode == 0, proc.stderr
    assert f"line 2 {two_hundred[60]}: would add terms s2033" in proc.stdout
    assert state(cluster, set(two_hundred)) == before


@pytest.mark.parametrize("content, message", [
    ("name,terms\nx,1\n", "no `uid` column"),
    ("", "no header row"),
    (b"uid\n\xff\xfe\n", "is not UTF-8"),
])
def test_unreadable_files(cluster, tmp_path, content, message):
    path = tmp_path / "f.csv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    proc = renew(cluster, str(path))
    assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_standard_input(cluster, two_hundred):
    proc = renew(cluster, "-", input=f"uid,terms\n{two_hundred[70]},s2034\n")
    assert proc.returncode == 0, proc.stderr
    assert "s2034" in state(cluster, {two_hundred[70]})[two_hundred[70]][0]


def logins(cluster) -> dict:
    """GSSAPI logins each host's sshd has accepted so far (one a session), from its own log."""
    out = {}
    for host in cluster.hosts:
        log = (cluster.state / "hosts" / host / "sshd.log").read_text()
        out[host] = sum(line.startswith("Accepted gssapi-with-mic for ") for line in log.splitlines())
    return out


@pytest.fixture
def multi_batch(cluster):
    uids = make_members(cluster, 2 * csvrenew.BATCH + 50, 43000)
    yield uids
    drop_members(cluster, uids)


def test_a_multi_batch_file_goes_through_one_session(cluster, multi_batch, tmp_path):
    path = write_csv(tmp_path / "m.csv", [(uid, "s2037") for uid in multi_batch])
    audit = cluster.state / "audit.jsonl"
    audit_before = len(audit.read_text().splitlines()) if audit.exists() else 0
    before = logins(cluster)
    proc = renew(cluster, path, "--json")
    assert proc.returncode == 0, proc.stderr
    after = logins(cluster)
    # Exactly one login, to the ldap host, for the lookup and every batch; none anywhere else.
    assert {h: after[h] - before[h] for h in after} == {"phosphoric-acid": 1, "coffee": 0, "mail": 0}
    assert all("s2037" in t for t, _ in state(cluster, set(multi_batch)).values())
    # ... and it really was several batches: the rows' audit records name three requests.
    records = [json.loads(line) for line in audit.read_text().splitlines()[audit_before:]]
    requests = {r["request"] for r in records if r["args"].get("uid") in set(multi_batch)}
    assert len(requests) == 3 and len([r for r in records if r["args"].get("uid") in set(multi_batch)]) == 450


@pytest.fixture
def thousand(cluster):
    uids = make_members(cluster, 1000, 41000)
    yield uids
    drop_members(cluster, uids)


def _run_until(cluster, path, lines, then):
    """Start the renewal, and after `lines` rows are reported call then(process)."""
    proc = subprocess.Popen(["ceo", "members", "renew", "--csv", path], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=cluster.env("ofstaff"),
                            preexec_fn=as_from_a_terminal)
    seen = 0
    for line in proc.stdout:
        if line.startswith("line "):
            seen += 1
            if seen == lines:
                then(proc)
                break
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def test_slapd_stopped_midway_then_rerun(cluster, thousand, tmp_path):
    path = write_csv(tmp_path / "k.csv", [(uid, "s2035 f2035") for uid in thousand])
    try:
        code, out, err = _run_until(cluster, path, 500, lambda p: control.service("stop", "slapd"))
    finally:
        control.service("start", "slapd")
    assert code == 4, err
    assert "failed" in out and "done" in out
    midway = state(cluster, set(thousand))
    done = [u for u in thousand if "s2035" in midway[u][0]]
    assert 0 < len(done) < 1000
    again = renew(cluster, path, "--json")
    assert again.returncode == 0, again.stderr
    counts = json.loads(again.stdout)["result"]["counts"]
    assert counts == {"done": 1000 - len(done), "unchanged": len(done)}
    final = state(cluster, set(thousand))
    for uid in thousand:
        got = final[uid][0]
        assert got.count("s2035") == 1 and got.count("f2035") == 1 and len(got) == len(set(got))


def test_ctrl_c_stops_cleanly_and_a_rerun_finishes(cluster, thousand, tmp_path):
    path = write_csv(tmp_path / "i.csv", [(uid, "w2036") for uid in thousand])
    code, out, err = _run_until(cluster, path, 300, lambda p: p.send_signal(signal.SIGINT))
    assert code == 4, err
    assert "not attempted" in out and "Stopped early" in out
    midway = state(cluster, set(thousand))
    done = sum("w2036" in midway[u][0] for u in thousand)
    assert 300 <= done < 1000
    again = renew(cluster, path, "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["result"]["counts"] == {"done": 1000 - done, "unchanged": done}
    final = state(cluster, set(thousand))
    assert all(final[u][0].count("w2036") == 1 for u in thousand)
