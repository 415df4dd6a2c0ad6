"""The reference in docs/ against the code, so that neither can drift from the other.

- docs/config.md lists exactly the config keys the code reads (found by AST in ceo/ and
  plugins/), with the defaults the code uses, and exactly the inventory variables it reads.
- docs/authorization.md is what `python -m ceo.reference authz` makes of the declarations.
- The example ceo.ini, ceo-helper.ini and hosts.ini (and the sandbox's own files) use only
  known keys, and hosts.ini reads the same under Ansible.
Needs no sandbox.
"""

from __future__ import annotations

import ast
import configparser
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ceo import policy, reference  # noqa: E402
from ceo.config import DEFAULTS, Config  # noqa: E402
from ceo.inventory import Inventory  # noqa: E402

ACCESSORS = ("get", "getbool", "getlist", "getint", "getfloat")
CONFIG_RECEIVER = re.compile(r"(^|\.)config$|\bConfig\.load\(")
REGENERATE = ".venv/bin/python -m ceo.reference authz > docs/authorization.md"


# --- what the code reads ---------------------------------------------------------------------

def _engine_sections() -> set[str]:
    """The sections plugins/_databases.py's Engine reads host and port from: each Engine's `service`."""
    out = set()
    for path in (REPO / "plugins").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Engine":
                out |= {k.value.value for k in node.keywords if k.arg == "service" and isinstance(k.value, ast.Constant)}
    return out


def _helper_limits() -> set[str]:
    """The keys `Session.limit(KEY, default)` reads from `[helper]`."""
    out = set()
    for path in (REPO / "ceo").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "limit" and node.args \
                    and isinstance(node.args[0], ast.Constant):
                out.add(node.args[0].value)
    return out


# Reads whose section or key is not a literal: where they are, and what they read. A new one
# fails the test until it is named here.
DYNAMIC = {
    ("ceo/config.py", "getbool"): lambda: set(),  # the accessors themselves
    ("ceo/config.py", "getlist"): lambda: set(),
    ("ceo/config.py", "get"): lambda: set(),
    ("ceo/config.py", "load_helper"): lambda: set(),  # lists every key, to refuse secrets
    ("ceo/helper.py", "limit"): lambda: {("helper", k) for k in _helper_limits()},
    ("ceo/policy.py", "number_range"): lambda: {(kind[1], k) for kind in policy.KINDS.values()
                                                for k in ("uid_min", "uid_max")},
    ("plugins/_databases.py", "address"): lambda: {(s, k) for s in _engine_sections() for k in ("host", "port")},
    ("ceo/policy.py", "ties"): lambda: {("ties", "GROUP.groups"), ("ties", "GROUP.lists")},
}


class _Reads(ast.NodeVisitor):
    def __init__(self, rel: str):
        self.rel, self.stack = rel, []
        self.keys: dict[tuple[str, str], list[tuple[str, object]]] = {}  # key -> [(where, literal default)]
        self.dynamic: dict[tuple[str, str], str] = {}  # (file, function) -> where

    def visit_FunctionDef(self, node):
        self.stack.append(node.name)
        self.generic_visit(node)
        self.stack.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Call(self, node):
        func = node.func
        if isinstance(func, ast.Attribute):
            receiver = ast.unparse(func.value)
            where = f"{self.rel}:{node.lineno}"
            in_config = self.rel == "ceo/config.py" and receiver in ("self", "config", "self.parser", "config.parser")
            if func.attr in ACCESSORS and (CONFIG_RECEIVER.search(receiver) or in_config):
                section, key = (node.args + [None, None])[:2]
                if isinstance(section, ast.Constant) and isinstance(key, ast.Constant):
                    default = node.args[2] if len(node.args) > 2 else None
                    literal = default.value if isinstance(default, ast.Constant) else ...
                    self.keys.setdefault((section.value, key.value), []).append((where, literal))
                else:
                    self.dynamic[(self.rel, self.stack[-1] if self.stack else "")] = where
            elif receiver.endswith("parser") and func.attr in ("items", "has_section", "options", "sections",
                                                                 "has_option", "get") and not in_config:
                self.dynamic[(self.rel, self.stack[-1] if self.stack else "")] = where
        self.generic_visit(node)


def code_reads():
    """({(section, key): [(where, default)]}, {(file, function): where} of reads DYNAMIC does not name)."""
    keys, unknown = {}, {}
    for root in ("ceo", "plugins"):
        for path in sorted((REPO / root).rglob("*.py")):
            rel = str(path.relative_to(REPO))
            visitor = _Reads(rel)
            visitor.visit(ast.parse(path.read_text(), rel))
            for key, sites in visitor.keys.items():
                keys.setdefault(key, []).extend(sites)
            for site, where in visitor.dynamic.items():
                if site in DYNAMIC:
                    for key in DYNAMIC[site]():
                        keys.setdefault(key, []).append((where, ...))
                else:
                    unknown[site] = where
    return keys, unknown


