"""`ceo motd`: the club's message of the day, an example of a ceo plugin (docs/plugins.md).

    ceo motd                                   # anyone: the message, if there is one
    ceo motd set "Office closed Friday" --until 2027-01-16
    ceo motd set "Shells down Sunday 9-11" "for the NFS upgrade" --until 2027-02-01 --announce
    ceo motd clear --check

The message is a small JSON file on the homes host (`[motd] file`), where the helper writes it
as root. Syscom keeps it; office and exec (`[motd] editors`) may post notices, messages that
end within `[motd] notice_days` (7) days. A lasting message is syscom's to post, replace or
take down, and so is mailing it to the club (`--announce`, `[motd] announce_to`).

This module is imported by `ceo --help` too: keep its top level light (no datetime, no rich).
"""

from __future__ import annotations

import json
import os

from ceo.errors import BadInput, NotPermitted
from ceo.output import safe
from ceo.plugin import Flag, Param, Plugin, Str, show

plugin = Plugin("motd", "The club's message of the day: show, set, clear", default_verb="show")

MAX_LINES = 5


# --- parameters: each checks its value on the client and again, authoritatively, in the helper --

class Day(Param):
    """A day as YYYY-MM-DD, today or later. It stays text: requests travel as JSON."""

    def __init__(self, name, help="", **kw):
        super().__init__(name, help, pattern=r"[0-9]{4}-[0-9]{2}-[0-9]{2}", describe="a day, YYYY-MM-DD",
                         metavar="YYYY-MM-DD", **kw)

    def convert_one(self, value):
        value = super().convert_one(value)  # text, length, no control characters, the pattern
        try:
            day = _date(value)
        except ValueError:
            raise BadInput(f"{self.name}: {show(value)} is not a day of the calendar") from None
        if day < _today():
            raise BadInput(f"{self.name}: {value} is in the past")
        return value


class Lines(Str):
    """The message, one argument per line: a few short lines, not all blank."""

    def convert(self, value):
        lines = super().convert(value)  # each line as a Str: no newline or escape sequence in it
        if len(lines) > MAX_LINES:
            raise BadInput(f"{self.name}: {len(lines)} lines, at most {MAX_LINES}")
        if not any(line.strip() for line in lines):
            raise BadInput(f"{self.name}: empty (to take the message down: ceo motd clear)")
        return lines


MESSAGE = [Lines("message", "the message, one argument per line", positional=True, multiple=True,
                 max_length=200, metavar="LINE"),
           Day("until", "the last day it is shown (office and exec: within a week)")]


# --- who may: `allow` roles in the declarations, and these two rules --------------------------
# ceo's own rules live in ceo/policy.py; a plugin of its own keeps its rules here, named in its
# declarations, so that the helper applies them before the verb runs. The verb bodies never decide.

def editors(ctx, args):
    """Permit: the members of `[motd] editors` (office and exec) may post and clear notices.
    True admits; None leaves the decision to the roles (a text would refuse, saying why)."""
    return True if set(ctx.config.getlist("motd", "editors", "office exec")) & ctx.groups else None


def notices_only(ctx, args):
    """Guard: all but syscom post only notices (ending within `[motd] notice_days`), and never
    replace or take down a lasting message, which is syscom's."""
    if "syscom" in ctx.groups:
        return
    last = _last_notice_day(ctx)
    if "message" in args and not (args["until"] and _date(args["until"]) <= last):
        raise NotPermitted(f"only syscom posts a message shown past {last}: give --until {last} or sooner")
    shown = _read(ctx)
    if shown and _current(shown) and not (shown["until"] and _date(shown["until"]) <= last):
        raise NotPermitted(f"the message shown now lasts past {last}: only syscom replaces or clears it")


# --- the verbs ---------------------------------------------------------------------------------

def render(console, result):
    """How a person sees the result (--json prints the result itself instead)."""
    message = result.get("message")
    if not message:
        console.print("no message of the day")
        return
    from rich.panel import Panel  # imported when a result is printed, never by `ceo --help`
    until = f", until {message['until']}" if message["until"] else ""
    # Text from the file is printed as text: safe() escapes rich's markup and control characters.
    console.print(Panel("\n".join(safe(line) for line in message["lines"]), title="message of the day",
                        expand=False))
    console.print(f"[dim]{safe(message['by'])}, {message['at']}{until}[/]")


