"""`ceo --help`, as it was last made, while nothing it was made from has changed.

Making it imports every plugin and argparse: several times what starting Python costs. The text
is kept in the user's cache (~/.cache/ceo/help, or $XDG_CACHE_HOME), with what it was made from:
every module file loaded then (ceo's, the plugins', the standard library's), the directories
plugins are found in (the bundled package, sys.path for entry points, the site dir: a plugin
added or removed changes them), and the config file (it names the site dir). Each is recorded
by mtime, size and inode, and all must be the same, as must the Python, sys.path, the terminal
width and the language, or the help is made again. Only this text is kept: which verbs a plugin
has, and who may run them, are read afresh by every other command (and rights only ever by the
helper).
"""

from __future__ import annotations

import os
import sys

MAGIC = "ceo-help 1"
_LANGUAGE = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")


def path() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "ceo", "help")


def _context() -> str:
    """What the text depends on besides files (`ceo --help` alone: $CEO_CONFIG names the config)."""
    from .cli import columns  # the width the text was made for
    width = columns()
    parts = [sys.version, sys.executable, os.environ.get("CEO_CONFIG", ""), str(width), *sys.path,
             *(os.environ.get(v, "") for v in _LANGUAGE)]
    return "\x1f".join(parts)


def _stamp(p: str) -> str:
    try:
        st = os.stat(p)
    except OSError:
        return "-"
    return f"{st.st_mtime_ns} {st.st_size} {st.st_ino}"


def load() -> str | None:
    """The kept text, if everything it was made from is as it was; else None."""
    try:
        with open(path(), encoding="utf-8") as f:
            kept = f.read()
    except (OSError, ValueError):
        return None
    head, sep, text = kept.partition("\n\n")
    lines = head.split("\n")
    if not sep or len(lines) < 2 or lines[0] != MAGIC or lines[1] != _context().replace("\n", " "):
        return None
    for line in lines[2:]:
        stamp, _, p = line.partition("\t")
        if _stamp(p) != stamp:
            return None
    return text


def store(config_path: str, site_dir: str | None, text: str):
    """Keep the text just made (a failure to write it only means it is made again next time)."""
    import plugins
    files = {m.__file__ for m in list(sys.modules.values()) if isinstance(getattr(m, "__file__", None), str)}
    files |= {*plugins.__path__, *(d or "." for d in sys.path), config_path}
    if site_dir:
        files.add(site_dir)
        if os.path.isdir(site_dir):
            files |= {os.path.join(site_dir, e) for e in os.listdir(site_dir)}
    if any("\n" in p or "\t" in p for p in files):
        return
    lines = [MAGIC, _context().replace("\n", " "), *(f"{_stamp(p)}\t{p}" for p in sorted(files))]
    target = path()
    try:
        os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
        tmp = f"{target}.{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n\n" + text)
        os.replace(tmp, target)
    except OSError:
        pass
