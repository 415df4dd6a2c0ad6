"""A password spelled out, so that office staff can read it to a new member across the desk
(CSC's ceo showed it once on screen; a member writing it down mishears `l` and `1`)."""

from __future__ import annotations

NATO = ("alfa bravo charlie delta echo foxtrot golf hotel india juliett kilo lima mike november oscar "
        "papa quebec romeo sierra tango uniform victor whiskey x-ray yankee zulu").split()
DIGITS = "zero one two three four five six seven eight nine".split()


def spoken(char: str) -> str:
    """`K` -> `capital Kilo`, `k` -> `kilo`, `7` -> `seven`; anything else by name."""
    if "a" <= char.lower() <= "z" and char.isascii():
        word = NATO[ord(char.lower()) - ord("a")]
        return f"capital {word.capitalize()}" if char.isupper() else word
    if char.isascii() and char.isdigit():
        return DIGITS[int(char)]
    import unicodedata
    return unicodedata.name(char, f"character {ord(char):#x}").lower()


def groups(password: str, size: int = 4) -> list[str]:
    """The password in groups of `size`, as it is shown for reading (never typed with spaces)."""
    return [password[i:i + size] for i in range(0, len(password), size)]


def spelled(password: str, size: int = 4) -> list[str]:
    """One line per group: `kQ7x   kilo, capital Quebec, seven, x-ray`."""
    return [f"{group}   {', '.join(spoken(c) for c in group)}" for group in groups(password, size)]