@plugin.verb("show", "Show the message of the day: ceo motd", role="homes", allow=("any",), render=render)
def show_(ctx):
    message = _read(ctx)
    return {"message": message if message and _current(message) else None}


@plugin.composite("set", "Post the message of the day: ceo motd set 'Office closed Friday' --until 2027-01-16",
                  allow=("syscom",), permit=editors, check=True, render=render,
                  params=[*MESSAGE, Flag("announce", "also mail it to the club (syscom)")])
def set_(run, message, until, announce):
    # A composite verb runs in the client: each step is a helper verb on its role's host. If the
    # mail is refused or fails, the homes host's helper undoes the write (its step's undo).
    run.prepare(["homes", "mail"] if announce else ["homes"])  # every host answers before any change
    result = run.step("motd.write", {"message": message, "until": until}, role="homes",
                      describe="the message of the day")
    if announce:  # last: mail cannot be taken back
        run.step("motd.announce", {"message": message, "until": until}, role="mail",
                 describe="mail the message to the club")
    return result


@plugin.verb("write", "Step: write the message on the homes host", role="homes", allow=("syscom",),
             permit=editors, guard=notices_only, mutating=True, check=True, hidden=True, params=MESSAGE)
def write(ctx, message, until):
    new = {"lines": message, "until": until, "by": ctx.caller, "at": _today().isoformat()}
    old = _read(ctx)
    if old and (old["lines"], old["until"]) == (message, until):
        # Nothing to do: said once, no audit record, and nothing for a later failure to undo.
        return {**ctx.unchanged("motd", "the message of the day is already that"), "message": old}
    # The step and how to undo it: if a later step fails, the helper puts the old file back.
    ctx.step("motd", lambda: _write(ctx, new), lambda: _write(ctx, old),
             describe="set the message of the day")
    return ctx.changed(message=new)


@plugin.verb("announce", "Step: mail the message to the club", role="mail", allow=("syscom",),
             mutating=True, check=True, hidden=True, params=MESSAGE)
def announce(ctx, message, until):
    from ceo.services import mail  # the only code that talks to SMTP
    to = ctx.config.get("motd", "announce_to", f"csc-general@{ctx.config.get('ceo', 'domain')}")
    body = "\n".join(message) + (f"\n\n(shown until {until})" if until else "") + "\n"
    ctx.step("mail", lambda: mail.send(ctx, to=("", to), subject=f"Message of the day: {message[0][:60]}",
                                       body=body, sender=(ctx.caller, mail.address(ctx.config, ctx.caller))),
             describe=f"mailed the message to {to}")  # no undo: this step must come last
    return ctx.changed(to=to)


@plugin.verb("clear", "Take the message of the day down: ceo motd clear", role="homes", allow=("syscom",),
             permit=editors, guard=notices_only, mutating=True, check=True)
def clear(ctx):
    old = _read(ctx)
    if old is None:
        return ctx.unchanged("motd", "there is no message of the day")
    ctx.step("motd", lambda: _write(ctx, None), lambda: _write(ctx, old), describe="took the message down")
    return ctx.changed(message=None)


# --- the file ----------------------------------------------------------------------------------

def _path(ctx) -> str:
    return ctx.config.get("motd", "file", "/var/lib/ceo/motd.json")


def _read(ctx) -> dict | None:
    from ceo.services import homes  # reads as root without following links or blocking on FIFOs
    text = homes.read_file(_path(ctx))
    if not text:
        return None
    try:
        message = json.loads(text)
        return {key: message[key] for key in ("lines", "until", "by", "at")}
    except (ValueError, TypeError, KeyError):
        raise BadInput(f"{_path(ctx)} is not a message ceo wrote; ask syscom to look at it") from None


def _write(ctx, message: dict | None):
    """Replace the file at once (a new file renamed over it), or remove it (None)."""
    from ceo.services import homes
    directory, name = os.path.split(_path(ctx))
    os.makedirs(directory, mode=0o755, exist_ok=True)
    homes.write_file(directory, name, None if message is None else json.dumps(message) + "\n", 0, 0o644)


def _current(message: dict) -> bool:
    return not message["until"] or _date(message["until"]) >= _today()


def _last_notice_day(ctx):
    import datetime
    return _today() + datetime.timedelta(days=int(ctx.config.get("motd", "notice_days", "7")))


def _today():
    from ceo import terms  # ceo's date (the sandbox's tests move it with [testing] today)
    return terms.clock()


def _date(text: str):
    import datetime
    return datetime.date.fromisoformat(text)
