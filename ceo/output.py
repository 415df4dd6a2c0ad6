"""What the user sees: steps as they complete, results, one-line errors; or one JSON document.

rich is imported on first use, so `--json` runs and `ceo --help` never pay for it. When
stdout is not a terminal rich prints no colour. Its emoji codes are off: a value such as
`:smile:` in a name is printed as typed.
"""

from __future__ import annotations

import json
import re
import sys

MARKS = {"done": "[green]✓[/]", "would": "[cyan]~[/]", "warning": "[yellow]![/]", "failed": "[red]✗[/]",
         "undone": "[magenta]↶[/]", "undo-failed": "[red]![/]", "unchanged": "[dim]=[/]"}


class Output:
    def __init__(self, as_json: bool = False, verbose: bool = False):
        self.as_json, self.verbose = as_json, verbose
        self.steps: list[dict] = []
        self.warnings: list[str] = []
        self._console = self._err = None

    def prepare(self):
        """Import rich now, while the helper starts (the runner calls this meanwhile), not after
        the answer came: ~30 ms a run would otherwise wait. --json never needs it."""
        if not self.as_json:
            self.console.render_str("[b]ceo[/]")  # its markup too
            import rich.panel  # noqa: F401 (what results are drawn with: facts() and tables)
            import rich.table  # noqa: F401

    @property
    def console(self):
        if self._console is None:
            from rich.console import Console
            self._console = Console(highlight=False, emoji=False)
        return self._console

    @property
    def err_console(self):
        if self._err is None:
            from rich.console import Console
            self._err = Console(stderr=True, highlight=False, emoji=False)
        return self._err

    def event(self, where: str, event: dict):
        if "step" in event:
            record = {"host": where, **event}
            self.steps.append(record)
            if event.get("status") == "warning":
                self.warnings.append(event.get("message", ""))
            if not self.as_json:
                mark = MARKS.get(event.get("status"), "·")
                host = f" [dim]({where})[/]" if self.verbose else ""
                self.console.print(f"{mark} {safe(event.get('message', event['step']))}{host}")
        elif "progress" in event and self.verbose and not self.as_json:
            self.err_console.print(f"[dim]{safe(event['progress'])}[/]")

    def result(self, verb, result, check: bool = False):
        if self.as_json:
            ok = not (isinstance(result, dict) and result.get("exit", 0) != 0)
            doc = {"ok": ok, "result": result}
            if self.steps:
                doc["steps"] = self.steps
            if check:
                doc["check"] = True
            print(json.dumps(doc, indent=2, sort_keys=True, default=str))
            return
        if verb is not None and verb.render is not None:
            verb.render(self.console, result)
        elif result not in (None, {}, []) and not self.steps:  # step lines already said it
            self.console.print(format_value(result))
        if check:
            self.console.print("[cyan](check mode: nothing was changed)[/]")

    def error(self, err):
        if self.as_json:
            doc = {"ok": False, "error": {"name": err.name, "message": err.message, "exit": err.exit_code}}
            if getattr(err, "details", None):
                doc["error"]["details"] = err.details
            if self.steps:
                doc["steps"] = self.steps
            print(json.dumps(doc, indent=2, sort_keys=True, default=str))
        msg = err.message.splitlines()[0] if err.message else err.name
        # A message that names the command typed (`ceo members add needs ...`) already says who speaks.
        print(plain(msg) if msg.startswith("ceo ") else f"ceo: {plain(msg)}", file=sys.stderr)

    def table(self, columns, rows, title=None):
        from rich.table import Table
        table = Table(title=title, show_edge=False, header_style="bold")
        for c in columns:
            table.add_column(c)
        for row in rows:
            table.add_row(*[safe(str(v)) for v in row])
        self.console.print(table)


def facts(console, title: str, rows, below=None):
    """A panel of labelled facts, in a person's words ("User number", never uidNumber), with
    `below` (a table) inside it under them. Values are made safe here; a list is joined by
    spaces, an empty value is "-"."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for label, value in rows:
        shown = " ".join(map(str, value)) if isinstance(value, (list, tuple)) else _scalar(value)
        grid.add_row(label, safe(shown or "-"))
    body = grid if below is None else Group(grid, "", below)
    from rich.text import Text
    # The title as Text: a str would be read as markup with emoji codes, whatever the console says.
    console.print(Panel(body, title=Text(plain(title)), title_align="left", expand=False))


def format_value(value, indent: int = 0) -> str:
    pad = "  " * indent
    if isinstance(value, dict):
        lines = []
        for k, v in value.items():
            if isinstance(v, (dict, list)) and v:
                lines.append(f"{pad}{safe(str(k))}:")
                lines.append(format_value(v, indent + 1))
            else:
                lines.append(f"{pad}{safe(str(k))}: {safe(_scalar(v))}")
        return "\n".join(lines)
    if isinstance(value, list):
        return "\n".join(f"{pad}- {safe(_scalar(v)) if not isinstance(v, (dict, list)) else format_value(v, indent + 1).lstrip()}"
                         for v in value)
    return pad + safe(_scalar(value))


def _scalar(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, list):
        return ", ".join(map(str, v)) or "-"
    return str(v)


# Text from LDAP or Mailman (names, descriptions, shells) reaches staff terminals: control
# characters (escape sequences that retitle, recolour or rewrite the screen) and the Unicode
# bidirectional overrides (which reorder what is shown) are printed as visible escapes.
# (Compiled, by re's cache, only for text that is not printable ASCII.)
_UNSAFE = "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"


def plain(text) -> str:
    """Text made safe for a terminal."""
    text = str(text)
    if text.isascii() and text.isprintable():  # ASCII's only unsafe characters are the controls
        return text
    return re.sub(_UNSAFE, lambda m: f"\\u{ord(m.group()):04x}" if ord(m.group()) > 0xff else f"\\x{ord(m.group()):02x}",
                  text)


def safe(text) -> str:
    """Text made safe for a terminal and for rich (its markup escaped): for every value a
    renderer prints."""
    return plain(text).replace("[", "\\[")



def count(n: int, noun: str) -> str:
    """`1 member`, `2 members`."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
