"""Renewing 1,000 members, three ways, side by side in one run.

    .venv/bin/python bench/renewals.py [--rounds 3] [--per-row-sample 50 | --full]

(a) `ceo members renew --csv FILE`: the whole ceo process, validation, one session
(b) the floor: a plain ldap3 loop on the LDAP host, the same 1,000 modifies over one connection
(c) one `ceo members renew UID --term T` process per row, as a shell loop would do
    (timed on a sample of rows and scaled to 1,000 unless --full)
Targets: (a) within 2x of (b); (a) at least 100x faster than (c).
Each round renews for a term no member has yet, so every row is a real change in all three.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sandbox import control  # noqa: E402

BASE = "dc=csclub,dc=internal"
N = 1000


def ldap_root():
    import ldap3
    return ldap3.Connection(ldap3.Server("ldapi://" + str(control.STATE / "ldap" / "ldapi").replace("/", "%2F")),
                            authentication=ldap3.SASL, sasl_mechanism=ldap3.EXTERNAL, sasl_credentials="",
                            auto_bind=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--per-row-sample", type=int, default=50)
    ap.add_argument("--full", action="store_true", help="time (c) on all 1,000 rows (about 4 minutes)")
    opts = ap.parse_args()
    pid, started = control.up()
    control.join(pid)
    env = {**os.environ, "KRB5CCNAME": f"FILE:{control.STATE / 'ccache' / 'ofstaff'}",
           "PATH": f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}"}
    import ldap3
    conn = ldap_root()
    uids = [f"bench{i:04d}" for i in range(N)]
    for i, uid in enumerate(uids):
        conn.delete(f"uid={uid},ou=People,{BASE}")
        conn.add(f"uid={uid},ou=People,{BASE}", ["account", "posixAccount", "shadowAccount", "member"],
                 {"cn": f"Bench {i}", "uid": uid, "uidNumber": 50000 + i, "gidNumber": 50000 + i,
                  "homeDirectory": f"/users/{uid}", "term": "w2020"})
    year = iter(range(3000, 9999))
    try:
        a_times, b_times = [], []
        for _ in range(opts.rounds):
            term = f"w{next(year)}"
            with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
                f.write("uid,terms\n" + "".join(f"{u},{term}\n" for u in uids))
            t0 = time.perf_counter()
            proc = subprocess.run(["ceo", "members", "renew", "--csv", f.name, "--json"], env=env,
                                  capture_output=True, text=True)
            a_times.append(time.perf_counter() - t0)
            os.unlink(f.name)
            assert proc.returncode == 0 and '"done": 1000' in proc.stdout, proc.stderr[-500:]

            term = f"w{next(year)}"
            t0 = time.perf_counter()
            for uid in uids:
                assert conn.modify(f"uid={uid},ou=People,{BASE}", {"term": [(ldap3.MODIFY_ADD, [term])]})
            b_times.append(time.perf_counter() - t0)

        sample = N if opts.full else opts.per_row_sample
        term = f"w{next(year)}"
        t0 = time.perf_counter()
        for uid in uids[:sample]:
            proc = subprocess.run(["ceo", "members", "renew", uid, "--term", term], env=env, capture_output=True)
            assert proc.returncode == 0, proc.stderr
        c_time = (time.perf_counter() - t0) * N / sample

        a, b = statistics.median(a_times), statistics.median(b_times)
        print(f"(a) ceo members renew --csv, 1,000 rows: {a:.2f} s (median of {opts.rounds}: "
              f"{', '.join(f'{t:.2f}' for t in a_times)})")
        print(f"(b) plain ldap3 loop, 1,000 modifies:     {b:.2f} s (median of {opts.rounds}: "
              f"{', '.join(f'{t:.2f}' for t in b_times)})")
        print(f"(c) one ceo process per row:              {c_time:.1f} s"
              + ("" if opts.full else f" ({sample} rows timed, scaled to 1,000: {c_time / N * 1000:.0f} ms a row)"))
        print(f"(a)/(b) = {a / b:.2f}x (target <= 2x); (c)/(a) = {c_time / a:.0f}x (target >= 100x)")
        return 0 if a / b <= 2 and c_time / a >= 100 else 1
    finally:
        for uid in uids:
            conn.delete(f"uid={uid},ou=People,{BASE}")
        conn.unbind()
        if started is not None:
            control.down()


if __name__ == "__main__":
    sys.exit(main())
