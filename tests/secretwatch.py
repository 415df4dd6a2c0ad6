"""Every password ceo shows during the suite, where it was shown, and every other place text
went: the commands' other output and errors, and the process list sampled while they ran.
tests/reliability/test_secrets.py then looks for each password everywhere but its one place.

A password is recognised where ceo shows one: `"password": "..."` in a --json result, and the
`Temporary password ...: X` / `Password: X` lines of its human output.
"""

from __future__ import annotations

import os
import re
import threading

_SHOWN = re.compile(r'"password": "([A-Za-z0-9]{16,64})"|[Pp]assword(?: for \S+)?:? +(?:\x1b\[[0-9;]*m)*([A-Za-z0-9]{16,64})')
SHOWN: dict[str, int] = {}  # password -> index of the output that showed it
OUTPUTS: list[tuple[str, str]] = []  # (stdout, stderr) of every command run through Cluster.run
COMMANDS: set[bytes] = set()  # every process's arguments seen by the sampler
_stop = threading.Event()


def saw(proc):
    out, err = (x if isinstance(x, str) else (x or b"").decode("utf-8", "replace") for x in (proc.stdout, proc.stderr))
    OUTPUTS.append((out or "", err or ""))
    for match in _SHOWN.finditer(out or ""):
        SHOWN.setdefault(match.group(1) or match.group(2), len(OUTPUTS) - 1)


def shown(password: str, where: str = "in process"):
    """A password a test got in process (the office UI's result), not through a command."""
    OUTPUTS.append((where, ""))
    SHOWN.setdefault(password, len(OUTPUTS) - 1)


def _sample():
    while not _stop.wait(0.02):
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        COMMANDS.add(f.read())
                except OSError:
                    pass


def start_sampling():
    _stop.clear()
    threading.Thread(target=_sample, daemon=True, name="secretwatch").start()


def stop_sampling():
    _stop.set()
