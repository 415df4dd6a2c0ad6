"""`ceo [-i INVENTORY] [-c CONFIG] <plugin> <verb> [args]`: the command office staff type.

The parsers are generated from what plugins declare. Only the plugin named on the command
line gets its verb parsers built, and nothing heavy (paramiko, ldap3, rich) is imported
before a verb actually runs.
"""

from __future__ import annotations

import os
import sys

from . import __version__
from .errors import BAD_INPUT, FAILED, BadInput, CeoError, NeedsConfirmation

_parser_class = None


def _argparse():
    """argparse, imported here, not above: `ceo --help` from its cache needs none of it. While it
    is imported, gettext stands in as what it is to argparse (Python ships no catalog of its
    messages, and ceo sets no text domain): the message itself, in its plural where one is
    asked for. The real gettext looks for catalogs on every message, importing locale to name
    them: ~1.8 ms of every run. After the import, gettext is the real one for anyone else."""
    if "argparse" in sys.modules or "gettext" in sys.modules:
        import argparse
        return argparse
    stand_in = type(sys)("gettext (ceo's stand-in)")
    stand_in.gettext = lambda message: message
    stand_in.ngettext = lambda singular, plural, n: singular if n == 1 else plural
    sys.modules["gettext"] = stand_in
    try:
        import argparse
    finally:
        del sys.modules["gettext"]
    return argparse


def _Parser(**kw):  # noqa: N802 (it stands for the class, which is made on first use)
    """An ArgumentParser whose errors are one line and exit 2, like every other bad input."""
    argparse = _argparse()
    import functools
    global _parser_class
    if _parser_class is None:
        class Parser(argparse.ArgumentParser):
            def error(self, message):
                self.exit(BAD_INPUT, f"{self.prog}: {message} (see {self.prog} --help)\n")
        _parser_class = Parser
    # The width as argparse would get it, less 2 as it takes off, without importing shutil (~2 ms
    # with its compression modules) as argparse does for every argument it adds.
    kw["formatter_class"] = functools.partial(kw.get("formatter_class", argparse.HelpFormatter), width=columns() - 2)
    return _parser_class(**kw)


def columns() -> int:
    """The terminal's width as shutil.get_terminal_size() says it: $COLUMNS, else stdout's, else 80."""
    try:
        width = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        width = 0
    if width <= 0:
        try:
            width = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            width = 0
    return width or 80


def _global_options(parser):
    parser.add_argument("-i", "--inventory", metavar="FILE",
                        help="inventory (default $CEO_INVENTORY or /etc/csc/hosts.ini)")
    parser.add_argument("-c", "--config", metavar="FILE", help="config (default $CEO_CONFIG or /etc/csc/ceo.ini)")
    parser.add_argument("--keytab", metavar="FILE", help="log in with this keytab's principal, not your ticket "
                        "(unattended jobs; default [kerberos] client_keytab)")


def _add_param(parser, p):
    kw = {"help": p.help or None}
    if p.kind == "flag":
        parser.add_argument(p.option, dest=p.name, action="store_true", help=p.help)
        return
    if p.choices:
        kw["choices"] = p.choices
    if p.positional:
        nargs = ("+" if p.required else "*") if p.multiple else (None if p.required else "?")
        parser.add_argument(p.name, metavar=p.metavar or p.name.upper(), nargs=nargs, **kw)
    elif p.multiple:
        parser.add_argument(p.option, dest=p.name, metavar=p.metavar or p.name.upper(), nargs="+",
                            action="extend", **kw)
    else:
        parser.add_argument(p.option, dest=p.name, metavar=p.metavar or p.name.upper(), required=p.required, **kw)


