"""ceo-helperd (ceo/helperd.py) and the hand-off to it (ceo/handoff.py), on the sandbox's hosts,
each of which runs one: sessions are served by a fork of the daemon, with the caller sudo and
sshd said; only code is shared between sessions; a daemon that is down, or whose code has
changed, leaves sessions to be served cold; killing either process of a session ends it; and
no one but root can hand a session over.
"""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
import time
from pathlib import Path

from rawhelper import Raw
from sandbox import control

from ceo import handoff

HOST = "phosphoric-acid"


def _stat(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def _cmdline(pid: int) -> bytes:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read()


def daemon_pid(cluster, host=HOST) -> int:
    """The daemon itself: its forks (the helpers it serves sessions with) share its command line."""
    daemons = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            pid = int(entry)
            if _is_helperd(pid) and not _is_helperd(int(_stat(pid)[1])):
                daemons.append(pid)
        except OSError:
            continue
    mine = [pid for pid in daemons if _nodename(pid) == cluster.hosts[host]]
    assert len(mine) == 1, (host, daemons)
    return mine[0]


def _is_helperd(pid: int) -> bool:
    try:
        return _cmdline(pid).endswith(b"-m\0ceo.helperd\0")
    except OSError:
        return False


def _nodename(pid: int) -> str:
    """The host name of a process's UTS namespace (each sandbox host has its own)."""
    return subprocess.run(["nsenter", f"--uts=/proc/{pid}/ns/uts", "hostname"], capture_output=True,
                          text=True, check=True).stdout.strip()


def serving(raw: Raw) -> tuple[int, int | None]:
    """(the session's ceo-helper under sudo, the process serving it if another one does): the
    server is whichever other process holds the very pipe the helper's stdin is."""
    shims = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            if _cmdline(int(entry)).split(b"\0")[1].endswith(b"/ceo-helper"):
                shims.append(int(entry))
        except (OSError, IndexError):
            continue
    mine = [pid for pid in shims if _in_channel(pid, raw)]
    assert len(mine) == 1, (mine, shims)
    pipe = os.readlink(f"/proc/{mine[0]}/fd/0")
    others = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        pid = int(entry)
        if pid == mine[0]:
            continue
        try:
            if os.readlink(f"/proc/{pid}/fd/0") == pipe and b"ceo.helperd" in _cmdline(pid):
                others.append(pid)
        except OSError:
            continue
    assert len(others) <= 1, others
    return mine[0], (others[0] if others else None)


def _in_channel(pid: int, raw: Raw) -> bool:
    """Whether this ceo-helper is the one our channel started: sshd's environment names our port."""
    port = raw.channel.get_transport().sock.getsockname()[1]
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f" {port} ".encode() in f.read().split(b"SSH_CONNECTION=", 1)[-1].split(b"\0")[0]
    except OSError:
        return False


def session(connect, user="regular1") -> Raw:
    raw = Raw(connect(HOST, user))
    raw.hello()
    return raw


def test_a_session_is_served_by_a_fork_of_the_daemon_as_the_caller_sudo_names(cluster, connect):
    daemon = daemon_pid(cluster)
    for user in ("regular1", "ctdalek"):  # one after the other, through the same daemon
        raw = Raw(connect(HOST, user))
        hello = raw.hello()
        assert (hello["caller"], hello["principal"]) == (user, f"{user}@{cluster.realm}"), hello
        shim, server = serving(raw)
        assert server is not None, "served cold although the daemon runs"
        assert int(_stat(server)[1]) == daemon  # a child of the daemon, not of sudo
        assert int(_stat(server)[3]) == server  # in a session of its own: the daemon's signals are not its
        _, reply = raw.request("w", "whoami", "show", {})
        assert reply["result"]["caller"] == user, reply
        assert raw.finish()[1] == 0


def test_only_code_is_shared_each_session_reads_the_callers_rights_anew(cluster, connect):
    """A right taken away between two sessions is gone in the second, though both are forks of
    one daemon: nothing the first read is kept."""
    from rootldap import RootLDAP
    ldap = RootLDAP(cluster)
    group, member = f"cn=office,ou=Group,{cluster.base_dn}", f"uid=ofstaff,ou=People,{cluster.base_dn}"
    before = session(connect, "ofstaff")
    _, allowed = before.request("q", "members", "forwarding", {"uid": "regular1"})
    assert "result" in allowed, allowed
    before.finish()
    ldap.modify(group, {"uniqueMember": [("MODIFY_DELETE", [member])]})
    try:
        after = session(connect, "ofstaff")
        _, refused = after.request("q", "members", "forwarding", {"uid": "regular1"})
        assert refused.get("error", {}).get("name") == "NotPermitted", refused
        assert serving(after)[1] is not None
        after.finish()
    finally:
        ldap.modify(group, {"uniqueMember": [("MODIFY_ADD", [member])]})


def test_killing_the_ceo_helper_under_sudo_ends_the_forked_helper(cluster, connect):
    raw = session(connect)
    shim, server = serving(raw)
    os.kill(shim, 9)
    _gone(server)
    raw.out.read()  # the channel ends: sshd saw its command end and the helper's pipes close
    assert raw.channel.recv_exit_status() != 0


def test_killing_the_forked_helper_ends_the_session_with_an_error(cluster, connect):
    raw = session(connect)
    shim, server = serving(raw)
    os.kill(server, 9)
    _gone(shim)
    assert raw.out.read() == b""
    assert raw.channel.recv_exit_status() == 1  # the shim's status for a helper that gave none


def _gone(pid: int, seconds: float = 10):
    deadline = time.monotonic() + seconds
    while Path(f"/proc/{pid}").exists() and _stat(pid)[0] != "Z":
        assert time.monotonic() < deadline, f"process {pid} still runs"
        time.sleep(0.01)


def test_without_the_daemon_sessions_are_served_cold(cluster, connect):
    control.service("stop", f"helperd@{HOST}")
    try:
        assert not Path(f"{handoff.SOCKET_DIR}/{cluster.hosts[HOST]}.sock").exists()  # it removes its socket
        raw = session(connect)
        assert serving(raw)[1] is None
        _, reply = raw.request("w", "whoami", "show", {})
        assert reply["result"]["caller"] == "regular1"
        assert raw.finish()[1] == 0
    finally:
        control.service("start", f"helperd@{HOST}")
    assert serving(session(connect))[1] is not None


def test_code_changed_on_disk_the_daemon_declines_once_then_serves_the_new_code(cluster, connect):
    daemon = daemon_pid(cluster)
    target = Path(handoff.__file__).with_name("terms.py")  # imported by the daemon, used by sessions
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    try:
        raw = session(connect)
        assert serving(raw)[1] is None, "the stale daemon served a session"
        raw.finish()
        deadline = time.monotonic() + 20  # it executes itself anew: the same process, new code
        while True:
            raw = session(connect)
            served = serving(raw)[1]
            parent = int(_stat(served)[1]) if served is not None else None
            raw.finish()
            if served is not None:
                break
            assert time.monotonic() < deadline, "the daemon did not come back"
            time.sleep(0.1)
        assert parent == daemon
    finally:
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    # ... and once more, for the mtime put back: served again within a few sessions
    deadline = time.monotonic() + 20
    while serving(raw := session(connect))[1] is None:
        raw.finish()
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_only_root_can_reach_the_daemon(cluster):
    """The socket's directory is root's (0700): a member on the host cannot hand the daemon a
    session with an environment of their choosing."""
    path = f"{handoff.SOCKET_DIR}/{cluster.hosts[HOST]}.sock"
    st = os.stat(handoff.SOCKET_DIR)
    assert (st.st_uid, st.st_mode & 0o777) == (0, 0o700)
    pw = pwd.getpwnam("regular1")
    probe = ("import socket\ns = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)\n"
             f"try:\n    s.connect({path!r})\nexcept PermissionError:\n    print('refused')\n")
    out = subprocess.run(["/usr/bin/python3", "-c", probe], user=pw.pw_uid,  # the venv may be root's only
                         group=pw.pw_gid, extra_groups=[], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "refused", out


def test_a_handoff_without_its_descriptors_is_refused_and_the_daemon_goes_on(cluster, connect):
    path = f"{handoff.SOCKET_DIR}/{cluster.hosts[HOST]}.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
        s.connect(path)
        s.sendmsg([b"\0\0\0\0ceo-helper\0SUDO_USER=root"])  # no stdin, stdout, stderr, cwd
        try:
            closed = s.recv(1) == b""
        except ConnectionResetError:  # closed with our message unread
            closed = True
        assert closed  # no helper was forked for it
    assert serving(session(connect))[1] is not None


def test_the_sandbox_runs_one_per_host(cluster):
    assert {_nodename(daemon_pid(cluster, h)) for h in cluster.hosts} == set(cluster.hosts.values())


def test_a_handoff_that_never_comes_holds_up_no_other_session(cluster, connect):
    """A shim stopped between its connect and its send (a ^Z on the host) would leave the daemon
    waiting in recvmsg, and every later session waiting on it: the daemon gives up on it."""
    path = f"{handoff.SOCKET_DIR}/{cluster.hosts[HOST]}.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as silent:
        silent.connect(path)  # and says nothing
        raw = session(connect)  # Raw reads with a timeout: a hang fails here
        assert serving(raw)[1] is not None, "served cold: the daemon was still waiting"
        assert raw.finish()[1] == 0
        silent.settimeout(30)
        try:
            assert silent.recv(1) == b""  # the daemon closed it
        except ConnectionResetError:
            pass
