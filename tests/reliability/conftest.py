"""The reliability suite's summary: each test adds its rows, printed as one table at the end
of the run (`pytest tests/reliability` or the whole suite) and quoted in the README."""

from __future__ import annotations

import pytest

SUMMARY: dict[str, dict] = {}  # area -> {figure: value}


@pytest.fixture(scope="session")
def summary():
    return SUMMARY


def pytest_terminal_summary(terminalreporter):
    if not SUMMARY:
        return
    terminalreporter.section("reliability and security, measured")
    width = max(len(area) for area in SUMMARY)
    for area, figures in SUMMARY.items():
        terminalreporter.write_line(f"{area:{width}}  " + ", ".join(f"{k}: {v}" for k, v in figures.items()))
