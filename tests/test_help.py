"""`--help` of every verb: a one-line summary and examples, from the verbs' declarations; every
example is a command the verb's own parser and validation accept."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from ceo.cli import build_parser
from ceo.discovery import discover

REGISTRY = discover(None)
VERBS = [v for name, p in sorted(REGISTRY.plugins.items()) if p.source == "bundled"  # not the tests' or a 3rd party's
         for v in p.verbs.values() if not v.hidden]


def parsed(example: str):
    """The verb and raw arguments `ceo` makes of an example, as cli.main parses a command line."""
    words = shlex.split(example, comments=True)
    assert words[0] == "ceo", example
    argv = words[1:]
    parser = build_parser(REGISTRY, None, everything=True)
    plugin = next(w for i, w in enumerate(argv) if not w.startswith("-") and (i == 0 or argv[i - 1] not in (
        "-i", "--inventory", "-c", "--config", "--keytab")))
    at = argv.index(plugin) + 1
    default = REGISTRY.plugins[plugin].default_verb
    if default and (at >= len(argv) or argv[at].startswith("-")):
        argv = [*argv[:at], default, *argv[at:]]
    ns = parser.parse_args(argv)
    return ns._verb, {p.name: getattr(ns, p.name, None) for p in ns._verb.params}


def test_there_are_verbs():
    assert len(VERBS) > 30 and {"members.add", "groups.get", "doctor.check"} <= {v.qualname for v in VERBS}


@pytest.mark.parametrize("verb", VERBS, ids=lambda v: v.qualname)
def test_every_verb_has_a_summary_and_examples_its_parser_accepts(verb):
    assert verb.help and "\n" not in verb.help and len(verb.help) <= 100, verb.help
    assert verb.examples, f"{verb.qualname} has no example"
    for example in verb.examples:
        got, raw = parsed(example)
        assert got is verb, (example, got.qualname)
        verb.validate(raw)  # the helper's own check of the arguments: raises BadInput if wrong


@pytest.mark.parametrize("verb", VERBS, ids=lambda v: v.qualname)
def test_help_shows_the_summary_and_the_examples(cluster, verb):
    proc = cluster.run(["ceo", verb.plugin.name, verb.name, "--help"], "regular1")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert verb.help in " ".join(text.split())  # the description (argparse may wrap the usage, not it)
    assert "\nexamples:\n" in text and all(f"\n  {e}\n" in text + "\n" for e in verb.examples), text


def test_the_man_pages_are_what_the_declarations_make(tmp_path):
    """man/ceo*.1, written by man/generate.py from the same declarations: regenerate after a change."""
    import subprocess
    import sys
    man = Path(__file__).resolve().parent.parent / "man"
    proc = subprocess.run([sys.executable, str(man / "generate.py"), str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    made = {p.name: p.read_text() for p in tmp_path.glob("ceo*.1")}
    assert made == {p.name: p.read_text() for p in man.glob("ceo*.1")}, "run .venv/bin/python man/generate.py"
    assert set(made) == {"ceo.1"} | {f"ceo-{v.plugin.name}-{v.name}.1" for v in VERBS}
    assert all(f"\n{e.replace('-', chr(92) + '-')}\n" in made[f"ceo-{v.plugin.name}-{v.name}.1"]
               for v in VERBS for e in v.examples)


def test_members_add_help(cluster):
    text = cluster.run(["ceo", "members", "add", "--help"], "ofstaff").stdout
    assert text.rstrip().endswith('examples:\n  ceo members add alice --cn "Alice Liddell" --program "MAT/CS" --terms 2\n'
                                  '  ceo members add bob --clubrep --cn "Bob Builder" --check'), text


# --- `ceo --help` kept in the user's cache (ceo/helpcache.py) ------------------------------------

def _top_help(tmp_path, cache="cache", **env):
    import os
    import subprocess
    ceo = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "ceo"
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / cache), "CEO_CONFIG": str(tmp_path / "ceo.ini"),
           "COLUMNS": "100", **env}
    proc = subprocess.run([str(ceo), "--help"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
    return proc.stdout


def _site_plugin(site, name, help):
    site.mkdir(exist_ok=True)
    (site / f"{name}.py").write_text(f"from ceo.plugin import Plugin\nplugin = Plugin({name!r}, {help!r})\n")


def test_top_help_is_kept_and_shown_again_while_nothing_changed(tmp_path):
    (tmp_path / "ceo.ini").write_text(f"[plugins]\nsite_dir = {tmp_path / 'site'}\n")
    first = _top_help(tmp_path)
    assert "members" in first and "doctor" in first
    kept = tmp_path / "cache" / "ceo" / "help"
    assert kept.read_text().endswith("\n\n" + first)
    assert _top_help(tmp_path) == first
    head = kept.read_text().partition("\n\n")[0]
    kept.write_text(head + "\n\nKEPT\n")  # so that the next one is seen to come from the cache
    assert _top_help(tmp_path) == "KEPT\n"


def test_top_help_shows_a_plugin_added_changed_or_removed_at_once(tmp_path):
    site = tmp_path / "site"
    (tmp_path / "ceo.ini").write_text(f"[plugins]\nsite_dir = {site}\n")
    _site_plugin(site, "extra", "An extra plugin")
    assert "An extra plugin" in _top_help(tmp_path) and "An extra plugin" in _top_help(tmp_path)
    _site_plugin(site, "extra", "The changed extra plugin")
    assert "The changed extra plugin" in _top_help(tmp_path)
    _site_plugin(site, "another", "Another plugin")
    assert "Another plugin" in _top_help(tmp_path)
    (site / "extra.py").unlink()
    text = _top_help(tmp_path)
    assert "extra" not in text and "Another plugin" in text
    (tmp_path / "ceo.ini").write_text("[plugins]\nsite_dir = /nonexistent-ceo-site\n")  # the config names another
    assert "Another plugin" not in _top_help(tmp_path)


def test_top_help_is_made_again_for_another_width(tmp_path):
    (tmp_path / "ceo.ini").write_text("")
    narrow, wide = _top_help(tmp_path, COLUMNS="50"), _top_help(tmp_path, COLUMNS="200")
    assert narrow == _top_help(tmp_path, "fresh", COLUMNS="50") != wide
    assert wide == _top_help(tmp_path, "fresh2", COLUMNS="200")


def _verbs_built(parser, plugin) -> list[str]:
    import argparse
    plugins = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    verbs = next(a for a in plugins.choices[plugin]._actions if isinstance(a, argparse._SubParsersAction))
    return list(verbs.choices)


def _help_of(parser, argv) -> str:
    import contextlib
    import io
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        parser.parse_args(argv)
    return out.getvalue()


@pytest.mark.parametrize("verb", VERBS, ids=lambda v: v.qualname)
def test_a_verb_parsed_alone_parses_and_helps_as_among_all_its_plugins_verbs(verb):
    """`ceo P V ...` builds only V's parser: it must be the very parser it is among the rest."""
    name = verb.plugin.name
    alone, among = build_parser(REGISTRY, name, verb=verb.name), build_parser(REGISTRY, name)
    assert _verbs_built(alone, name) == [verb.name] and verb.name in _verbs_built(among, name)
    assert _help_of(alone, [name, verb.name, "--help"]) == _help_of(among, [name, verb.name, "--help"])
    for example in verb.examples:
        argv = shlex.split(example, comments=True)[1:]
        if argv[:2] == [name, verb.name]:
            assert vars(alone.parse_args(argv)) == vars(among.parse_args(argv)), example


