"""Ansible INI inventories (`hosts.ini`): groups are ceo's roles, with vars and children.

Follows Ansible's INI plugin: hosts before any section are `ungrouped`; `[g:vars]` and inline
`k=v` values are Python literals when they parse as one, else strings; host lines are split
like a shell (quotes, trailing comments); `host:port` and ranges `web[01:03]`, `db[a:c]`;
a host's variables merge `all`, then its groups by depth, `ansible_group_priority` and name,
then its own. tests/test_inventory.py checks all of this against `ansible-inventory --list`.
"""

from __future__ import annotations

import ast
import re
import shlex
import string

from .errors import BadInput

# Only `#` starts a comment after a section or a child name: Ansible reads `[g] ; x` as a
# host line (and rejects it), so we must not take it for a section.
_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$")
_GROUP_NAME = re.compile(r"^([^:\]\s]+)\s*(?:#.*)?$")
# Ansible's parse_address(): a `:port` is split off a bracketed address, or off a pattern whose
# other colons are all inside [ranges], and only if what is left is a host name or IPv4
# address (labels of word characters and dashes, or ranges) or an IPv6 address; otherwise the
# whole token is the name. (Our IPv6 test is looser than Ansible's full grammar.)
_BRACKETED_PORT = re.compile(r"\[(.+)\]:([0-9]+)")
_HOST_PORT = re.compile(r"((?:[^:\[\]]|\[[^\]]*\])*):([0-9]+)")
# Letters in both cases spelled out, not re.I: with Unicode \w, re.I makes this pattern take
# ~1.4 ms to compile instead of ~0.3, on every run (\w has both cases anyway).
_RANGE = r"\[(?:[a-zA-Z]:[a-zA-Z]|[0-9]+:[0-9]+)(?::[0-9]+)?\]"
_LABEL = rf"(?:\w|{_RANGE})(?:[\w-]|{_RANGE})*(?<![_-])"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_IPV6 = re.compile(r"(?=.*:.*:)[0-9a-f.:\[\]]+", re.I)

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
        self.priority = 1  # `ansible_group_priority`: orders groups of the same depth


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
                    if name not in inv.hosts:
                        inv.hosts[name] = Host(name)
                        # Ansible takes the port from a host's first line only (and not 0).
                        host_vars[name] = {"ansible_port": port} if port else {}
                    inv.hosts[name].groups.add(group)
                    if name not in inv.groups[group].hosts:
                        inv.groups[group].hosts.append(name)
                    host_vars[name].update(variables)
            elif state == "vars":
                if "=" not in line:
                    raise BadInput(f"{where}: expected key=value, got {line!r}")
                key, value = (part.strip() for part in line.split("=", 1))
                value = _value(value, where)
                if key != "ansible_group_priority":
                    inv.groups[group].vars[key] = value
                    continue
                # Ansible keeps the priority out of the group's vars (and fails if not a number).
                try:
                    inv.groups[group].priority = int(value)
                except (TypeError, ValueError):
                    raise BadInput(f"{where}: ansible_group_priority must be a number, got {value!r}") from None
            else:
                m = _GROUP_NAME.match(line)
                if not m:
                    raise BadInput(f"{where}: expected a group name, got {line!r}")
                child = m.group(1)
                if child not in inv.groups:
                    inv.groups[child] = Group(child)
                    pending.setdefault(child, (lineno, "children"))
                inv._add_child(group, child, where)
        for name, (lineno, kind) in pending.items():
            if kind == "vars":
                raise BadInput(f"{path or 'inventory'}:{lineno}: section [{name}:vars] is for undefined group {name!r}")
            raise BadInput(f"{path or 'inventory'}:{lineno}: [children] names undefined group {name!r}")
        inv._finish(host_vars)
        return inv

    def _add_child(self, parent: str, child: str, where: str):
        if child == parent or parent in self._descendants(child):
            raise BadInput(f"{where}: groups {parent!r} and {child!r} would contain each other")
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
        # A host listed in some group is not "ungrouped" (Ansible moves it out), but one listed
        # only under [all] is.
        for host in self.hosts.values():
            if host.groups <= {"all", "ungrouped"}:
                host.groups.add("ungrouped")
            else:
                host.groups.discard("ungrouped")
        self.groups["ungrouped"].hosts = [h for h, host in self.hosts.items() if "ungrouped" in host.groups]
        for name, host in self.hosts.items():
            ancestors = {"all"}
            stack = list(host.groups)
            while stack:
                g = stack.pop()
                if g not in ancestors:
                    ancestors.add(g)
                    stack.extend(self.groups[g].parents)
            merged: dict = {}
            for g in sorted(ancestors, key=lambda n: (self._depth(n), self.groups[n].priority, n)):
                merged.update(self.groups[g].vars)
            merged.update(host_vars.get(name, {}))
            host.vars = merged


