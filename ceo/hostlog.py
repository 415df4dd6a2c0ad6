"""The helper's own log: syslog, never stderr (which would reach the client)."""

from __future__ import annotations


def log(text: str):
    import syslog
    try:
        for line in text.splitlines():
            syslog.syslog(syslog.LOG_ERR, line)
    except OSError:
        pass