def inventory_reads() -> set[str]:
    """The host variables the code reads: every `ansible_*` and `ceo_*` string in ceo/ and plugins/."""
    out = set()
    for root in ("ceo", "plugins"):
        for path in (REPO / root).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                        and re.fullmatch(r"(ansible|ceo)_[a-z_]+", node.value):
                    out.add(node.value)
    return out


# --- what the reference says -----------------------------------------------------------------

def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _plain(cell: str) -> str:
    return cell.strip().strip("`")


def documented():
    """({(section, key): default cell} from docs/config.md's section tables, {variable} of its inventory table)."""
    keys, variables, section, part = {}, set(), None, "config"
    for line in (REPO / "docs" / "config.md").read_text().splitlines():
        if line.startswith("## hosts.ini"):
            part = "inventory"
        heading = re.match(r"###\s.*?`\[([a-z_]+)\]`", line)
        if heading:
            section = heading.group(1)
        if not line.startswith("| `"):
            continue
        cells = _cells(line)
        if part == "inventory":
            if re.fullmatch(r"`(ansible|ceo)_[a-z_]+`", cells[0]):
                variables.add(_plain(cells[0]))
            continue
        if re.fullmatch(r"`\[[a-z_]+\]`", cells[0]):  # a table of several sections: the section first
            section, cells = cells[0].strip("`[]"), cells[1:]
        if section is not None:
            keys[(section, _plain(cells[0]))] = cells[1]
    return keys, variables


def test_every_config_key_the_code_reads_is_documented_and_every_documented_one_is_read():
    reads, unknown = code_reads()
    assert not unknown, (f"config reads whose section or key the test cannot tell: {unknown}; "
                         "name what each reads in DYNAMIC (tests/test_docs.py)")
    docs, _ = documented()
    missing = sorted(set(reads) - set(docs))
    assert not missing, ("read by the code but not in docs/config.md: "
                         + ", ".join(f"[{s}] {k} ({reads[(s, k)][0][0]})" for s, k in missing))
    unread = sorted(set(docs) - set(reads))
    assert not unread, "in docs/config.md but read nowhere in ceo/ or plugins/: " + \
        ", ".join(f"[{s}] {k}" for s, k in unread)


def test_documented_defaults_are_the_code_defaults():
    """Each literal default the code passes, and each of ceo.config.DEFAULTS, is in the key's
    default cell ('' is written "(none)" or "(empty)")."""
    reads, _ = code_reads()
    docs, _ = documented()
    wrong = []
    for key, sites in sorted(reads.items()):
        defaults = {d for _, d in sites if d is not ... and d is not None}
        if key[1] in DEFAULTS.get(key[0], {}):
            defaults.add(DEFAULTS[key[0]][key[1]])
        cell = docs.get(key, "")
        for default in defaults:
            shown = f"`{default}`" in cell if default else ("(none" in cell or "(empty)" in cell)
            if not shown:
                wrong.append(f"[{key[0]}] {key[1]}: the code's default is {default!r}, docs/config.md says {cell}")
    assert not wrong, "\n".join(wrong)


def test_every_inventory_variable_the_code_reads_is_documented():
    _, variables = documented()
    read = inventory_reads()
    assert read - variables == set(), f"host variables the code reads, not in docs/config.md: {sorted(read - variables)}"
    assert variables - read == set(), f"host variables in docs/config.md the code never reads: {sorted(variables - read)}"


def test_authorization_table_is_generated_from_the_declarations():
    text = (REPO / "docs" / "authorization.md").read_text()
    assert text == reference.authz(), f"docs/authorization.md is out of date with the declarations: run {REGENERATE}"


def test_every_step_a_composite_verb_names_is_a_declared_verb_and_every_step_is_used():
    """The generator's step lists are not empty guesses: each composite of the bundled plugins
    names steps (doctor check included), and every hidden step is used by one of them."""
    plugins = reference.bundled()
    verbs = {v.qualname: v for p in plugins.values() for v in p.verbs.values()}
    used = set()
    for v in verbs.values():
        if v.composite:
            steps = reference.steps_of(v, set(verbs))
            assert steps, f"{v.qualname}: no step found"
            used |= set(steps)
    unused = sorted(q for q, v in verbs.items() if v.hidden and q not in used)
    assert not unused, f"steps no composite verb names (the generator misses a call path?): {unused}"


