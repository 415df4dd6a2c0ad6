"""Screenshots of the office UI, taken in a real terminal (tmux) against the sandbox: the main
menu and the result of the new-member flow, at 80x24 and 120x40.

    .venv/bin/python docs/tui/screenshots.py      (as root; needs tmux: apt-get install tmux)

Writes docs/tui/{menu,new-member}-{80x24,120x40}.{txt,svg}. The member it adds (uwnew6, from
the sandbox's university directory) is deleted again, tombstone included; the password in
the picture was that throwaway sandbox account's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from sandbox import control  # noqa: E402

UID = "uwnew6"
TMUX = ["tmux", "-L", "ceo-docs"]  # a tmux server of our own, ended at the end


def tmux(*args, **kw):
    return subprocess.run([*TMUX, *args], check=True, capture_output=True, text=True, **kw).stdout


def screen() -> str:
    return tmux("capture-pane", "-t", "ui", "-p", "-e")


def wait_for(text: str, timeout=60):
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        shot = screen()
        if text in shot:
            return shot
        time.sleep(0.2)
    raise SystemExit(f"'{text}' did not appear:\n{screen()}")


def keys(*k):
    tmux("send-keys", "-t", "ui", *k)
    time.sleep(0.4)


def save(name: str, ansi: str, size: tuple[int, int]):
    from rich.console import Console
    from rich.text import Text
    width, _ = size
    (HERE / f"{name}.txt").write_text(Text.from_ansi(ansi).plain)
    console = Console(record=True, width=width, file=open(os.devnull, "w"), force_terminal=True,
                      color_system="truecolor")
    console.print(Text.from_ansi(ansi), end="")
    console.save_svg(str(HERE / f"{name}.svg"), title=f"ceo ({width}x{size[1]})")


def forget(uid: str):
    """The throwaway account gone, tombstone included, so the next run can add it again."""
    env = {**os.environ, "KRB5CCNAME": f"FILE:{control.STATE / 'ccache' / 'ctdalek'}"}
    subprocess.run([str(REPO / ".venv" / "bin" / "ceo"), "members", "delete", uid, "--yes"], env=env,
                   capture_output=True, stdin=subprocess.DEVNULL)
    from rootldap import RootLDAP
    import ldap3

    class Cluster:
        state = control.STATE

    def drop(conn):
        from sandbox import topology
        conn.search(f"ou=Tombstones,{topology.BASE_DN}", f"(uid={uid})", search_scope=ldap3.LEVEL)
        for dn in [r["dn"] for r in conn.response if r.get("type") == "searchResEntry"]:
            conn.delete(dn)
    RootLDAP(Cluster())._do(drop)


def main() -> int:
    pid, started = control.up()
    control.join(pid)
    env = f"KRB5CCNAME=FILE:{control.STATE / 'ccache' / 'ofstaff'} PATH={REPO / '.venv' / 'bin'}:/usr/bin:/bin"
    try:
        for size in ((80, 24), (120, 40)):
            forget(UID)
            tag = f"{size[0]}x{size[1]}"
            tmux("new-session", "-d", "-s", "ui", "-x", str(size[0]), "-y", str(size[1]),
                 f"env {env} TERM=xterm-256color ceo; sleep 600")
            save(f"menu-{tag}", wait_for("Renew membership"), size)
            keys("Enter")  # New member
            wait_for("User name")
            keys(*UID, "Enter")
            wait_for("From the university directory")
            keys("Enter")  # Next: terms
            wait_for("Terms and mail")
            keys("Enter")  # Next: confirm
            wait_for("Confirm")
            keys("Enter")  # Create
            save(f"new-member-{tag}", wait_for("Password for"), size)
            tmux("kill-session", "-t", "ui")
            forget(UID)
            print(f"saved docs/tui/menu-{tag}.svg and docs/tui/new-member-{tag}.svg")
    finally:
        subprocess.run([*TMUX, "kill-server"], capture_output=True)
        if started is not None:
            control.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
