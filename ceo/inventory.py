"""Ansible INI inventories (`hosts.ini`): groups are ceo's roles, with vars and children.

Follows Ansible's INI plugin: hosts before any section are `ungrouped`; `[g:vars]` and inline
`k=v` values are Python literals when they parse as one, else strings; host lines are split
like a shell (quotes, trailing comments); `host:port` and ranges `web[01:03]`, `db[a:c]`;
a host's variables merge `all`, then its groups by depth and name, then its own.
"""

from __future__ import annotations

import ast
import re
import shlex

from .errors import BadInput

_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:[#;].*)?$")
_GROUP_NAME = re.compile(r"^([^:\]\s]+)\s*(?:[#;].*)?$")
_RANGE = re.compile(r"\[([0-9a-zA-Z]+):([0-9a-zA-Z]+)(?::([0-9]+))?\]")

ROLES = ("ldap", "kerberos", "homes", "databases", "mail")


class Host:
    def __init__(self, name: str):
        self.name = name
        self.vars: dict = {}
        self.groups: set[str] = set()

    @property
    def address(self) -> str:
        return str(self.vars.get("ansible_host", self.name))

    @property
    def port(self) -> int:
        return int(self.vars.get("ansible_port", 22))

    @property
    def user(self) -> str | None:
        user = self.vars.get("ansible_user")
        return str(user) if user is not None else None

    @property
    def connection(self) -> str:
        return str(self.vars.get("ansible_connection", "paramiko"))

    @property
    def helper(self) -> str:
        return str(self.vars.get("ceo_helper", "sudo -n ceo-helper"))

    def __repr__(self):
        return f"Host({self.name!r})"


class Group:
    def __init__(self, name: str):
        self.name = name
        self.vars: dict = {}
        self.hosts: list[str] = []
        self.children: list[str] = []
        self.parents: set[str] = set()


class Inventory:
    def __init__(self, path: str | None = None):
        self.path = path
        self.hosts: dict[str, Host] = {}
        self.groups: dict[str, Group] = {"all": Group("all"), "ungrouped": Group("ungrouped")}

    # --- queries -------------------------------------------------------------------------
    def hosts_of(self, group: str) -> list[Host]:
        """Hosts in a group or any of its descendants, in file order."""
        if group not in self.groups:
            return []
        seen, out = set(), []

        def walk(g: Group):
            for h in g.hosts:
                if h not in seen:
                    seen.add(h)
                    out.append(self.hosts[h])
            for c in g.children:
                walk(self.groups[c])
        walk(self.groups[group])
        return out

    def host_for(self, role: str) -> Host:
        hosts = self.hosts_of(role)
        if not hosts:
            where = self.path or "the inventory"
            raise BadInput(f"no host has role {role!r} in {where}: add a [{role}] section")
        return hosts[0]

    def roles_of(self, host: str) -> list[str]:
        h = self.hosts.get(host)
        if h is None:
            return []
        return [g for g in self.groups if g not in ("all", "ungrouped") and h in self.hosts_of(g)]

    def host_vars(self, name: str) -> dict:
        return dict(self.hosts[name].vars)

    # --- parsing ---------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str) -> "Inventory":
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            raise BadInput(f"inventory {path} does not exist (give -i FILE or set CEO_INVENTORY)") from None
        except OSError as exc:
            raise BadInput(f"cannot read inventory {path}: {exc.strerror}") from None
        return cls.parse(text, path)

    @classmethod
    def parse(cls, text: str, path: str | None = None) -> "Inventory":
        inv = cls(path)
        host_vars: dict[str, dict] = {}
        pending: dict[str, tuple[int, str]] = {}  # referenced but not yet declared groups
        group, state = "ungrouped", "hosts"
        for lineno, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            where = f"{path or 'inventory'}:{lineno}"
            m = _SECTION.match(line)
            if m:
                group, state = m.group(1), m.group(2) or "hosts"
                if state not in ("hosts", "children", "vars"):
                    raise BadInput(f"{where}: section [{m.group(1)}:{state}] has unknown type {state!r}")
                if group not in inv.groups:
                    inv.groups[group] = Group(group)
                    if state == "vars":
                        pending.setdefault(group, (lineno, "vars"))
                if state != "vars" and pending.get(group, (0, ""))[1] == "vars":
                    del pending[group]
                if state != "vars" and pending.get(group, (0, ""))[1] == "children":
                    del pending[group]
                continue
            if line.startswith("[") and line.endswith("]"):
                raise BadInput(f"{where}: invalid section {line!r} (no spaces allowed)")
            if state == "hosts":
                names, port, variables = _host_line(line, where)
                for name in names:
                    host = inv.hosts.setdefault(name, Host(name))
                    host.groups.add(group)
                    if name not in inv.groups[group].hosts:
                        inv.groups[group].hosts.append(name)
                    hv = host_vars.setdefault(name, {})
                    if port is not None:
                        hv["ansible_port"] = port
                    hv.update(variables)
            elif state == "vars":
                if "=" not in line:
                    raise BadInput(f"{where}: expected key=value, got {line!r}")
                key, value = (part.strip() for part in line.split("=", 1))
                inv.groups[group].vars[key] = _value(value)
            else:
                m = _GROUP_NAME.match(line)
                if not m:
                    raise BadInput(f"{where}: expected a group name, got {line!r}")
                child = m.group(1)
                if child not in inv.groups:
                    inv.groups[child] = Group(child)
                    pending.setdefault(child, (lineno, "children"))
                inv._add_child(group, child)
        for name, (lineno, kind) in pending.items():
            if kind == "vars":
                raise BadInput(f"{path or 'inventory'}:{lineno}: section [{name}:vars] is for undefined group {name!r}")
            raise BadInput(f"{path or 'inventory'}:{lineno}: [children] names undefined group {name!r}")
        inv._finish(host_vars)
        return inv

    def _add_child(self, parent: str, child: str):
        if child == parent or parent in self._descendants(child):
            raise BadInput(f"groups {parent!r} and {child!r} would contain each other")
        if child not in self.groups[parent].children:
            self.groups[parent].children.append(child)
        self.groups[child].parents.add(parent)

    def _descendants(self, name: str) -> set[str]:
        out: set[str] = set()
        stack = list(self.groups[name].children)
        while stack:
            g = stack.pop()
            if g not in out:
                out.add(g)
                stack.extend(self.groups[g].children)
        return out

    def _depth(self, name: str) -> int:
        parents = self.groups[name].parents
        return 0 if name == "all" else 1 + max((self._depth(p) for p in parents), default=0)

    def _finish(self, host_vars: dict[str, dict]):
        all_ = self.groups["all"]
        for name, g in self.groups.items():
            if name != "all" and not g.parents:
                all_.children.append(name)
                g.parents.add("all")
        # A host listed in some group is not "ungrouped" (Ansible moves it out).
        ungrouped = self.groups["ungrouped"]
        ungrouped.hosts = [h for h in ungrouped.hosts if self.hosts[h].groups == {"ungrouped"}]
        for name, host in self.hosts.items():
            if host.groups != {"ungrouped"}:
                host.groups.discard("ungrouped")
            ancestors = {"all"}
            stack = list(host.groups)
            while stack:
                g = stack.pop()
                if g not in ancestors:
                    ancestors.add(g)
                    stack.extend(self.groups[g].parents)
            merged: dict = {}
            for g in sorted(ancestors, key=lambda n: (self._depth(n), n)):
                merged.update(self.groups[g].vars)
            merged.update(host_vars.get(name, {}))
            host.vars = merged


def _value(text: str):
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text
    if value is ... or isinstance(value, complex):
        return text
    return value


def _host_line(line: str, where: str):
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError as exc:
        raise BadInput(f"{where}: cannot parse host line {line!r}: {exc}") from None
    if not tokens:
        raise BadInput(f"{where}: empty host line")
    names, port = _expand(tokens[0], where)
    variables = {}
    for token in tokens[1:]:
        if "=" not in token:
            raise BadInput(f"{where}: expected key=value host variable, got {token!r}")
        key, value = token.split("=", 1)
        variables[key] = _value(value)
    return names, port, variables


def _expand(pattern: str, where: str):
    """`name`, `name:port`, `[v6]:port`, and one or more `[a:b]` ranges."""
    port = None
    if pattern.endswith(":"):
        raise BadInput(f"{where}: host pattern {pattern!r} ends in ':' (reserved for a port)")
    m = re.fullmatch(r"\[([0-9a-fA-F:.]+)\]:(\d+)", pattern) or re.fullmatch(r"(.*[^:\]]|.*\]):(\d+)", pattern)
    if m and pattern.count(":") - sum(r.group(0).count(":") for r in _RANGE.finditer(pattern)) == 1:
        pattern, port = m.group(1), int(m.group(2))
    names = [pattern]
    while any(_RANGE.search(n) for n in names):
        expanded = []
        for n in names:
            r = _RANGE.search(n)
            if not r:
                expanded.append(n)
                continue
            start, end, step = r.group(1), r.group(2), int(r.group(3) or 1)
            if start.isdigit() and end.isdigit():
                width = len(start) if start.startswith("0") else 0
                values = [str(i).zfill(width) for i in range(int(start), int(end) + 1, step)]
            elif len(start) == len(end) == 1 and start.isalpha() and end.isalpha():
                values = [chr(c) for c in range(ord(start), ord(end) + 1, step)]
            else:
                raise BadInput(f"{where}: bad range [{r.group(0)[1:-1]}] in {pattern!r}")
            if not values:
                raise BadInput(f"{where}: empty range in {pattern!r}")
            expanded += [n[:r.start()] + v + n[r.end():] for v in values]
        names = expanded
    return names, port
