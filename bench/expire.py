"""`members expire` over 10,000 members (half lapsed) against the floor, side by side in one run.

    .venv/bin/python bench/expire.py [--rounds 3] [--members 10000]

(a) `ceo members expire --check` and `ceo members expire`, the whole ceo process, as cron runs
    it on the LDAP host (the `local` connection: the helper is the client's child)
(b) the floor: a plain ldap3 paged search over ldapi with the same filter, plus the same
    modifies (shadowExpire + lockReason) one after another over one connection
Each process runs under /usr/bin/time for its peak resident memory: the helper on its own (the
inventory wraps it in /usr/bin/time too), ceo with its helper, and the floor's.
Targets: (a) within 1.5x of (b) for each; every process within a few tens of MB.
The clock is set past the term's grace period ([testing] today) for the run and restored.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ceo import terms as T  # noqa: E402
from sandbox import control  # noqa: E402

BASE = "dc=csclub,dc=internal"
PEOPLE = f"ou=People,{BASE}"
CONFIG = Path("/etc/csc/ceo.ini")
NOW = T.of_date(datetime.date.today())
PREV = T.add(NOW, -1)
AFTER = T.start(NOW) + datetime.timedelta(days=40)


def pipelined(conn, ops):
    """Send `ops` (callables returning a message id) 500 at a time: slapd drops a connection
    with more than olcConnMaxPendingAuth (1,000) operations in flight."""
    out = []
    for i in range(0, len(ops), 500):
        ids = [op() for op in ops[i:i + 500]]
        out += [conn.get_response(m)[1]["result"] for m in ids]
    return out


def ldapi() -> str:
    return "ldapi://" + str(control.STATE / "ldap" / "ldapi").replace("/", "%2F")


def connect(pipelined=False):
    import ldap3
    return ldap3.Connection(ldap3.Server(ldapi()), authentication=ldap3.SASL, sasl_mechanism=ldap3.EXTERNAL,
                            sasl_credentials="", auto_bind=True,
                            client_strategy=ldap3.ASYNC if pipelined else ldap3.SYNC)


def floor(mode: str) -> int:
    """(b), run as its own process: the search, and with mode `lock` the modifies."""
    import ldap3
    conn = connect()
    flt = (f"(&(objectClass=member)(|(term=*)(nonMemberTerm=*))(!(term={NOW}))(!(nonMemberTerm={NOW}))"
           "(!(shadowExpire=*)))")
    uids = [e["attributes"]["uid"][0] for e in conn.extend.standard.paged_search(
        PEOPLE, flt, attributes=["uid", "term", "nonMemberTerm"], paged_size=1000, generator=True)]
    if mode == "lock":
        for uid in uids:
            assert conn.modify(f"uid={uid},{PEOPLE}", {"shadowExpire": [(ldap3.MODIFY_ADD, ["1"])],
                                                       "lockReason": [(ldap3.MODIFY_ADD, ["lapsed"])]})
    print(len(uids))
    return 0


def timed(argv, env) -> tuple[float, int, str]:
    """(seconds, peak RSS in KiB, stdout) of one process under /usr/bin/time."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        t0 = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss.name, *argv], env=env, capture_output=True,
                              text=True, stdin=subprocess.DEVNULL)
        elapsed = time.perf_counter() - t0
        assert proc.returncode == 0, proc.stderr[-800:]
        return elapsed, int(rss.read().split()[-1]), proc.stdout


def populate(n: int) -> list[str]:
    """n members straight into LDAP, pipelined: even ones registered now, odd ones only last term."""
    conn = connect(pipelined=True)
    uids = [f"exp{i:05d}" for i in range(n)]
    pipelined(conn, [lambda u=u: conn.delete(f"uid={u},{PEOPLE}") for u in uids])
    done = pipelined(conn, [lambda i=i, u=u: conn.add(
        f"uid={u},{PEOPLE}", ["account", "posixAccount", "shadowAccount", "member"],
        {"cn": f"Expire {i}", "uid": u, "uidNumber": 60000 + i, "gidNumber": 60000 + i,
         "homeDirectory": f"/users/{u}", "term": [PREV] + ([NOW] if i % 2 == 0 else [])}) for i, u in enumerate(uids)])
    assert set(done) == {0}, set(done)
    conn.unbind()
    return uids