def _add_verb(subparsers, verb):
    argparse = _argparse()
    epilog = "examples:\n" + "\n".join(f"  {e}" for e in verb.examples) if verb.examples else None
    vp = subparsers.add_parser(verb.name, help=verb.help, description=verb.help, epilog=epilog,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    for p in verb.params:
        if p.cli:
            _add_param(vp, p)
    common = vp.add_argument_group("common options")
    common.add_argument("--json", action="store_true", help="print one JSON document on stdout, nothing else")
    common.add_argument("--check", "--dry-run", dest="check", action="store_true",
                        help="show what would change, change nothing")
    common.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    common.add_argument("-v", "--verbose", action="store_true", help="more detail (hosts, progress, tracebacks)")
    if verb.role == "any" and not verb.composite:
        common.add_argument("--host", metavar="NAME", help="the inventory host to ask (default: the first)")
    vp.set_defaults(_verb=verb)


def build_parser(registry, selected: str | None, everything: bool = False, verb: str | None = None):
    """The parser of every plugin's name; of the `selected` plugin's verbs (`everything`: every
    plugin's), and of only `verb` among them when the command line names one (the others' options
    are not needed then: building them all is most of the parsing)."""
    parser = _Parser(prog="ceo", description="CSC Electronic Office: manage the club's accounts. "
                     "Run `ceo PLUGIN --help` for a plugin's verbs.")
    parser.add_argument("--version", action="version", version=f"ceo {__version__}")
    _global_options(parser)
    sub = parser.add_subparsers(dest="_plugin", metavar="PLUGIN", title="plugins", parser_class=_Parser)
    sub.add_parser("plugins", help="list the plugins found and where from").set_defaults(_plugins=True)
    sub.add_parser("tui", help="the office's full-screen menus and forms (also `ceo` alone on a terminal)")
    for name in sorted(registry.plugins):
        plugin = registry.plugins[name]
        pp = sub.add_parser(name, help=plugin.help, description=plugin.help)
        if name != selected and not everything:
            continue
        verbs = pp.add_subparsers(dest="_verb_name", metavar="VERB", title="verbs", parser_class=_Parser)
        for v in plugin.verbs.values():
            # steps of other verbs are not commands: run alone, they leave half a job
            if not v.hidden and (verb is None or everything or v.name == verb):
                _add_verb(verbs, v)
        pp.set_defaults(_plugin_obj=plugin)
    return parser


def _plugin_at(argv) -> int | None:
    """Where the plugin's name is on the command line: the first word that is no option's value."""
    skip = False
    for at, arg in enumerate(argv):
        if skip:
            skip = False
        elif arg in ("-i", "--inventory", "-c", "--config", "--keytab"):
            skip = True
        elif not arg.startswith("-"):
            return at
    return None


def _selected_verb(argv, at, plugin) -> str | None:
    """The verb named right after the plugin (at `at`), if it is one of its commands; else None
    (a wrong name gets argparse's list of the right ones)."""
    if plugin is None or at + 1 >= len(argv):
        return None
    verb = plugin.verbs.get(argv[at + 1])
    return verb.name if verb is not None and not verb.hidden else None


def _confirm(verb, args, ns) -> None:
    if not verb.confirm or ns.yes or ns.check:
        return
    question = verb.confirm.format(**args)
    if not (sys.stdin.isatty() and sys.stdout.isatty()) or ns.json:
        raise NeedsConfirmation(f"{question} Needs confirmation: pass --yes")
    answer = input(f"{question} [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise CeoError("cancelled, nothing was changed")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    top_help = argv in (["--help"], ["-h"]) and "_ARGCOMPLETE" not in os.environ
    if top_help:  # the same text as last time, unless anything it was made from changed
        from . import helpcache
        text = helpcache.load()
        if text is not None:
            sys.stdout.write(text)
            return 0
    pre = _Parser(add_help=False)
    _global_options(pre)
    known, rest = pre.parse_known_args(argv)
    from .config import Config, client_paths
    cfg_path, cfg_explicit, inv_path = client_paths(known.config, known.inventory)
    try:
        config = Config.load(cfg_path, explicit=cfg_explicit)
    except CeoError as err:
        print(f"ceo: {err.message}", file=sys.stderr)
        return err.exit_code
    if rest == ["tui"] or (not rest and sys.stdin.isatty() and sys.stdout.isatty()):
        return tui(config, inv_path, known.keytab)
    from .discovery import discover
    registry = discover(config.get("plugins", "site_dir"), lazy=True)
    completing = "_ARGCOMPLETE" in os.environ
    at = _plugin_at(argv)
    selected = argv[at] if at is not None else None
    plugin = registry.plugin(selected) if selected and not completing else None
    if plugin is None:  # --help, `ceo plugins`, completion, an unknown name: every plugin
        registry.everything()
    if plugin and plugin.default_verb and not completing:
        if at + 1 >= len(argv) or (argv[at + 1].startswith("-") and argv[at + 1] not in ("-h", "--help")):
            argv = [*argv[:at + 1], plugin.default_verb, *argv[at + 1:]]
    parser = build_parser(registry, selected, everything=completing, verb=_selected_verb(argv, at, plugin))
    if top_help:
        text = parser.format_help()
        helpcache.store(cfg_path, config.get("plugins", "site_dir"), text)
        sys.stdout.write(text)
        return 0
    if completing:
        import argcomplete
        argcomplete.autocomplete(parser)
    ns = parser.parse_args(argv)
    if getattr(ns, "_plugins", False):
        return list_plugins(registry)
    plugin = getattr(ns, "_plugin_obj", None)
    if plugin is None:
        parser.print_help(sys.stderr)
        return BAD_INPUT
    verb = getattr(ns, "_verb", None)
    if verb is None:
        parser.parse_args([*argv, "--help"])
    return run_command(verb, ns, config, inv_path)


def run() -> None:
    """The `ceo` command. After a verb has run, output is flushed and the process exits without
    tearing the interpreter down (paramiko's, gssapi's and rich's modules and threads: ~5 ms
    that nothing needs: every session is closed and every file written by then)."""
    import gc
    gc.disable()  # for the start, which transport.started() ends: see there
    try:
        code = main()
    except SystemExit as exc:  # argparse: --help, --version, usage errors
        code = exc.code
    if not _verb_ran:
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said there
            pass
    os._exit(code if isinstance(code, int) else 0 if code is None else FAILED)


_verb_ran = False  # run_command was reached: run() may skip the interpreter's teardown


def run_command(verb, ns, config, inv_path) -> int:
    global _verb_ran
    _verb_ran = True
    from .output import Output
    out = Output(as_json=ns.json, verbose=ns.verbose)
    opened = []  # the run's sessions are closed last: their helpers end while the output is printed
    try:
        code, result = _execute(verb, ns, config, inv_path, out, opened)
        if code is not None:
            return code
        out.result(verb, result, check=ns.check and (verb.mutating or verb.composite))
        if isinstance(result, dict) and isinstance(result.get("exit"), int):
            return result["exit"]  # a verb that reports, then fails (doctor) or partly succeeds (batches)
        return 0
    finally:
        for run in opened:
            run.close()


def _execute(verb, ns, config, inv_path, out, opened) -> tuple[int | None, object]:
    """(None, the verb's result), or (exit status, None) once its error is said."""
    raw = {p.name: getattr(ns, p.name, None) for p in verb.params}
    try:
        args = verb.validate(raw)
        if ns.check and verb.mutating and not verb.check:
            raise BadInput(f"{verb.command} has no --check mode")
        _confirm(verb, args, ns)
        keytab = getattr(ns, "keytab", None) or config.get("kerberos", "client_keytab")
        if keytab:
            from .transport import use_keytab
            use_keytab(keytab)
        from .inventory import Inventory
        from .runner import Run, run_verb
        inventory = Inventory.load(inv_path)
        host = None
        if getattr(ns, "host", None):
            host = inventory.hosts.get(ns.host)
            if host is None:
                raise BadInput(f"no host {ns.host!r} in {inv_path}")
        run = Run(inventory, config, out, check=ns.check)
        opened.append(run)
        return None, run_verb(run, verb, args, host=host)
    except CeoError as err:
        from .runner import typed
        out.error(typed(err, verb, verb.qualname))  # the verb's own validation names it as typed
        return err.exit_code, None
    except KeyboardInterrupt:
        print("ceo: interrupted", file=sys.stderr)
        return FAILED, None
    except Exception as exc:  # a bug: one line for the user, the traceback only with -v
        if ns.verbose:
            import traceback
            traceback.print_exc()
        print(f"ceo: internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
              f"{'' if ns.verbose else ' (run with -v for details)'}", file=sys.stderr)
        return FAILED, None
    finally:
        for run in opened:
            run.finish()  # no more requests: each helper has its end of input


def tui(config, inv_path, keytab) -> int:
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        print("ceo: the terminal UI needs a terminal; run `ceo PLUGIN VERB` instead (see ceo --help)",
              file=sys.stderr)
        return BAD_INPUT
    from .transport import started
    started()  # the screen stays open for hours: its garbage must be collected
    try:
        from .tui import main as tui_main
        return tui_main(config, inv_path, keytab)
    except CeoError as err:  # the inventory or the keytab, before the screen opens
        print(f"ceo: {err.message}", file=sys.stderr)
        return err.exit_code


def list_plugins(registry) -> int:
    for name in sorted(registry.plugins):
        p = registry.plugins[name]
        verbs = ", ".join(v.name for v in p.verbs.values() if not v.hidden)
        print(f"{name:12} {p.source:30} {verbs}")
    for name, (source, error) in sorted(registry.broken.items()):
        print(f"{name:12} {str(source):30} BROKEN: {error}")
    return 0
