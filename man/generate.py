"""Write the manual pages from the verbs' declarations: man/ceo.1 and man/ceo-PLUGIN-VERB.1
for every verb of the bundled plugins a user types (argparse-manpage renders the parsers `ceo` itself builds, and
each verb's examples become its EXAMPLES section). tests/test_help.py checks the committed
pages are what this writes.

    .venv/bin/python man/generate.py [DIR]      # default: the folder of this file
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ceo import __version__  # noqa: E402
from ceo.cli import build_parser  # noqa: E402
from ceo.discovery import discover  # noqa: E402

ABOUT = {"project_name": "ceo", "version": __version__, "manual_title": "CSC Electronic Office",
         "date": " "}  # no date: the pages change only when the declarations do


def _subparsers(parser) -> dict:
    return next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices


def page(parser, name: str, summary: str, examples=()) -> str:
    from argparse_manpage.manpage import Manpage
    epilog, parser.epilog = parser.epilog, None  # the examples get a section of their own
    sections = getattr(parser, "_manpage", None)
    parser._manpage = []
    try:
        man = Manpage(parser, {**ABOUT, "description": summary})
        man.prog = name  # the page's name (ceo-members-add); its synopsis stays as typed
        if examples:
            parser._manpage.append({"heading": "examples",
                                    "content": ".nf\n" + "\n".join(e.replace("\\", "\\\\").replace("-", "\\-")
                                                                   for e in examples) + "\n.fi"})
        return str(man)
    finally:
        parser.epilog, parser._manpage = epilog, sections


def pages(registry) -> dict[str, str]:
    """{file name: its text}."""
    top = build_parser(registry, None)
    out = {"ceo.1": page(top, "ceo", "the CSC Electronic Office: the club's accounts, groups, databases and lists")}
    full = _subparsers(build_parser(registry, None, everything=True))
    for pname, plugin in sorted(registry.plugins.items()):
        verbs = _subparsers(full[pname])
        for verb in plugin.verbs.values():
            if not verb.hidden:
                out[f"ceo-{pname}-{verb.name}.1"] = page(verbs[verb.name], f"ceo-{pname}-{verb.name}", verb.help,
                                                         verb.examples)
    return out


def bundled():
    """The plugins in plugins/ (not a third party's, found through an entry point)."""
    registry = discover(None)
    registry.plugins = {name: p for name, p in registry.plugins.items() if p.source == "bundled"}
    return registry


def main(argv=None) -> int:
    import os
    os.environ["COLUMNS"] = "80"  # argparse wraps usage to the terminal: the same pages from any terminal
    argv = sys.argv[1:] if argv is None else argv
    where = Path(argv[0]) if argv else Path(__file__).resolve().parent
    registry = bundled()
    for stale in where.glob("ceo*.1"):
        stale.unlink()
    for name, text in pages(registry).items():
        (where / name).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
