"""ceo.terms: pure logic, no sandbox. Terms are `w` (January-April), `s` (May-August) and
`f` (September-December) plus a four-digit year; order goes through the ordinal, never the
string (`f2026` < `w2027` though "f" > "w").
"""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ceo import terms  # noqa: E402
from ceo.terms import TermError  # noqa: E402

D = datetime.date


# --- parse ------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["w2027", "s2027", "f2027", "w0000", "f9999", "s1999"])
def test_parse_accepts_well_formed(text):
    assert terms.parse(text) == text


HOSTILE = [
    "W2027", "S2027", "F2027",          # upper case season
    "w27", "w202", "w20271", "w02027",  # wrong year width
    "x2027", "a2027", "2027w", "2027",  # bad or missing season
    "w2027\n", "\nw2027", " w2027", "w2027 ", "w 2027", "w2027\x00", "\tw2027",
    "*)(uid=*", "x'; DROP", "w2027'; DROP TABLE terms; --", "../", "../w2027", "w2027/..",
    "", "w", "ws2027", "w2o27", "w-202", "w+202",
    "w２０２７",                          # full-width digits: not [0-9]
    "w٢٠٢٧",                              # Arabic-Indic digits: str.isdigit() but not [0-9]
]


@pytest.mark.parametrize("text", HOSTILE)
def test_parse_rejects_malformed_naming_value(text):
    with pytest.raises(TermError) as info:
        terms.parse(text)
    assert repr(text) in str(info.value)


@pytest.mark.parametrize("value", [None, 2027, 2027.0, b"w2027", ["w2027"], ("w2027",), {"w2027"}])
def test_parse_rejects_non_strings_naming_value(value):
    with pytest.raises(TermError) as info:
        terms.parse(value)
    assert repr(value) in str(info.value)


def test_term_error_is_value_error():
    assert issubclass(TermError, ValueError)
    with pytest.raises(ValueError):
        terms.parse("x2027")


@pytest.mark.parametrize("func", [terms.ordinal,
                                  lambda t: terms.add(t, 1),
                                  lambda t: terms.interval(t, 2),
                                  lambda t: terms.sort([t, "w2027"]),
                                  lambda t: terms.next_unregistered([t], D(2027, 1, 1))])
@pytest.mark.parametrize("bad", ["W2027", "w2027\n", "*)(uid=*", None])
def test_functions_taking_terms_validate_them(func, bad):
    with pytest.raises(TermError) as info:
        func(bad)
    assert repr(bad) in str(info.value)


# --- ordinal / from_ordinal -------------------------------------------------------------

def test_ordinal_values():
    assert terms.ordinal("w0000") == 0
    assert terms.ordinal("s0000") == 1
    assert terms.ordinal("f0000") == 2
    assert terms.ordinal("w0001") == 3
    assert terms.ordinal("w2027") == 2027 * 3
    assert terms.ordinal("f9999") == 9999 * 3 + 2


def test_ordinal_consecutive_across_years():
    seq = ["s2026", "f2026", "w2027", "s2027", "f2027", "w2028"]
    ords = [terms.ordinal(t) for t in seq]
    assert ords == list(range(ords[0], ords[0] + len(seq)))


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 6069, 6080, 6081, 6082, 9999 * 3 + 2])
def test_from_ordinal_round_trip(n):
    term = terms.from_ordinal(n)
    assert terms.parse(term) == term
    assert terms.ordinal(term) == n


@pytest.mark.parametrize("year", [0, 1, 9, 10, 999, 1000, 2026, 2027, 9999])
@pytest.mark.parametrize("season", "wsf")
def test_ordinal_round_trip(season, year):
    term = f"{season}{year:04d}"
    assert terms.from_ordinal(terms.ordinal(term)) == term


def test_from_ordinal_pads_year():
    assert terms.from_ordinal(0) == "w0000"
    assert terms.from_ordinal(3 * 7 + 2) == "f0007"
    assert terms.from_ordinal(3 * 123 + 1) == "s0123"


@pytest.mark.parametrize("n", [-1, -2, -3, -100, 10000 * 3, 10000 * 3 + 1, 10 ** 9])
def test_from_ordinal_out_of_range(n):
    with pytest.raises(TermError) as info:
        terms.from_ordinal(n)
    assert "out of range" in str(info.value)


