"""Opening the office UI: a whole `ceo tui` process, in a pseudo-terminal, from its start until
the menu is drawn, measured side by side (interleaved, medians) with what it is made of.

    .venv/bin/python bench/tui.py        (as root; brings the sandbox up if it is down)

  python -c pass                       the interpreter's floor
  python -c 'import textual.app'       the UI library's import
  ceo whoami --json                    the same sign-in over SSH, without the UI
  ceo tui, until the menu is drawn     the whole thing (it signs in, then draws the menu)

Targets: the menu in under a second, and under 1.5x `ceo whoami` (the UI signs in while
textual is imported, so the UI's own cost is what is left of that import and the drawing).
"""

from __future__ import annotations

import os
import pty
import select
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sandbox import control  # noqa: E402

PY = str(REPO / ".venv" / "bin" / "python")
CEO = str(REPO / ".venv" / "bin" / "ceo")
USER = "ofstaff"
MARKER = b"Renew membership"  # a desk entry: drawn once the menu is filled from whoami


def until_drawn(env, columns=120, rows=40, timeout=30.0) -> float:
    """ms from fork until the menu's marker appears on the terminal; then the UI is closed."""
    t0 = time.perf_counter()
    pid, fd = pty.fork()
    if pid == 0:
        os.environ.clear()
        os.environ.update(env, COLUMNS=str(columns), LINES=str(rows), TERM="xterm-256color")
        os.execv(CEO, [CEO, "tui"])
    import fcntl
    import struct
    import termios
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    seen = b""
    try:
        while MARKER not in seen:
            if time.perf_counter() - t0 > timeout:
                raise RuntimeError(f"the menu was not drawn in {timeout} s: {seen[-300:]!r}")
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    seen += os.read(fd, 65536)
                except OSError:
                    raise RuntimeError(f"ceo tui ended before drawing the menu: {seen[-300:]!r}") from None
        return (time.perf_counter() - t0) * 1000
    finally:
        os.kill(pid, signal.SIGTERM)
        try:
            while select.select([fd], [], [], 1)[0] and os.read(fd, 65536):
                pass
        except OSError:
            pass
        os.waitpid(pid, 0)
        os.close(fd)


def run(argv, env) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                   env=env, check=True)
    return (time.perf_counter() - t0) * 1000


def main(n: int = 15) -> int:
    pid, started = control.up()
    control.join(pid)
    env = {**os.environ, "KRB5CCNAME": f"FILE:{control.STATE / 'ccache' / USER}",
           "PATH": f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}"}
    measures = {
        "python -c pass": lambda: run([PY, "-c", "pass"], env),
        "import textual.app": lambda: run([PY, "-c", "import textual.app"], env),
        "ceo whoami --json": lambda: run([CEO, "whoami", "--json"], env),
        "ceo tui, menu drawn": lambda: until_drawn(env),
    }
    try:
        for measure in measures.values():  # warm the caches
            measure()
        times = {name: [] for name in measures}
        for _ in range(n):
            for name, measure in measures.items():
                times[name].append(measure())
    finally:
        if started is not None:
            control.down()
    m = {name: statistics.median(t) for name, t in times.items()}
    for name, ms in m.items():
        print(f"{name:24} {ms:7.0f} ms median of {n}")
    ratio = m["ceo tui, menu drawn"] / m["ceo whoami --json"]
    print(f"menu drawn / ceo whoami: {ratio:.2f}x (target < 1.5x); "
          f"menu drawn in {m['ceo tui, menu drawn']:.0f} ms (target < 1000 ms)")
    ok = ratio < 1.5 and m["ceo tui, menu drawn"] < 1000
    print("all targets met" if ok else "a target was missed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
