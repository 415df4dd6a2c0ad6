"""Club accounts: add and delete, and the steps behind them."""

from . import plugin  # noqa: F401
