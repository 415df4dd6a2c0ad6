"""Finding plugins: the bundled `plugins/` package, the `ceo.plugins` entry points, a site dir.

Entry points are read straight from the `*.dist-info/entry_points.txt` files on sys.path:
importlib.metadata would cost more than the rest of `ceo --help` together. A plugin that fails
to import is recorded by name with its error; the others keep working.

`discover(lazy=True)` (the helper, and a client running one plugin's verb) imports nothing
until a plugin is asked for by name. A bundled plugin is then imported alone, which gives
what importing everything would: bundled files come first and each declares its own name.
Any other name (an entry point, a site file, an unknown one) imports everything as before,
so the first source still wins and a site file can never replace a bundled plugin.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import stat
import sys

from .plugin import Plugin

GROUP = "ceo.plugins"


class Registry:
    def __init__(self):
        self.plugins: dict[str, Plugin] = {}
        self.broken: dict[str, tuple[str, str]] = {}  # name -> (source, error)
        self._pending = None  # lazy: (site_dir, strict) until everything has been imported

    def verb(self, plugin: str, verb: str):
        p = self.plugin(plugin)
        return p.verbs.get(verb) if p else None

    def plugin(self, name: str):
        """The plugin of that name, importing (when lazy) only what it takes to know it."""
        if name not in self.plugins and self._pending is not None and name not in self.broken:
            bundled = {n: (t, s) for n, t, s in _safe(_bundled)}
            if name in bundled:
                trial = Registry()
                _load(trial, [(name, *bundled[name])], self._pending[1])
                if name in trial.plugins:
                    self.plugins[name] = trial.plugins[name]
            if name not in self.plugins:  # not a bundled name, or a bundled file that declares another
                self.everything()
        return self.plugins.get(name)

    def everything(self):
        """Import every plugin (`ceo --help`, `ceo plugins`, a name that is not bundled)."""
        if self._pending is not None:
            (site_dir, strict), self._pending = self._pending, None
            _find_all(self, site_dir, strict)
        return self


def _bundled() -> list[tuple[str, str, str]]:
    """(name, module, source) for each module or package in plugins/."""
    import plugins
    out = []
    for path in plugins.__path__:
        for entry in sorted(os.listdir(path)):
            name = entry[:-3] if entry.endswith(".py") else entry
            if name.startswith("_") or not name.isidentifier():
                continue
            if entry.endswith(".py") or os.path.exists(os.path.join(path, entry, "__init__.py")):
                out.append((name, f"plugins.{name}", "bundled"))
    return out


def _entry_points() -> list[tuple[str, str, str]]:
    out = []
    for directory in sys.path:
        try:
            entries = os.listdir(directory or ".")
        except OSError:
            continue
        for entry in entries:
            if not entry.endswith((".dist-info", ".egg-info")):
                continue
            try:
                with open(os.path.join(directory, entry, "entry_points.txt"), encoding="utf-8") as f:
                    text = f.read()
            except OSError:
                continue
            if f"[{GROUP}]" not in text:
                continue
            section = None
            for line in text.splitlines():
                line = line.strip()
                if line.startswith("["):
                    section = line[1:-1].strip()
                elif section == GROUP and "=" in line:
                    name, target = (s.strip() for s in line.split("=", 1))
                    out.append((name, target.split(":")[0], f"entry point in {entry}"))
    return out


def _site(directory: str | None, strict: bool) -> list[tuple[str, str, str]]:
    if not directory or not os.path.isdir(directory):
        return []
    if strict:
        _check_owner(directory)
    out = []
    for entry in sorted(os.listdir(directory)):
        if entry.endswith(".py") and not entry.startswith("_"):
            out.append((entry[:-3], os.path.join(directory, entry), f"site dir {directory}"))
    return out


def _check_owner(path: str):
    """The helper runs as root: it loads only code that only root can change."""
    st = os.stat(path)
    if st.st_uid != 0 or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise PermissionError(f"{path} must be owned by root and writable by root only")


def discover(site_dir: str | None = None, strict: bool = False, lazy: bool = False) -> Registry:
    """Import every plugin (lazy: none yet, see Registry.plugin). `strict` (the helper) refuses
    site files that non-root could change."""
    reg = Registry()
    reg._pending = (site_dir, strict)
    return reg if lazy else reg.everything()


def _safe(finder) -> list:
    try:
        return finder()
    except ImportError:
        return []


def _find_all(reg: Registry, site_dir, strict):
    found = _safe(_bundled) + _safe(_entry_points)
    try:
        found += _site(site_dir, strict)
    except PermissionError as exc:
        reg.broken["(site)"] = (site_dir, str(exc))
    _load(reg, found, strict)


def _load(reg: Registry, found, strict):
    for name, target, source in found:
        if name in reg.plugins or name in reg.broken:
            continue  # the first found wins: bundled, then entry points, then the site dir
        try:
            if os.sep in target:
                if strict:
                    _check_owner(target)
                spec = importlib.util.spec_from_file_location(f"ceo_site_plugins.{name}", target)
                module = importlib.util.module_from_spec(spec)
                sys.modules[spec.name] = module
                spec.loader.exec_module(module)
            else:
                module = importlib.import_module(target)
            plugin = module.plugin
            if not isinstance(plugin, Plugin):
                raise TypeError("its `plugin` is not a ceo.plugin.Plugin")
        except Exception as exc:  # reported by name; the other plugins keep working
            reg.broken[name] = (source, f"{type(exc).__name__}: {exc}")
            continue
        if plugin.name in reg.plugins:  # a file of another name may declare it: the first still wins
            first = reg.plugins[plugin.name].source
            reg.broken[name] = (source, f"declares plugin {plugin.name!r}, already found ({first})")
            continue
        plugin.source = source
        reg.plugins[plugin.name] = plugin
