"""The helper's own log: syslog, never stderr (which would reach the client).

One small sender instead of syslog(3): the helper sends each line as an RFC 3164 datagram
(`<PRI>Mmm dd hh:mm:ss ceo-helper[PID]: text`) to the unix socket `[log] syslog_socket` names
(`/dev/log` by default). Like syslog(3), a missing socket or a daemon that is not there drops
the line silently: the request matters more than its log line.
"""

from __future__ import annotations

import os
import time

SOCKET = "/dev/log"  # the helper sets it from ceo.ini as soon as it has read that (Config.load_helper)
IDENT = "ceo-helper"
FACILITIES = {"LOG_DAEMON": 3 << 3, "LOG_AUTHPRIV": 10 << 3}
LEVELS = {"LOG_ERR": 3, "LOG_WARNING": 4, "LOG_NOTICE": 5, "LOG_INFO": 6}
_sock = None


def log(text: str, level: str = "LOG_ERR", facility: str = "LOG_DAEMON"):
    """level: a syslog priority name; LOG_INFO for what a job did (one line per run)."""
    priority = FACILITIES[facility] | LEVELS[level]
    for line in text.splitlines():
        send(priority, line)


def send(priority: int, line: str):
    global _sock
    stamp = time.strftime("%b %e %H:%M:%S")  # glibc's; Python never sets LC_TIME: English months
    data = f"<{priority}>{stamp} {IDENT}[{os.getpid()}]: {line}".encode("utf-8", "replace")
    try:
        if _sock is None:
            import socket  # only once something is logged: not on the helper's start-up path
            _sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        _sock.sendto(data, SOCKET)
    except OSError:
        pass  # no socket, no daemon, or not a datagram socket: dropped, as syslog(3) does