def test_help_wraps_at_the_terminals_width_as_argparse_would_but_without_shutil():
    import json
    import os
    import subprocess
    import sys
    code = ("import json, sys, argparse\n"
            "from ceo.cli import build_parser\n"
            "from ceo.discovery import discover\n"
            "registry = discover(None, lazy=True)\n"
            "registry.plugin('members')  # as a command line naming it loads it\n"
            "text = build_parser(registry, 'members', verb='add').format_help()\n"
            "ours = 'shutil' in sys.modules\n"
            "import shutil\n"
            "print(json.dumps([max(map(len, text.splitlines())), len(text.splitlines()), ours,\n"
            "                  shutil.get_terminal_size().columns]))\n")
    seen = {}
    for width in ("50", "200", ""):
        env = {**os.environ, "COLUMNS": width}
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                              stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, proc.stderr
        seen[width] = json.loads(proc.stdout)
    assert seen["50"][0] <= 50 < seen["200"][0] and seen["50"][1] > seen["200"][1]
    assert [s[2] for s in seen.values()] == [False, False, False]  # shutil was not imported for it
    assert seen[""][3] == 80 and seen[""][0] <= 80  # no terminal, no $COLUMNS: 80, as shutil says


def test_argparse_speaks_its_own_messages_without_gettext_which_is_real_for_anyone_after():
    import json
    import subprocess
    import sys
    code = ("import json, sys\n"
            "from ceo import cli\n"
            "said = []\n"
            "for nargs, argv in ((2, ['--pair', 'a']), (1, ['--one']), (None, [])):\n"
            "    parser = cli._Parser(prog='t')\n"
            "    parser.add_argument('--pair', nargs=2)\n"
            "    parser.add_argument('--one', nargs=1)\n"
            "    parser.add_argument('need')\n"
            "    parser.exit = lambda status=0, message=None: said.append((status, message)) or (_ for _ in ()).throw(SystemExit)\n"
            "    try:\n"
            "        parser.parse_args(argv)\n"
            "    except SystemExit:\n"
            "        pass\n"
            "loaded = 'gettext' in sys.modules\n"
            "import gettext\n"
            "print(json.dumps([said, loaded, gettext.__name__, hasattr(gettext, 'translation')]))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    said, loaded, name, real = json.loads(proc.stdout)
    assert said == [[2, "t: argument --pair: expected 2 arguments (see t --help)\n"],
                    [2, "t: argument --one: expected 1 argument (see t --help)\n"],
                    [2, "t: the following arguments are required: need (see t --help)\n"]], said
    assert not loaded and name == "gettext" and real