# --- the examples --------------------------------------------------------------------------

def _known(section: str, key: str, reads) -> bool:
    if section == "ties" and "." in key:
        return ("ties", "GROUP." + key.rsplit(".", 1)[1]) in reads
    return (section, key) in reads


def _ini_keys(text: str, source: str) -> list[tuple[str, str]]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text, source=source)
    return [(s, k) for s in parser.sections() for k in parser.options(s)]


def _sandbox_files(tmp_path) -> dict[str, str]:
    if __import__("os").getuid() != 0:
        pytest.fail("run as root: the sandbox's files are written as root's")
    from sandbox.seed import write_ceo_config
    write_ceo_config(tmp_path)
    return {name: (tmp_path / name).read_text() for name in ("ceo.ini", "ceo-helper.ini")}


@pytest.mark.parametrize("name", ["examples/ceo.ini", "examples/ceo-helper.ini", "sandbox ceo.ini",
                                  "sandbox ceo-helper.ini"])
def test_example_configs_use_only_known_keys(name, tmp_path):
    reads, _ = code_reads()
    if name.startswith("sandbox"):
        text = _sandbox_files(tmp_path)[name.split()[1]]
    else:
        text = (REPO / name).read_text()
    unknown = [f"[{s}] {k}" for s, k in _ini_keys(text, name) if not _known(s, k, reads)]
    assert not unknown, f"{name} sets keys ceo never reads: {unknown}"


def test_example_ceo_ini_holds_no_secret_and_the_helper_file_the_secrets(tmp_path):
    """The helper starts on the examples as they are: ceo.ini world-readable without secrets,
    the helper file root-only with them (the helper refuses a secret in ceo.ini)."""
    import shutil
    ini, helper = tmp_path / "ceo.ini", tmp_path / "ceo-helper.ini"
    shutil.copy(REPO / "examples" / "ceo.ini", ini)
    shutil.copy(REPO / "examples" / "ceo-helper.ini", helper)
    helper.chmod(0o600)
    config = Config.load_helper(str(ini), str(helper))
    assert config.get("mailman", "password"), "the example helper file gives Mailman's password"


def test_example_inventory_reads_the_same_under_ansible():
    path = REPO / "examples" / "hosts.ini"
    inv = Inventory.load(str(path))
    _, documented_vars = documented()
    for host in inv.hosts.values():
        extra = {k for k in host.vars if k.startswith(("ansible_", "ceo_"))} - documented_vars
        assert not extra, f"{host.name}: host variables ceo does not read: {extra}"
    for role in ("ldap", "kerberos", "homes", "databases", "mail"):
        assert inv.hosts_of(role), f"examples/hosts.ini has no [{role}] host"
    proc = subprocess.run([str(REPO / ".venv" / "bin" / "ansible-inventory"), "-i", str(path), "--list"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    theirs = json.loads(proc.stdout)
    assert set(theirs["_meta"]["hostvars"]) | set(theirs.get("ungrouped", {}).get("hosts", [])) == set(inv.hosts)
    for name, host in inv.hosts.items():
        assert theirs["_meta"]["hostvars"].get(name, {}) == host.vars, name


def test_example_renewals_csv_is_valid():
    from plugins.members import csvrenew
    rows, problems = csvrenew.read(str(REPO / "examples" / "renewals.csv"))
    assert rows and not problems, problems


def test_exit_codes_page_names_every_error_with_its_exit_code():
    from ceo import errors
    from ceo.config import UnsafeConfig
    text = (REPO / "docs" / "exit-codes.md").read_text()
    rows = {m.group(1): int(m.group(2)) for m in re.finditer(r"^\| `(\w+)` \| (\d) \|", text, re.M)}
    classes = {c.__name__: c for c in (errors.CeoError, *errors._subclasses(errors.CeoError))
               if c is not errors.RemoteError and c.__module__ in ("ceo.errors", "ceo.config")}
    assert UnsafeConfig in classes.values()
    assert {n: c.exit_code for n, c in classes.items()} == {n: rows.get(n) for n in classes}, \
        "docs/exit-codes.md must list every error of ceo/errors.py with its exit code"
    assert set(rows) == set(classes), f"docs/exit-codes.md lists errors that do not exist: {set(rows) - set(classes)}"
    codes = {m.group(2): int(m.group(1)) for m in re.finditer(r"^\| (\d) \| `(\w+)` \|", text, re.M)}
    assert codes == {n: getattr(errors, n) for n in ("DONE", "FAILED", "BAD_INPUT", "NOT_PERMITTED", "PARTLY_DONE")}
