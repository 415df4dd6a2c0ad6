"""`ceo-helper`, as sshd's ForceCommand runs it (`sudo -n ceo-helper`): hand the session to the
host's warm helper daemon if it runs, else serve it here.

sudo has already decided that the caller may run the helper and said who they are (its
environment). Run as root, this hands that environment and the session's stdin, stdout, stderr
and working directory to `ceo-helperd` (ceo/helperd.py) over a Unix socket in a directory only
root can enter, and exits with the status of the helper the daemon forks for it. That helper is
the same code, deciding the same way from the same environment; it only skips importing ceo
and its services (about 60 ms). If no daemon answers, or it declines, the session is served
here, cold, exactly as before. Nothing heavier than `_socket` is imported on this path.
"""

import os
import sys

SOCKET_DIR = "/run/ceo-helper"  # root's, mode 0700: only root can reach a daemon's socket
ACCEPTED = b"A"  # the daemon's forked helper has taken the session


def socket_path() -> str:
    """One socket per host name: the sandbox's hosts share one /run, each in its own UTS namespace."""
    return f"{SOCKET_DIR}/{os.uname().nodename}.sock"


def main() -> int:
    if os.getuid() == 0:
        status = hand_off()
        if status is not None:
            return status
    from .helper import main as serve_here
    return serve_here()


def hand_off() -> int | None:
    """The forked helper's exit status, or None if no daemon took the session."""
    import _socket
    import struct
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
    try:
        sock.connect(socket_path())
        pid, uid, gid = struct.unpack("3i", sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12))
        if uid != 0:  # only root's daemon may be handed a session (the directory should ensure it)
            return None
        cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        umask = os.umask(0o022)
        os.umask(umask)
        message = b"\0".join([os.fsencode(sys.argv[0]), *(k + b"=" + v for k, v in os.environb.items())])
        fds = struct.pack("4i", 0, 1, 2, cwd)
        sock.sendmsg([struct.pack("i", umask) + message], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
        os.close(cwd)
        if sock.recv(1) != ACCEPTED:  # declined (its code changed on disk, it is restarting)
            return None
    except OSError:  # no daemon, or it went away before any helper had the session
        sock.close()
        return None
    try:  # from here on the session is the forked helper's: never served twice
        status = sock.recv(1)  # it holds its end until it exits
    except OSError:
        status = b""
    return status[0] if status else 1  # no status: the helper was killed


if __name__ == "__main__":
    sys.exit(main())