def unlock(uids):
    import ldap3
    conn = connect(pipelined=True)
    pipelined(conn, [lambda u=u: conn.modify(f"uid={u},{PEOPLE}", {"shadowExpire": [(ldap3.MODIFY_DELETE, [])],
                                                                  "lockReason": [(ldap3.MODIFY_DELETE, [])]})
                     for u in uids])
    conn.unbind()


def drop(uids):
    conn = connect(pipelined=True)
    pipelined(conn, [lambda u=u: conn.delete(f"uid={u},{PEOPLE}") for u in uids])
    conn.unbind()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--members", type=int, default=10000)
    ap.add_argument("--floor", choices=("check", "lock"), help=argparse.SUPPRESS)
    opts = ap.parse_args()
    if opts.floor:
        return floor(opts.floor)
    pid, started = control.up()
    control.join(pid)
    original = CONFIG.read_text()
    work = Path(tempfile.mkdtemp(prefix="ceo-bench-expire-"))
    helper_rss = work / "helper.rss"
    inventory = work / "hosts.ini"
    inventory.write_text("[ldap]\nphosphoric-acid.csclub.internal ansible_connection=local "
                         f"ceo_helper='/usr/bin/time -f %M -o {helper_rss} {REPO / '.venv/bin/ceo-helper'}'\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUDO_")}
    env["PATH"] = f"{REPO / '.venv' / 'bin'}:{env['PATH']}"
    uids = populate(opts.members)
    lapsed = {u for i, u in enumerate(uids) if i % 2}
    try:
        CONFIG.write_text(original + f"\n[testing]\ntoday = {AFTER.isoformat()}\n")
        ceo = ["ceo", "-i", str(inventory), "members", "expire", "--json"]
        runs = {k: [] for k in ("a-check", "b-check", "a-lock", "b-lock")}
        mem = {k: [] for k in ("client", "helper", "floor")}
        for _ in range(opts.rounds):
            t, rss, out = timed([*ceo, "--check"], env)
            assert set(json.loads(out)["result"]["locked"]) >= lapsed
            runs["a-check"].append(t)
            mem["client"].append(rss)
            mem["helper"].append(int(helper_rss.read_text().split()[-1]))
            t, rss, out = timed([sys.executable, __file__, "--floor", "check"], env)
            assert int(out) >= len(lapsed)
            runs["b-check"].append(t)
            mem["floor"].append(rss)

            t, rss, out = timed(ceo, env)
            locked = json.loads(out)["result"]["locked"]
            assert set(locked) >= lapsed and not json.loads(out)["result"]["failed"]
            runs["a-lock"].append(t)
            mem["client"].append(rss)
            mem["helper"].append(int(helper_rss.read_text().split()[-1]))
            unlock(locked)

            t, rss, out = timed([sys.executable, __file__, "--floor", "lock"], env)
            assert int(out) >= len(lapsed)
            runs["b-lock"].append(t)
            mem["floor"].append(rss)
            unlock(lapsed)
        med = {k: statistics.median(v) for k, v in runs.items()}
        n = opts.members
        print(f"{n:,} members, {len(lapsed):,} lapsed; medians of {opts.rounds} rounds (each: "
              + ", ".join(f"{k} " + "/".join(f"{t:.2f}" for t in v) for k, v in runs.items()) + ")")
        print(f"expire --check: (a) ceo {med['a-check']:.2f} s   (b) ldap3 paged search {med['b-check']:.2f} s   "
              f"(a)/(b) = {med['a-check'] / med['b-check']:.2f}x")
        print(f"expire:         (a) ceo {med['a-lock']:.2f} s   (b) search + {len(lapsed):,} modifies "
              f"{med['b-lock']:.2f} s   (a)/(b) = {med['a-lock'] / med['b-lock']:.2f}x")
        # /usr/bin/time's figure for ceo covers the largest of it and the helper it waited for.
        print(f"peak RSS: the helper {max(mem['helper']) / 1024:.0f} MB, the largest of ceo and its helper "
              f"{max(mem['client']) / 1024:.0f} MB, the floor's process {max(mem['floor']) / 1024:.0f} MB")
        good = all(med[f"a-{k}"] / med[f"b-{k}"] <= 1.5 for k in ("check", "lock"))
        print(f"target (a)/(b) <= 1.5x: {'met' if good else 'NOT met'}")
        return 0 if good else 1
    finally:
        CONFIG.write_text(original)
        drop(uids)
        if started is not None:
            control.down()


if __name__ == "__main__":
    sys.exit(main())
