"""Audit records: one per request that changes something, to syslog and a JSON-lines file.

Arguments arrive already redacted (secret parameters print as ***); results, which may hold
generated passwords, are never recorded.
"""

from __future__ import annotations

import json
import os
import time

from . import hostlog


_files: dict[str, int] = {}  # audit files kept open for the helper's session (batches write many)


def record(path: str, *, caller: str, host: str, plugin: str, verb: str, args: dict, outcome: str,
           error: str | None = None, **extra):
    entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "caller": caller, "host": host,
             "plugin": plugin, "verb": verb, "args": args, "outcome": outcome, **extra}
    if error:
        entry["error"] = error
    line = json.dumps(entry, sort_keys=True)
    hostlog.log(line, "LOG_INFO", "LOG_AUTHPRIV")
    fd = _files.get(path)
    if fd is None:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd = _files[path] = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.write(fd, line.encode() + b"\n")  # one write of a whole line: O_APPEND keeps lines whole
