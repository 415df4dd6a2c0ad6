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


def current(today=None) -> str:
    """The term of `today` (a date; default: the local date)."""
    if today is None:
        import datetime  # here: `ceo --help` imports this module and need not pay for datetime
        today = datetime.date.today()
    return of_date(today)


def next_unregistered(registered, today=None) -> str:
    """The later of the current term and the term after the last registered one."""
    now = current(today)
    registered = list(registered or ())  # any iterable: an empty generator is truthy
    if not registered:
        return now
    after_last = add(max(registered, key=ordinal), 1)
    return max(now, after_last, key=ordinal)