def _value(text: str, where: str):
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    except (TypeError, MemoryError, RecursionError) as exc:  # e.g. {[1]: 2}; Ansible fails too
        raise BadInput(f"{where}: cannot read value {text!r}: {exc}") from None
    return _plain(value)


def _plain(value):
    """What Ansible keeps of a literal: tuples and sets become lists, bytes text, and `...` and
    complex numbers their text, also inside lists and dicts."""
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if value is ... or isinstance(value, complex):
        return "..." if value is ... else str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value


def _host_line(line: str, where: str):
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError as exc:
        raise BadInput(f"{where}: cannot parse host line {line!r}: {exc}") from None
    if not tokens or not tokens[0]:
        raise BadInput(f"{where}: empty host name in {line!r}")
    names, port = _expand(tokens[0], where)
    variables = {}
    for token in tokens[1:]:
        if "=" not in token:
            raise BadInput(f"{where}: expected key=value host variable, got {token!r}")
        key, value = token.split("=", 1)
        variables[key] = _value(value, where)
    return names, port, variables


def _expand(pattern: str, where: str):
    """`name`, `name:port`, `[v6]:port`, and one or more `[a:b]` or `[a:b:step]` ranges."""
    port = None
    m = _BRACKETED_PORT.fullmatch(pattern) or _HOST_PORT.fullmatch(pattern)
    if m and (_HOSTNAME.fullmatch(m.group(1)) or _IPV6.fullmatch(m.group(1))):
        pattern, port = m.group(1), int(m.group(2))
    elif pattern.endswith(":"):
        raise BadInput(f"{where}: host pattern {pattern!r} ends in ':' (reserved for a port)")
    return _ranges(pattern, pattern, where), port


def _ranges(name: str, pattern: str, where: str) -> list[str]:
    """Expand the first [begin:end(:step)] in name, then the rest, as Ansible does."""
    if "[" not in name:
        return [name]
    head, _, rest = name.partition("[")
    inner, closed, tail = rest.partition("]")
    bounds = inner.split(":")
    if not closed or len(bounds) not in (2, 3) or not bounds[1]:
        raise BadInput(f"{where}: bad range [{inner}] in {pattern!r}: want [begin:end] or [begin:end:step]")
    begin, end, step = bounds[0] or "0", bounds[1], bounds[2] if len(bounds) == 3 else "1"
    width = len(begin) if begin.startswith("0") and len(begin) > 1 else 0
    if width and len(end) != width:
        raise BadInput(f"{where}: bad range [{inner}] in {pattern!r}: zero-padded ends must be as long")
    try:
        if len(begin) == len(end) == 1 and begin in string.ascii_letters and end in string.ascii_letters:
            # Letters run a..zA..Z, as in Ansible (so [x:B] is x y z A B).
            first, last = string.ascii_letters.index(begin), string.ascii_letters.index(end)
            values = list(string.ascii_letters[first:last + 1:int(step)]) if first <= last else []
        else:
            values = [str(i).zfill(width) for i in range(int(begin), int(end) + 1, int(step))]
    except ValueError:
        raise BadInput(f"{where}: bad range [{inner}] in {pattern!r}") from None
    if not values:
        # Ansible silently adds no host here; an empty range is surely a typo, so we refuse it.
        raise BadInput(f"{where}: empty range [{inner}] in {pattern!r}")
    return [n for v in values for n in _ranges(head + v + tail, pattern, where)]
