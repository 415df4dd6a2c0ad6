"""Secrets, measured over the whole run: every password ceo showed (tests/secretwatch.py
collects them from each command's output) is looked for everywhere else text went: the other
commands' output, every error message, the process list sampled every 20 ms while they ran,
the audit file, the helpers' syslog (the sandbox's sink writes it to a file), every daemon's
and Mailman's log, the SMTP sink. It may appear only in the one output that showed it.
"""

from __future__ import annotations

import pytest
import secretwatch

from sandbox import topology


def places(state) -> list:
    files = {state / "audit.jsonl", topology.SYSLOG_FILE, *state.rglob("*.log"), *(state / "mail" / "sink").rglob("*")}
    return sorted(f for f in files if f.is_file())


@pytest.mark.last
def test_no_password_appears_anywhere_but_where_it_was_shown(cluster, summary):
    shown = dict(secretwatch.SHOWN)
    if not shown:
        pytest.skip("no command of this run was shown a password")
    found = []
    for i, (out, err) in enumerate(secretwatch.OUTPUTS):
        for password, at in shown.items():
            if password in err or (password in out and i != at):
                found.append((password[:3] + "...", f"output of command {i}" if i != at else "its error text"))
    commands = b"\n".join(secretwatch.COMMANDS)
    found += [(p[:3] + "...", "the process list") for p in shown if p.encode() in commands]
    cluster.syslog_since(cluster.syslog_offset())  # the sink has written all the helpers sent
    files = places(cluster.state)
    syslog_lines = len(topology.SYSLOG_FILE.read_bytes().splitlines())
    for f in files:
        data = f.read_bytes()
        found += [(p[:3] + "...", str(f.relative_to(cluster.state))) for p in shown if p.encode() in data]
    summary.setdefault("secrets", {}).update(
        {"passwords shown": len(shown), "outputs searched": len(secretwatch.OUTPUTS),
         "command lines sampled": len(secretwatch.COMMANDS), "files searched": len(files),
         "syslog lines": syslog_lines, "found": len(found)})
    assert not found, found
