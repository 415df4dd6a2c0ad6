"""A verb's declared parameters as form fields, checked exactly as the helper checks them.

The field for a parameter is chosen by its declaration: a flag is a checkbox, a parameter with
choices a select, a secret a masked input, everything else a line of text (a repeatable one
takes words as the shell does: `w2027 s2027`, `''` for an empty value). The message shown
beside a field is the parameter's own `convert` error, the one the CLI prints, so nothing
that would be refused is ever sent.
"""

from __future__ import annotations

import shlex

from ..errors import BadInput


def fields(verb, presets: dict) -> list:
    """The parameters a person fills in: those the CLI takes, minus what the menu entry fixed."""
    return [p for p in verb.params if p.cli and p.name not in presets]


def label(p) -> str:
    name = p.label or p.name.replace("_", " ").capitalize()
    return f"{name} *" if p.required else name


def hint(p) -> str:
    """The parameter's help, unless the label already says it."""
    text = p.help or ""
    if p.multiple and p.kind != "flag":
        many = "(one or more, separated by spaces)"
        text = text.replace("(repeatable)", many) if "(repeatable)" in text else f"{text} {many}".strip()
    return "" if text.lower() == label(p).rstrip(" *").lower() else text


def raw(p, text):
    """What a field holds, as the CLI's parser would hand it over: None when left empty."""
    if p.kind == "flag":
        return bool(text)
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    if not isinstance(text, str):
        return text  # a select's value
    if p.multiple:
        try:
            return shlex.split(text)
        except ValueError as exc:  # an unclosed quote
            raise BadInput(f"{p.name}: {exc}") from None
    return text.strip() if p.kind == "int" else text


def check(p, text) -> tuple[object, str | None]:
    """(value for the request, or None) and the error to show beside the field, or None."""
    try:
        value = raw(p, text)
        if value is None:
            return None, ("required" if p.required else None)
        return p.convert(value), None
    except BadInput as err:
        return None, err.message


def collect(verb, presets: dict, texts: dict) -> tuple[dict, dict]:
    """(arguments for the request, {param name: error}) from every field's text."""
    args, errors = dict(presets), {}
    for p in fields(verb, presets):
        value, error = check(p, texts.get(p.name))
        if error:
            errors[p.name] = error
        elif value is not None and value != [] and value is not False:
            args[p.name] = value
    return args, errors