# --- add --------------------------------------------------------------------------------

@pytest.mark.parametrize("term, n, expected", [
    ("w2027", 0, "w2027"),
    ("w2027", 1, "s2027"),
    ("w2027", 2, "f2027"),
    ("w2027", 3, "w2028"),
    ("f2026", 1, "w2027"),
    ("f2026", 2, "s2027"),
    ("s2026", 2, "w2027"),
    ("w2027", -1, "f2026"),
    ("w2027", -2, "s2026"),
    ("w2027", -3, "w2026"),
    ("s2027", -2, "f2026"),
    ("f2027", -1, "s2027"),
    ("w2027", 30, "w2037"),
    ("w2027", -30, "w2017"),
    ("f1999", 1, "w2000"),
    ("w2000", -1, "f1999"),
    ("f0009", 1, "w0010"),
    ("w0010", -1, "f0009"),
])
def test_add(term, n, expected):
    assert terms.add(term, n) == expected


@pytest.mark.parametrize("term", ["w2027", "s2026", "f2026", "f1999"])
@pytest.mark.parametrize("n", [-7, -4, -3, -1, 0, 1, 2, 3, 5, 12])
def test_add_inverse(term, n):
    assert terms.add(terms.add(term, n), -n) == term
    assert terms.ordinal(terms.add(term, n)) - terms.ordinal(term) == n


@pytest.mark.parametrize("term, n", [("f9999", 1), ("w9999", 3), ("w0000", -1), ("f0000", -3)])
def test_add_out_of_range(term, n):
    with pytest.raises(TermError):
        terms.add(term, n)


def test_add_to_the_edges():
    assert terms.add("w9999", 2) == "f9999"
    assert terms.add("f0000", -2) == "w0000"


# --- ordering / sort --------------------------------------------------------------------

def test_order_across_years():
    assert terms.ordinal("f2026") < terms.ordinal("w2027")
    assert terms.sort(["w2027", "f2026"]) == ["f2026", "w2027"]


@pytest.mark.parametrize("given, chronological", [
    # Within a year the letters sort f < s < w: the reverse of the calendar.
    (["f2027", "s2027", "w2027"], ["w2027", "s2027", "f2027"]),
    (["s2027", "w2027"], ["w2027", "s2027"]),
    (["f2027", "s2027"], ["s2027", "f2027"]),
    # Across a year boundary, with the later year's letter smaller.
    (["f2027", "s2028", "w2028"], ["f2027", "w2028", "s2028"]),
    (["s2026", "f2026", "w2027", "s2027"], ["s2026", "f2026", "w2027", "s2027"]),
])
def test_order_is_not_string_order(given, chronological):
    assert terms.sort(given) == chronological
    assert terms.sort(reversed(given)) == chronological
    ords = [terms.ordinal(t) for t in chronological]
    assert ords == sorted(ords) and len(set(ords)) == len(ords)  # the ordinal is the calendar's order
    # The latest term is the calendar's, not the string maximum.
    assert terms.next_unregistered(given, D(2000, 1, 1)) == terms.add(chronological[-1], 1)


def test_sort_orders_by_term():
    given = ["f2027", "w2027", "s2027", "f2026", "w2028", "s2026", "w2026"]
    assert terms.sort(given) == ["w2026", "s2026", "f2026", "w2027", "s2027", "f2027", "w2028"]


def test_sort_drops_duplicates():
    assert terms.sort(["s2027", "w2027", "s2027", "w2027", "f2026"]) == ["f2026", "w2027", "s2027"]


def test_sort_accepts_any_iterable():
    assert terms.sort([]) == []
    assert terms.sort(t for t in ["w2027", "f2026"]) == ["f2026", "w2027"]
    assert terms.sort({"s2027", "w2027"}) == ["w2027", "s2027"]
    assert terms.sort(("f2026",)) == ["f2026"]


def test_sort_matches_ordinal_order_over_a_long_run():
    run = terms.interval("w1998", 40)
    shuffled = run[::-1][::2] + run[::-1][1::2]
    assert terms.sort(shuffled) == run


# --- interval ---------------------------------------------------------------------------

