"""The wire format between `ceo` and `ceo-helper`: JSON lines (see docs/protocol.md)."""

from __future__ import annotations

import json

from . import __version__

# Protocol versions this code speaks, lowest and highest. Bump the highest when adding
# messages; raise the lowest only when dropping support for old peers.
PROTOCOL = (1, 1)
MAX_LINE = 1 << 20  # a request line longer than 1 MiB is refused, and the helper reads on


def encode(message: dict) -> bytes:
    # backslashreplace: a lone surrogate can never make writing a reply fail
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "backslashreplace") + b"\n"


def decode(line: bytes):
    """The JSON value of a line, or ValueError: not JSON, too deeply nested, or not text
    (lone surrogates would come back in replies and audit records)."""
    try:
        message = json.loads(line)
        json.dumps(message, ensure_ascii=False).encode("utf-8")
    except (ValueError, UnicodeError, RecursionError) as exc:
        raise ValueError(str(exc)) from None
    return message


def client_hello() -> dict:
    return {"hello": "ceo", "version": __version__, "protocol": list(PROTOCOL)}


def negotiate(theirs, ours=PROTOCOL) -> int | None:
    """The highest version both ranges share, or None."""
    try:
        lo, hi = int(theirs[0]), int(theirs[1])
    except (TypeError, ValueError, IndexError, KeyError):
        return None
    best = min(hi, ours[1])
    return best if best >= max(lo, ours[0]) else None


def read_line(stream, limit: int = MAX_LINE) -> tuple[bytes | None, bool]:
    """(line, too_long). A line over `limit` is consumed to its end and reported, never kept."""
    line = stream.readline(limit + 1)
    if not line:
        return None, False
    if line.endswith(b"\n") or len(line) <= limit:
        return line, False
    while True:  # skip the rest of the oversized line
        chunk = stream.readline(limit)
        if not chunk or chunk.endswith(b"\n"):
            return b"", True
