"""`up`, `up` again, `down`, `up` after `down`, from a checkout-like folder only root can enter.

The cycled sandbox has its own state folder (inside a mode-0700 parent, as a clone in /root or
`mktemp -d` has) and its own network namespace, so this test runs the same whether or not
another sandbox (a developer's, or the session's) is up, and wherever it comes in the run.
Every command runs in the machine's own mount namespace, as a user's shell would.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from sandbox import control
from sandbox.cluster import PROBES
from sandbox.topology import REPO


@pytest.fixture
def sandbox_ctl(tmp_path):
    parent = tmp_path / "private"
    parent.mkdir(mode=0o700)
    state = parent / "checkout" / ".sandbox"
    env = {**os.environ, "CEO_SANDBOX_STATE": str(state), "CEO_SANDBOX_NETNS": "1"}
    machine = [] if control._machine_ns is None else ["nsenter", f"--mount=/proc/self/fd/{control._machine_ns}"]
    fds = () if control._machine_ns is None else (control._machine_ns,)

    def ctl(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([*machine, str(REPO / "sandbox" / "ctl"), *args], env=env, pass_fds=fds,
                              capture_output=True, text=True, timeout=120)
        if check:
            assert proc.returncode == 0, f"ctl {' '.join(args)}: {proc.stdout}{proc.stderr}"
        return proc

    def probe(code: str) -> str:
        """Run Python inside the cycled sandbox (its namespaces), for facts `ctl` does not print."""
        return ctl("run", "--", str(REPO / ".venv" / "bin" / "python"), "-c", code).stdout

    ctl.state, ctl.probe, ctl.parent = state, probe, parent
    yield ctl
    ctl("down", check=False)


def supervisor_namespaces(ctl) -> tuple[int, set[str]]:
    pid = int((ctl.state / "supervisor.pid").read_text())
    return pid, control.namespaces(pid)


def test_up_twice_then_down_leaves_nothing_from_a_root_only_folder(sandbox_ctl):
    ctl = sandbox_ctl
    assert oct(ctl.parent.stat().st_mode & 0o777) == "0o700"
    assert ctl("leftovers").stdout.strip() == "0 leftovers"
    for _ in range(2):
        first = ctl("up").stdout
        assert first.startswith("sandbox up in ")
        pid, namespaces = supervisor_namespaces(ctl)
        assert ctl("up").stdout.strip() == f"sandbox already up (supervisor pid {pid})"
        status = ctl("status")
        assert "FAIL" not in status.stdout and status.stdout.count("ok  ") == len(PROBES)
        # postgres and mysql reached their data through the 0700 parent: the servers answer
        # as their own users, and the data folders on disk are theirs.
        assert "\nok\n" in "\n" + ctl.probe(
            "import psycopg2, pymysql\n"
            "c = psycopg2.connect(host='/run/postgresql', user='postgres', dbname='postgres')\n"
            "c.cursor().execute('create table t (x int)')\n"
            "m = pymysql.connect(unix_socket='/run/mysqld/mysqld.sock', user='root')\n"
            "m.cursor().execute('create database probe')\n"
            "print('ok')")
        assert (ctl.state / "postgresql" / "data" / "PG_VERSION").owner() == "postgres"
        assert (ctl.state / "mariadb" / "data" / "probe").owner() == "mysql"
        running = ctl("leftovers", check=False)
        assert running.returncode == 1 and "file " + str(ctl.state) in running.stdout  # it sees a cluster
        assert ctl("down").stdout.startswith("sandbox down in ")
        assert ctl("leftovers").stdout.strip() == "0 leftovers"
        assert not ctl.state.exists()
        assert control.processes_in(namespaces) == []  # every daemon of that cluster ended
    assert ctl("down").stdout.strip() == "sandbox was not up"

