"""A soak: 10,000 requests through one session, and 200 sessions opened and closed, with the
helper's memory and open files read on its host before and after. Longer:

    CEO_SOAK_REQUESTS=200000 CEO_SOAK_SESSIONS=2000 .venv/bin/pytest tests/reliability/test_soak.py
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from ceo.config import Config
from ceo.inventory import Inventory
from ceo.transport import Pool

REQUESTS = int(os.environ.get("CEO_SOAK_REQUESTS", "10000"))
SESSIONS = int(os.environ.get("CEO_SOAK_SESSIONS", "200"))
USER = "ofstaff"


def helpers_of(user: str) -> list[int]:
    """The pids of the helpers serving `user` on this machine (the sandbox's hosts share it):
    each ceo-helper under sudo, or the fork of ceo-helperd it handed its session to (the one
    other process holding the very pipe its stdin is)."""
    shims, stdin_of = [], {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            if argv[-2:] == [b"ceo.helperd", b""]:
                stdin_of[os.readlink(f"/proc/{pid}/fd/0")] = int(pid)
            if not any(a.endswith(b"ceo-helper") for a in argv[:3]):
                continue
            with open(f"/proc/{pid}/environ", "rb") as f:
                if f"SUDO_USER={user}".encode() in f.read().split(b"\0"):
                    shims.append((int(pid), os.readlink(f"/proc/{pid}/fd/0")))
        except OSError:
            continue
    return sorted(stdin_of.get(pipe, pid) for pid, pipe in shims)


def usage(pid: int) -> tuple[int, int]:
    """(resident memory in KiB, open file descriptors) of a process."""
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


@pytest.fixture
def pool(cluster, monkeypatch):
    monkeypatch.setenv("KRB5CCNAME", cluster.env(USER)["KRB5CCNAME"])
    pools = []

    def make():
        p = Pool(Inventory.load("/etc/csc/hosts.ini"), Config.load())
        pools.append(p)
        return p
    yield make
    for p in pools:
        p.close()


def test_ten_thousand_requests_through_one_session(cluster, pool, summary):
    before = set(helpers_of(USER))
    session = pool().for_role("ldap")
    for _ in range(200):  # warm: its connections and caches exist before the first reading
        session.request("members", "info", {"uid": "regular1"})
    mine = [p for p in helpers_of(USER) if p not in before]
    assert len(mine) == 1, mine
    rss0, fds0 = usage(mine[0])
    start = time.monotonic()
    for i in range(REQUESTS):
        if i % 2:
            session.request("doctor", "ping", {})
        else:
            assert session.request("members", "info", {"uid": "regular1"})["uid"] == "regular1"
    seconds = time.monotonic() - start
    rss1, fds1 = usage(mine[0])
    summary.setdefault("soak", {}).update(
        {"requests through one session": REQUESTS, "seconds": round(seconds, 1),
         "helper memory": f"{rss0 // 1024} -> {rss1 // 1024} MB", "helper fds": f"{fds0} -> {fds1}"})
    assert fds1 == fds0, (fds0, fds1)
    assert rss1 - rss0 < 20 * 1024, (rss0, rss1)  # 10,000 requests may not cost 20 MB


def test_two_hundred_sessions_opened_and_closed_leave_no_helper(cluster, pool, summary):
    before = set(helpers_of(USER))

    def one(_):
        p = pool()
        try:
            return p.for_role("ldap").request("doctor", "ping", {})["pong"]
        finally:
            p.close()
    start = time.monotonic()
    with ThreadPoolExecutor(8) as workers:
        answers = list(workers.map(one, range(SESSIONS)))
    seconds = time.monotonic() - start
    deadline = time.monotonic() + 30
    while set(helpers_of(USER)) - before and time.monotonic() < deadline:
        time.sleep(0.2)  # each helper ends on its session's EOF
    left = set(helpers_of(USER)) - before
    summary.setdefault("soak", {}).update(
        {"sessions opened and closed": SESSIONS, "session seconds": round(seconds, 1), "helpers left": len(left)})
    assert answers == [True] * SESSIONS
    assert not left, left
