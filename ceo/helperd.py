"""`ceo-helperd`: one root process per host that has imported what a helper needs and forks a
helper for each session that `ceo-helper` hands it (ceo/handoff.py). Optional: without it every
session starts its helper cold, as before.

    /path/to/venv/bin/python -m ceo.helperd      (as root, from the host's service manager)

Only code is shared between sessions. The daemon imports modules (and has glibc load its NSS
modules, by looking up a name no one has) and does nothing else before it forks: it reads no
config, looks up no real user, opens no connection. So each fork starts as a
cold helper would after its imports, and reads ceo.ini, the inventory, the caller's groups and
its own connections anew. Who the caller is comes, as before, from sudo (its environment, which
the shim passes on) and sshd: only root can hand a session over, because the socket's directory
is root's and the peer's uid is checked. sudo still runs for every session, so a revoked right
takes effect at the next one, as it did.

When a file it imported changes on disk (an upgrade), the daemon declines the next session,
which the shim then serves cold, and executes itself anew.
"""

from __future__ import annotations

import importlib
import os
import signal
import socket
import stat
import struct
import sys
import threading
import time

from .handoff import ACCEPTED, SOCKET_DIR, socket_path
from .hostlog import log

MAX_MESSAGE = 64 * 1024  # argv[0] and sudo's environment: a few hundred bytes
WARM = ("ceo.helper", "ceo.policy", "ceo.context", "ceo.discovery", "ceo.inventory", "ceo.audit", "ceo.terms",
        "ceo.services.directory", "ceo.services.kadmin", "ceo.services.homes", "ceo.services.sql",
        "ceo.services.mailman", "ceo.services.mail", "ceo.services.university",
        "gssapi", "psycopg2", "pymysql", "requests", "smtplib", "subprocess", "tempfile", "secrets")


def warm():
    """Import what sessions use (and load the NSS modules), and only that: nothing that holds
    state a session could see."""
    for name in WARM:
        try:
            importlib.import_module(name)
        except ImportError:  # a library this host's helpers never use may be missing
            pass
    from .services.ldap3_lean import ldap3
    ldap3()  # the ldap3 modules a bind, a search and a modify use
    from .discovery import discover
    discover(None).everything()  # every bundled and installed plugin's module; the registry is dropped
    load_nss()


def load_nss():
    """glibc loads the NSS modules that nsswitch.conf names (libnss_ldap, libnss_sss...) at the
    first lookup that reaches them: ~0.5 ms each session's helper would pay for its first
    lookup. A name no one has reaches every source. This process keeps no answer (glibc caches
    none, and rereads nsswitch.conf when it changes): each session's lookups are made anew, as a
    cold helper's are (by nslcd or sssd, and whatever caches the host has set up for them).
    Should the directory not answer, the daemon starts late; sessions are served cold meanwhile."""
    import grp
    import pwd
    for lookup in (pwd.getpwnam, grp.getgrnam):
        try:
            lookup("ceo-helperd-nss-probe")
        except KeyError:
            pass


def imported_files() -> list[str]:
    """The files of the modules imported (all of them by warm(): the daemon imports no more)."""
    return sorted({f for m in list(sys.modules.values()) if isinstance(f := getattr(m, "__file__", None), str)})


def fingerprint(files: list[str]) -> list:
    """Each file's identity: a change means newer code than what this process holds."""
    out = []
    for path in files:
        try:
            st = os.stat(path)
            out.append((st.st_ino, st.st_mtime_ns, st.st_size))
        except OSError:
            out.append(None)
    return out


def listen() -> socket.socket:
    os.makedirs(SOCKET_DIR, mode=0o700, exist_ok=True)
    st = os.lstat(SOCKET_DIR)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o077:
        raise SystemExit(f"ceo-helperd: {SOCKET_DIR} must be a directory only root can enter")
    path = socket_path()
    try:
        os.unlink(path)  # a previous daemon's
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)
    listener.listen(128)
    return listener


