"""Opening a file root reads on someone else's behalf (a member's ~/.forward, a config file)."""

from __future__ import annotations

import os


def open_plain(path: str, refuse) -> int | None:
    """A read-only fd on path, never through a link and never blocking on a FIFO; None if it
    does not exist; any other failure raises refuse(why). The caller checks what it opened
    with fstat (a link swapped in later cannot redirect it)."""
    try:
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise refuse(exc.strerror) from None
