"""Membership terms: `w2027` (January-April), `s2027` (May-August), `f2027` (September-December).

A term is kept as its string; arithmetic goes through an ordinal (three terms a year), so
ordering, adding and ranges are exact and never depend on string comparison.
"""

from __future__ import annotations

import re

SEASONS = "wsf"
_TERM = re.compile(r"[wsf][0-9]{4}")


class TermError(ValueError):
    """A string that is not a term."""


def parse(text: str) -> str:
    """Return `text` if it is a well-formed term, else raise TermError naming it."""
    if not isinstance(text, str) or not _TERM.fullmatch(text):
        raise TermError(f"malformed term {text!r}: expected a season letter w, s or f and a year, e.g. w2027")
    return text


def ordinal(term: str) -> int:
    term = parse(term)
    return int(term[1:]) * 3 + SEASONS.index(term[0])


def from_ordinal(n: int) -> str:
    year, season = divmod(n, 3)
    if not 0 <= year <= 9999:
        raise TermError(f"term out of range (year {year})")
    return f"{SEASONS[season]}{year:04d}"


def add(term: str, n: int) -> str:
    return from_ordinal(ordinal(term) + n)


def sort(terms) -> list[str]:
    return sorted(set(terms), key=ordinal)


def interval(start: str, count: int) -> list[str]:
    """`count` consecutive terms beginning at `start`."""
    base = ordinal(start)
    return [from_ordinal(base + i) for i in range(count)]


def of_date(day) -> str:
    return f"{SEASONS[(day.month - 1) // 4]}{day.year:04d}"


def start(term: str):
    """The first day of a term (January, May or September 1st)."""
    import datetime
    term = parse(term)
    return datetime.date(int(term[1:]), 1 + 4 * SEASONS.index(term[0]), 1)


def clock(config=None):
    """ceo's date: the local date, unless the config sets `[testing] today = YYYY-MM-DD`.

    For tests only: the sandbox's tests move the clock of every ceo process (client and
    helpers, which run under sudo with a reset environment and so cannot be told by an
    environment variable) by writing that key into the sandbox's /etc/csc/ceo.ini. `config`:
    a loaded Config; None reads ceo.ini itself ($CEO_CONFIG outside sudo, as the client and a
    local helper do), re-read whenever the file changes. Never set it in production."""
    import datetime  # here: `ceo --help` imports this module and need not pay for datetime
    fixed = config.get("testing", "today") if config is not None else _file_clock()
    if not fixed:
        return datetime.date.today()
    try:
        return datetime.date.fromisoformat(fixed.strip())
    except ValueError:
        raise TermError(f"[testing] today = {fixed.strip()[:40]!r} is not a date (YYYY-MM-DD)") from None


_clock_cache: dict = {}


def _file_clock():
    import os
    from .config import DEFAULT_CONFIG, Config
    through_sudo = os.getuid() == 0 and "SUDO_USER" in os.environ  # as the helper decides (helper.Session)
    path = (None if through_sudo else os.environ.get("CEO_CONFIG")) or DEFAULT_CONFIG
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (path, st.st_mtime_ns, st.st_size, st.st_ino)
    if key not in _clock_cache:
        try:
            _clock_cache.clear()
            _clock_cache[key] = Config.load(path).get("testing", "today")
        except Exception:  # an unreadable config: the caller's own load says why
            return None
    return _clock_cache[key]


def current(today=None) -> str:
    """The term of `today` (a date; default: ceo's date, see clock())."""
    return of_date(clock() if today is None else today)


def next_unregistered(registered, today=None) -> str:
    """The later of the current term and the term after the last registered one."""
    now = current(today)
    registered = list(registered or ())  # any iterable: an empty generator is truthy
    if not registered:
        return now
    after_last = add(max(registered, key=ordinal), 1)
    return max(now, after_last, key=ordinal)
