"""What a plugin declares: its verbs, their typed parameters, where they run and who may run them.

A plugin module holds `plugin = Plugin(...)` and a list of decorated functions. The same
declarations build the client's argument parser and the helper's validation and policy, so
the two can never disagree. This module stays light: `ceo --help` imports every plugin.

    plugin = Plugin("lists", "Mailman 3 mailing lists")

    @plugin.verb("subscribe", "Subscribe someone to a list", role="mail",
                 allow=("self", "office", "syscom"), target="who", mutating=True, check=True,
                 params=[ListName("list"), Str("who", positional=True)],
                 example="ceo lists subscribe csc-general alice --check")
    def subscribe(ctx, list, who): ...

`help` is the verb's one-line summary; `example` one command line, or several, as a user
types it (`# ...` after it says what it does): both are in `ceo PLUGIN VERB --help`, and a
test parses every example with the verb's own parser.

Who may: the roles in `allow`, and the rules `permit` (who else may) and `guard` (what even
an admitted caller may not), all from `ceo/policy.py`, which says what each means.

A verb's result `{"changed": false, ...}` says it found nothing to do: reported as unchanged,
and a client step that changed nothing registers no undo.
"""

from __future__ import annotations

import re

from .errors import BadInput
from .policy import ROLES

INVENTORY_ROLES = ("ldap", "kerberos", "homes", "databases", "mail")  # ceo.inventory.ROLES, without its imports
# Patterns compiled (by re's cache) only for text that is not ASCII: ~0.5 ms off every run.
_CONTROL = r"[\x00-\x1f\x7f-\x9f]"
# Characters that change how text is shown, not what it says: the bidirectional
# controls (which reorder a line on every screen that shows it), zero-width and invisible marks.
_INVISIBLE = "[\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]"
MAX_MARKS = 2  # combining marks on one letter: a real name needs one or two (ệ), "Zalgo" text dozens


def unsafe_text(value: str) -> str | None:
    """What is wrong with a text value shown to people and stored in LDAP, or None."""
    if value.isascii():  # its only unprintable characters are the controls; no marks of any kind
        return None if value.isprintable() else "contains a control character (newline?)"
    if re.search(_CONTROL, value):
        return "contains a control character (newline?)"
    if re.search(_INVISIBLE, value):
        return "contains an invisible or bidirectional formatting character"
    if any(ord(c) >= 0x300 for c in value):  # only then: unicodedata costs an import
        import unicodedata
        run = 0
        for i, c in enumerate(value):
            run = run + 1 if unicodedata.combining(c) else 0
            if run and (i == 0 or run > MAX_MARKS):
                return f"has combining marks {'with no letter' if i == 0 else 'stacked on one letter'}"
    return None