@pytest.mark.parametrize("count", range(0, 10))
def test_interval_lengths(count):
    got = terms.interval("s2026", count)
    assert len(got) == count
    assert got == [terms.add("s2026", i) for i in range(count)]
    assert terms.sort(got) == got                  # consecutive, increasing, distinct


def test_interval_contents():
    assert terms.interval("w2027", 0) == []
    assert terms.interval("w2027", 1) == ["w2027"]
    assert terms.interval("s2026", 4) == ["s2026", "f2026", "w2027", "s2027"]
    assert terms.interval("f2026", 3) == ["f2026", "w2027", "s2027"]


def test_interval_negative_count_is_empty():
    assert terms.interval("w2027", -1) == []


def test_interval_to_the_upper_edge():
    assert terms.interval("s9999", 2) == ["s9999", "f9999"]
    with pytest.raises(TermError):
        terms.interval("s9999", 3)


def test_interval_validates_start_even_when_empty():
    with pytest.raises(TermError):
        terms.interval("W2027", 0)


# --- of_date / current ------------------------------------------------------------------

@pytest.mark.parametrize("day, expected", [
    (D(2027, 1, 1), "w2027"),
    (D(2027, 2, 28), "w2027"),
    (D(2027, 3, 15), "w2027"),
    (D(2027, 4, 30), "w2027"),
    (D(2027, 5, 1), "s2027"),
    (D(2027, 6, 30), "s2027"),
    (D(2027, 7, 1), "s2027"),
    (D(2027, 8, 31), "s2027"),
    (D(2027, 9, 1), "f2027"),
    (D(2027, 10, 31), "f2027"),
    (D(2027, 11, 30), "f2027"),
    (D(2027, 12, 31), "f2027"),
    (D(2026, 12, 31), "f2026"),
    (D(2028, 2, 29), "w2028"),
    (D(1, 1, 1), "w0001"),
    (D(999, 9, 1), "f0999"),
    (D(9999, 12, 31), "f9999"),
])
def test_of_date_boundaries(day, expected):
    assert terms.of_date(day) == expected
    assert terms.current(day) == expected


@pytest.mark.parametrize("month", range(1, 13))
def test_of_date_every_month(month):
    season = "w" if month <= 4 else "s" if month <= 8 else "f"
    for day in (1, 15, 28):
        assert terms.of_date(D(2027, month, day)) == f"{season}2027"


def test_of_date_rollover_day_pairs():
    assert terms.of_date(D(2026, 12, 31)) == "f2026"
    assert terms.of_date(D(2027, 1, 1)) == "w2027"
    assert terms.add(terms.of_date(D(2026, 12, 31)), 1) == terms.of_date(D(2027, 1, 1))
    assert terms.add(terms.of_date(D(2027, 4, 30)), 1) == terms.of_date(D(2027, 5, 1))
    assert terms.add(terms.of_date(D(2027, 8, 31)), 1) == terms.of_date(D(2027, 9, 1))


def test_of_date_accepts_datetime():
    assert terms.of_date(datetime.datetime(2027, 4, 30, 23, 59, 59)) == "w2027"
    assert terms.of_date(datetime.datetime(2027, 5, 1, 0, 0, 0)) == "s2027"


@pytest.mark.parametrize("today, expected", [(D(2031, 3, 9), "w2031"), (D(2031, 7, 9), "s2031"),
                                             (D(2031, 11, 9), "f2031")])
def test_current_defaults_to_today(monkeypatch, today, expected):
    class Today(datetime.date):
        @classmethod
        def today(cls):
            return today
    monkeypatch.setattr(datetime, "date", Today)  # the module terms.current() imports
    assert terms.current() == expected
    assert terms.current(D(2027, 5, 1)) == "s2027"  # a date given wins over today


# --- next_unregistered ------------------------------------------------------------------

TODAY = D(2027, 6, 15)   # s2027


@pytest.mark.parametrize("registered", [[], (), set(), None])
def test_next_unregistered_no_terms_is_current(registered):
    assert terms.next_unregistered(registered, TODAY) == "s2027"


def test_next_unregistered_empty_iterator_is_current():
    assert terms.next_unregistered(iter([]), TODAY) == "s2027"


