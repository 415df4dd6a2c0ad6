"""Shared fixtures: the sandbox cluster (real daemons), joined by the test process itself.

The `cluster` fixture brings the sandbox up unless it already runs (a developer's), moves
this process into its mount namespace, so names, NSS and /etc/krb5.conf are the cluster's,
and stops it at the end only if it started it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sandbox import control, topology  # noqa: E402

import secretwatch as secrets  # noqa: E402  (every password the suite's commands are shown)


class Cluster:
    state = topology.STATE
    realm = topology.REALM
    base_dn = topology.BASE_DN
    hosts = {h: topology.fqdn(h) for h in topology.HOSTS}
    addrs = dict(topology.HOSTS)

    def ccache(self, user: str) -> str:
        return f"FILE:{self.state / 'ccache' / user}"

    def env(self, user: str | None, **extra) -> dict:
        """A process environment holding `user`'s ticket (None: no ticket at all)."""
        env = {**os.environ, **extra}
        env["KRB5CCNAME"] = self.ccache(user) if user else f"FILE:{self.state / 'no-such-ccache'}"
        env["PATH"] = f"{REPO / '.venv' / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
        return env

    def run(self, argv, user: str | None = None, **kw) -> subprocess.CompletedProcess:
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("timeout", 60)
        proc = subprocess.run(argv, env=self.env(user), **kw)
        secrets.saw(proc)
        return proc

    # The helpers' syslog: the sandbox's sink writes each line they send to one file.
    def syslog_offset(self) -> int:
        """Where that file ends now: syslog_since(it) gives what is logged after."""
        return topology.SYSLOG_FILE.stat().st_size

    def syslog_since(self, offset: int) -> list[str]:
        """The lines logged after `offset`, once the sink has written all sent before this call:
        a marker of our own, queued behind them on the socket, has reached the file."""
        marker = f"ceo-tests-syslog-mark {uuid.uuid4().hex}"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(marker.encode(), str(topology.SYSLOG_SOCKET))
        deadline = time.monotonic() + 30
        while True:
            with open(topology.SYSLOG_FILE, "rb") as f:
                f.seek(offset)
                lines = f.read().decode("utf-8", "replace").splitlines()
            if marker in lines:
                return [line for line in lines[:lines.index(marker)] if "ceo-tests-syslog-mark" not in line]
            assert time.monotonic() < deadline, "the sandbox's syslog sink wrote nothing for 30 s"
            time.sleep(0.01)


@pytest.fixture(scope="session")
def cluster():
    pid, timings = control.up()
    control.join(pid)
    control.testkit_repair()  # left by a session that was killed
    secrets.start_sampling()  # the process list, for passwords in anyone's arguments
    yield Cluster()
    secrets.stop_sampling()
    if timings is not None:
        control.down()


@pytest.fixture(scope="module")
def testkit(cluster):
    """The test plugin (tests/plugins/testkit.py) in the sandbox's site dir, for the client and
    every helper, while this module's tests run; users of the sandbox never see it otherwise.
    A module using it says `pytestmark = pytest.mark.usefixtures("testkit")`. A session that is
    killed leaves it behind until the next session starts or `sandbox/ctl up` (testkit_repair)."""
    control.testkit_load(os.getpid())
    yield
    control.testkit_unload(os.getpid())


@pytest.fixture
def connect(cluster, as_user):
    """connect(host, user): an SSH client logged in with `user`'s ticket, closed afterwards."""
    clients = []

    def open_(host: str, user: str):
        import paramiko
        as_user(user)
        client = paramiko.SSHClient()
        client.load_host_keys("/etc/ssh/ssh_known_hosts")
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(cluster.hosts[host], username=user, gss_auth=True, gss_kex=False, gss_deleg_creds=False,
                       gss_trust_dns=False, look_for_keys=False, allow_agent=False, timeout=10)
        clients.append(client)
        return client

    yield open_
    for client in clients:
        client.close()


@pytest.fixture(scope="module")
def mailman(cluster):
    """Mailman's REST API as its admin (the sandbox's own credentials): to check rosters."""
    from mailmanclient import Client
    return Client(f"http://{cluster.addrs['mail']}:8001/3.1", topology.MAILMAN_USER, topology.MAILMAN_PASS)


@pytest.fixture
def as_user(monkeypatch, cluster):
    """Point this process's own Kerberos library (paramiko, ldap3) at a user's ticket."""
    def switch(user: str | None):
        monkeypatch.setenv("KRB5CCNAME", cluster.env(user)["KRB5CCNAME"])
    return switch


def pytest_collection_modifyitems(items):
    """Tests marked `last` run after every other (the secrets check reads what all of them left)."""
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)