def show(value, limit: int = 60) -> str:
    """A value quoted for an error message: on one line, and never a wall of text."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "...'"


class Param:
    """A typed parameter. Positional ones are `VALUE`, the rest `--name VALUE` (or flags)."""

    kind = "str"

    def __init__(self, name, help="", *, positional=False, required=None, multiple=False, default=None,
                 pattern=None, describe=None, choices=None, secret=False, metavar=None, max_length=1024,
                 cli=True, label=None):
        self.name = name
        self.help = help
        self.positional = positional
        self.required = positional if required is None else required
        self.multiple = multiple
        self.default = [] if multiple and default is None else default
        self.pattern = pattern  # compiled on first use (re caches it): `ceo --help` never needs it
        self.describe = describe  # what the pattern means, for error messages
        self.choices = choices
        self.secret = secret  # printed as *** in audit records and logs
        self.metavar = metavar
        self.max_length = max_length
        self.cli = cli  # False: set by the client code, not typed by users
        self.label = label  # what a form calls it, if not its name (`cn`: "Full name")

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")

    def convert(self, value):
        """Validate (and normalise) a value, or raise BadInput naming the parameter."""
        if self.multiple:
            if not isinstance(value, (list, tuple)):
                value = [value]
            return [self.convert_one(v) for v in value]
        return self.convert_one(value)

    def shown(self, value) -> str:
        """A value as an error message may quote it: a secret one never."""
        return "the value given" if self.secret else show(value)

    def convert_one(self, value):
        if not isinstance(value, str):
            raise BadInput(f"{self.name}: expected text, got {type(value).__name__}")
        if len(value) > self.max_length:
            raise BadInput(f"{self.name}: longer than {self.max_length} characters")
        problem = unsafe_text(value)
        if problem:
            raise BadInput(f"{self.name}: {self.shown(value)} {problem}")
        if not value.strip() and not (self.pattern and re.fullmatch(self.pattern, value)):
            raise BadInput(f"{self.name}: is empty")  # '' is a value only where the pattern says so
        if self.choices and value not in self.choices:
            raise BadInput(f"{self.name}: {self.shown(value)} is not one of {', '.join(self.choices)}")
        if self.pattern and not re.fullmatch(self.pattern, value):
            raise BadInput(f"{self.name}: {self.shown(value)} is not {self.describe or 'valid'}")
        return value


class Str(Param):
    pass


class Int(Param):
    kind = "int"

    def __init__(self, name, help="", *, min=None, max=None, **kw):
        super().__init__(name, help, **kw)
        self.min, self.max = min, max

    def convert_one(self, value):
        if isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,9}", value):
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise BadInput(f"{self.name}: expected a whole number, got {self.shown(value)}")
        if (self.min is not None and value < self.min) or (self.max is not None and value > self.max):
            raise BadInput(f"{self.name}: {self.shown(value)} is outside {self.min}..{self.max}")
        return value


class Flag(Param):
    kind = "flag"

    def __init__(self, name, help="", **kw):
        super().__init__(name, help, default=False, **kw)

    def convert_one(self, value):
        if not isinstance(value, bool):
            raise BadInput(f"{self.name}: expected true or false, got {self.shown(value)}")
        return value


# Common parameter types, validated the same way everywhere.
def Uid(name="uid", help="a user name", **kw):
    return Str(name, help, pattern=r"[a-z][a-z0-9-]{0,31}", metavar=kw.pop("metavar", name.upper()),
               describe="a user name (a lower-case letter, then letters, digits or '-', at most 32)", **kw)


def GroupName(name="group", help="a group name", **kw):
    return Str(name, help, pattern=r"[a-z][a-z0-9_-]{0,31}", metavar=kw.pop("metavar", name.upper()),
               describe="a group name (a lower-case letter, then letters, digits, '_' or '-')", **kw)


# An address ceo writes into ~/.forward or hands to Mailman: letters, digits and ._%+- before
# the @, nothing an MTA would read as a pipe (`|cmd`), a file (`/path`) or an include (`:`).
EMAIL = r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+"


def Email(name="address", help="an email address", **kw):
    return Str(name, help, pattern=EMAIL, metavar=kw.pop("metavar", "ADDR"), describe="an email address", **kw)


def Term(name="term", help="a term, e.g. w2027", **kw):
    return Str(name, help, pattern=r"[wsf][0-9]{4}", metavar="TERM",
               describe="a term: w, s or f and a four-digit year, e.g. w2027", **kw)


class Verb:
    def __init__(self, plugin, name, help, fn, *, role=None, allow=("any",), params=(), check=False,
                 mutating=False, hidden=False, confirm=None, target=None, composite=False, render=None,
                 permit=None, guard=None, audit_rows=False, example=(), roles=(), leftover=None):
        for r in allow:
            if r not in ROLES:
                raise ValueError(f"{plugin.name}.{name}: unknown role {r!r} in allow")
        if not composite and role is None:
            raise ValueError(f"{plugin.name}.{name}: a helper verb needs the inventory role that runs it")
        self.plugin, self.name, self.help, self.fn = plugin, name, help, fn
        self.role, self.allow, self.params = role, tuple(allow), list(params)
        self.check, self.mutating, self.hidden, self.confirm = check, mutating, hidden, confirm
        self.composite, self.render = composite, render
        self.examples = (example,) if isinstance(example, str) else tuple(example)
        # Rules from ceo/policy.py: permit(ctx, args) -> True admits a caller the roles did
        # not (a reason string refuses); guard(ctx, args) raises NotPermitted for what even
        # an admitted caller may not do.
        self.permit, self.guard = permit, guard
        # A batch verb audits each row itself (ctx.audit) instead of the request as a whole.
        self.audit_rows = audit_rows
        # A composite verb's roles: the runner opens their hosts' sessions in parallel as it starts.
        for r in roles:
            if r not in INVENTORY_ROLES:
                raise ValueError(f"{plugin.name}.{name}: unknown inventory role {r!r} in roles")
        self.roles = tuple(roles)
        # A composite verb whose undo can fail (a service died mid-way): the command that
        # removes what it left, e.g. "ceo members delete {uid} --yes"; its error names it.
        self.leftover = leftover
        positional = [p.name for p in self.params if p.positional]
        self.target = target or (positional[0] if positional else None)

    @property
    def qualname(self) -> str:
        return f"{self.plugin.name}.{self.name}"

    @property
    def command(self) -> str:
        """What the user types: `ceo members add` (messages name this, never the qualname)."""
        return f"ceo {self.plugin.name} {self.name}"

    def validate(self, args: dict) -> dict:
        """The helper's (authoritative) check of a request's arguments."""
        if not isinstance(args, dict):
            raise BadInput("args must be an object")
        known = {p.name: p for p in self.params}
        unknown = sorted(set(args) - set(known))
        if unknown:
            raise BadInput(f"{self.qualname}: unknown parameter {unknown[0]!r}")
        out = {}
        for name, p in known.items():
            if name in args and args[name] is not None:
                out[name] = p.convert(args[name])
            elif p.required:
                raise BadInput(f"{self.qualname}: missing parameter {name!r}")
            else:
                out[name] = list(p.default) if isinstance(p.default, list) else p.default
        return out

    def redact(self, args: dict) -> dict:
        secret = {p.name for p in self.params if p.secret}
        return {k: ("***" if k in secret and v else v) for k, v in args.items()}


class Plugin:
    def __init__(self, name: str, help: str, default_verb: str | None = None):
        self.name, self.help, self.default_verb = name, help, default_verb
        self.verbs: dict[str, Verb] = {}
        self.source = None  # set by discovery: where it was found

    def verb(self, name, help, **kw):
        def register(fn):
            self.verbs[name] = Verb(self, name, help, fn, **kw)
            return fn
        return register

    def composite(self, name, help, **kw):
        """A verb made of steps on several hosts; `fn(plan, **args)` lists the steps."""
        def register(fn):
            self.verbs[name] = Verb(self, name, help, fn, composite=True, **kw)
            return fn
        return register