def receive(conn: socket.socket):
    """(umask, argv0, environ, [stdin, stdout, stderr, cwd]) from a root peer, or ValueError."""
    _, uid, _ = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    msg, ancillary, flags, _ = conn.recvmsg(MAX_MESSAGE, socket.CMSG_SPACE(4 * 4), socket.MSG_CMSG_CLOEXEC)
    fds = []
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds += struct.unpack(f"{len(data) // 4}i", data[:len(data) // 4 * 4])
    if uid != 0 or flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC) or len(fds) != 4 or len(msg) < 4:
        for fd in fds:
            os.close(fd)
        raise ValueError(f"a handoff from uid {uid} with {len(fds)} descriptors: refused")
    argv0, *items = msg[4:].split(b"\0")
    environ = dict(item.split(b"=", 1) for item in items if b"=" in item)
    return struct.unpack("i", msg[:4])[0], argv0, environ, fds


def become_helper(listener, conn, umask, argv0, environ, fds):
    """In the fork: take the session's place (its fds, directory, umask, environment), serve it
    with the helper, and report its exit status to the shim. Never returns."""
    code = 1
    try:
        listener.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the helper waits for its own children (kadmin)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.setsid()  # the daemon's signals are not the session's
        for target, fd in enumerate(fds[:3]):
            os.dup2(fd, target)
        os.fchdir(fds[3])
        for fd in fds:
            os.close(fd)
        os.umask(umask)
        os.environ.clear()
        os.environb.update(environ)
        sys.argv = [os.fsdecode(argv0)]
        conn.send(ACCEPTED)
        # The shim stands for this helper in sshd's session: if it is killed, so is the helper.
        threading.Thread(target=_end_with_shim, args=(conn,), daemon=True).start()
        from .helper import main
        code = main()
    except BaseException as exc:  # noqa: B036 (SystemExit included: this process must end here)
        code = exc.code if isinstance(exc, SystemExit) and isinstance(exc.code, int) else 1
        if not isinstance(exc, SystemExit):
            log(f"ceo-helperd: a forked helper failed: {type(exc).__name__}: {exc}")
    finally:
        try:
            sys.stdout.flush()
            conn.send(bytes([code & 0xFF]))
        except Exception:
            pass
        os._exit(code & 0xFF)


def _end_with_shim(conn):
    try:
        conn.recv(1)  # nothing is ever sent this way: it returns when the shim's end closes
    finally:
        os._exit(1)


HANDOFF_TIMEOUT = 1.0  # a shim stopped between connect and send (^Z) must not hold up every other session


def serve(listener: socket.socket, path: str):
    files = imported_files()  # listed once: each session then only stats them (~0.5 ms, not ~1)
    known = fingerprint(files)
    while True:
        try:
            conn, _ = listener.accept()
        except OSError as exc:  # out of descriptors, say: the sessions meanwhile are served cold
            log(f"ceo-helperd: accept failed: {exc}")
            time.sleep(0.1)
            continue
        try:
            if fingerprint(files) != known:  # upgraded: this session is served cold, the next one warm
                log("ceo-helperd: its code changed on disk; restarting")
                conn.close()
                listener.close()
                os.execv(sys.executable, sys.orig_argv)
            conn.settimeout(HANDOFF_TIMEOUT)
            try:
                umask, argv0, environ, fds = receive(conn)
            except (OSError, ValueError) as exc:
                log(f"ceo-helperd: {exc}")
                continue
            conn.settimeout(None)
            sys.stdout.flush()
            sys.stderr.flush()
            try:
                child = os.fork()
            except OSError as exc:  # no process to spare: declined (conn closes), the shim serves it cold
                log(f"ceo-helperd: fork failed: {exc}")
                child = None
            if child == 0:
                become_helper(listener, conn, umask, argv0, environ, fds)
            for fd in fds:
                os.close(fd)
        finally:
            conn.close()


def main() -> int:
    if os.getuid() != 0:
        print("ceo-helperd: must run as root (it serves sessions as ceo-helper would under sudo)", file=sys.stderr)
        return 2
    os.umask(0o077)
    warm()
    listener, path = listen(), socket_path()  # the path as bound: the host name may change later
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the forked helpers
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        serve(listener, path)
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