@pytest.mark.parametrize("registered", [
    ["w2020"],
    ["f2026"],                          # after_last would be w2027, still before now
    ["s2026", "f2026"],
    ["w2027"],                          # after_last == now
])
def test_next_unregistered_only_past_terms_is_current(registered):
    assert terms.next_unregistered(registered, TODAY) == "s2027"


def test_next_unregistered_current_term_registered():
    assert terms.next_unregistered(["s2027"], TODAY) == "f2027"
    assert terms.next_unregistered(["w2027", "s2027"], TODAY) == "f2027"


@pytest.mark.parametrize("registered, expected", [
    (["f2027"], "w2028"),
    (["s2027", "f2027", "w2028"], "s2028"),
    (["w2030"], "s2030"),
    (["w2020", "f2027"], "w2028"),      # gap: still after the last one
])
def test_next_unregistered_future_terms(registered, expected):
    assert terms.next_unregistered(registered, TODAY) == expected


@pytest.mark.parametrize("registered, today, expected", [
    (["w2027", "f2026"], D(2026, 10, 1), "s2027"),   # last is w2027, not f2026
    (["f2026", "w2027"], D(2026, 10, 1), "s2027"),
    (["w2028", "f2027", "s2027"], TODAY, "s2028"),
    (["f2026", "w2027"], D(2027, 1, 1), "s2027"),
    (["f2026", "w2027"], D(2027, 5, 1), "s2027"),
    # string max would pick the wrong last term in these:
    (["s2027", "w2027"], D(2027, 1, 1), "f2027"),    # string max "w2027" -> s2027
    (["f2027", "s2027"], D(2027, 1, 1), "w2028"),    # string max "s2027" -> f2027
    (["w2027", "s2027", "f2027"], D(2027, 1, 1), "w2028"),
])
def test_next_unregistered_unordered_input(registered, today, expected):
    assert terms.next_unregistered(registered, today) == expected


def test_next_unregistered_duplicates():
    assert terms.next_unregistered(["s2027", "s2027", "s2027"], TODAY) == "f2027"
    assert terms.next_unregistered(["f2026", "w2027", "f2026", "w2027"], D(2026, 10, 1)) == "s2027"
    assert terms.next_unregistered(["w2020", "w2020"], TODAY) == "s2027"


def test_next_unregistered_accepts_any_iterable():
    assert terms.next_unregistered(("f2027", "w2027"), TODAY) == "w2028"
    assert terms.next_unregistered({"f2027", "w2027"}, TODAY) == "w2028"
    assert terms.next_unregistered(iter(["f2027", "w2027"]), TODAY) == "w2028"
    assert terms.next_unregistered((t for t in ["w2020"]), TODAY) == "s2027"


@pytest.mark.parametrize("today", [D(2027, 1, 1), D(2027, 4, 30), D(2027, 5, 1),
                                   D(2027, 8, 31), D(2027, 9, 1), D(2027, 12, 31)])
def test_next_unregistered_on_season_boundaries(today):
    now = terms.of_date(today)
    assert terms.next_unregistered([], today) == now
    assert terms.next_unregistered([terms.add(now, -1)], today) == now
    assert terms.next_unregistered([now], today) == terms.add(now, 1)


def test_next_unregistered_year_rollover():
    assert terms.next_unregistered(["f2026"], D(2026, 12, 31)) == "w2027"
    assert terms.next_unregistered(["f2026"], D(2027, 1, 1)) == "w2027"


def test_next_unregistered_never_before_now_nor_registered():
    for today in (D(2026, 3, 1), D(2026, 7, 1), D(2026, 11, 1), D(2027, 2, 1)):
        now = terms.ordinal(terms.of_date(today))
        for registered in ([], ["f2026"], ["w2027", "f2026"], ["s2025", "w2028"], ["s2026"] * 3):
            got = terms.ordinal(terms.next_unregistered(registered, today))
            assert got >= now
            assert all(got > terms.ordinal(t) for t in registered)


def test_next_unregistered_past_the_last_term():
    with pytest.raises(TermError):
        terms.next_unregistered(["f9999"], TODAY)


def test_next_unregistered_malformed_among_good():
    with pytest.raises(TermError) as info:
        terms.next_unregistered(["w2027", "W2028"], TODAY)
    assert "'W2028'" in str(info.value)
