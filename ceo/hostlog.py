"""The helper's own log: syslog, never stderr (which would reach the client)."""

from __future__ import annotations


def log(text: str, level: str = "LOG_ERR"):
    """level: a syslog priority name; LOG_INFO for what a job did (one line per run)."""
    import syslog
    try:
        for line in text.splitlines():
            syslog.syslog(getattr(syslog, level), line)
    except OSError:
        pass
