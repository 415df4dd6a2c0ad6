"""ceo: CSC Electronic Office."""

__version__ = "0.1.0"
