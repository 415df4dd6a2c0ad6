"""ceo.inventory against Ansible itself: every inventory here is also read by the real
`ansible-inventory --list`, and our hosts, merged host vars, groups, hosts and children must
come out the same. Needs no sandbox: only the virtualenv's ansible-core.

ansible-inventory takes about half a second a run, so most cases share one combined file
(each case uses its own host and group names); cases about the whole file (hosts before any
section, `[all:vars]`, an `[all]` section) get one run each, and the error cases run side by
side.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ceo.errors import BadInput  # noqa: E402
from ceo.inventory import Inventory  # noqa: E402

ANSIBLE_INVENTORY = REPO / ".venv" / "bin" / "ansible-inventory"
SPECIAL = ("all", "ungrouped")

MISSING = (f"{ANSIBLE_INVENTORY} is missing: ansible-core is in the test extras (pip install -e '.[test]'), "
           "and the comparisons with Ansible must run, never skip")


def test_ansible_inventory_is_installed():
    """The comparisons below need the real ansible-inventory: without it they fail, and so does this."""
    assert ANSIBLE_INVENTORY.exists(), MISSING
    proc = subprocess.run([str(ANSIBLE_INVENTORY), "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    version = re.match(r"ansible-inventory \[core (\d+)\.(\d+)\.", proc.stdout)
    assert version and tuple(map(int, version.groups())) >= (2, 16), proc.stdout  # setup.cfg: >=2.16


# --- running ansible-inventory ---------------------------------------------------------------

def _start_ansible(inventory: Path, scratch: Path) -> subprocess.Popen:
    """Start `ansible-inventory -i inventory --list`, isolated from this machine's Ansible setup."""
    if not ANSIBLE_INVENTORY.exists():
        pytest.fail(MISSING, pytrace=False)
    home = scratch / "home"
    home.mkdir(parents=True, exist_ok=True)
    config = scratch / "ansible.cfg"
    config.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        HOME=str(home),                    # nothing lands in the real ~/.ansible
        ANSIBLE_HOME=str(home),
        ANSIBLE_CONFIG=str(config),        # no /etc/ansible/ansible.cfg or ./ansible.cfg settings
        ANSIBLE_LOCALHOST_WARNING="False",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="False",
        # Only the INI plugin, and a file it cannot parse is an error (exit 1) rather than a
        # warning and an empty inventory, or a fallback to the YAML/TOML plugins.
        ANSIBLE_INVENTORY_ENABLED="ini",
        ANSIBLE_INVENTORY_UNPARSED_FAILED="True",
    )
    return subprocess.Popen(
        [str(ANSIBLE_INVENTORY), "-i", str(inventory), "--list"],
        cwd=scratch, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish_ansible(proc: subprocess.Popen) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return proc.returncode, out, err


def ansible_list(inventory: Path, scratch: Path) -> dict:
    rc, out, err = _finish_ansible(_start_ansible(inventory, scratch))
    assert rc == 0, f"ansible-inventory rejected {inventory}:\n{err}"
    return json.loads(out)


# --- comparing ---------------------------------------------------------------------------------

def _untag(value):
    """ansible-inventory writes a string that is not trusted as a template (e.g. one made from a
    bytes literal) as {"__ansible_unsafe": "..."}; the variable's value is still that string."""
    if isinstance(value, dict):
        if value.keys() == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: _untag(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_untag(v) for v in value]
    return value


@dataclass
class View:
    """An inventory as sets: direct hosts and children per group, merged vars per host."""
    hosts: dict[str, set] = field(default_factory=dict)
    children: dict[str, set] = field(default_factory=dict)
    hostvars: dict[str, dict] = field(default_factory=dict)

    def descendants_hosts(self, group: str) -> set:
        out, todo, seen = set(), [group], set()
        while todo:
            g = todo.pop()
            if g not in seen:
                seen.add(g)
                out |= self.hosts[g]
                todo += self.children[g]
        return out


def ansible_view(data: dict) -> View:
    view = View()
    # Every key but `_meta` is a group; a group with neither hosts nor children has no key of
    # its own (and empty "hosts"/"children" lists are left out), but it is still named in its
    # parents' "children", so collect names from both places.
    names = {k for k in data if k != "_meta"}
    for g in list(names):
        names |= set(data[g].get("children", []))
    for g in names:
        # ansible-inventory never lists hosts under "all" (they show under "ungrouped" or their
        # groups); our Group("all").hosts holds those of an [all] section, so "all" compares
        # by children only.
        view.hosts[g] = set() if g == "all" else set(data.get(g, {}).get("hosts", []))
        view.children[g] = set(data.get(g, {}).get("children", []))
    every_host = set().union(*view.hosts.values())
    hostvars = data["_meta"]["hostvars"]
    assert set(hostvars) <= every_host, "ansible lists vars for a host in no group"
    # A host without variables has no entry in _meta.hostvars. For INI sources Ansible adds
    # nothing of its own here (inventory_file/inventory_dir are removed as internal), so the
    # comparison is exact.
    view.hostvars = {h: _untag(hostvars.get(h, {})) for h in every_host}
    return view


def our_view(inv: Inventory) -> View:
    view = View()
    for name, g in inv.groups.items():
        view.hosts[name] = set() if name == "all" else set(g.hosts)
        view.children[name] = set(g.children)
    view.hostvars = {h: inv.host_vars(h) for h in inv.hosts}
    return view


def assert_same(inv: Inventory, data: dict, hosts=None, groups=None):
    """Our parse of a file equals Ansible's, limited to some hosts and groups if given."""
    ours, theirs = our_view(inv), ansible_view(data)
    hosts = set(theirs.hostvars) if hosts is None else set(hosts)
    groups = set(theirs.hosts) if groups is None else set(groups)
    assert not hosts - set(theirs.hostvars), f"hosts Ansible lacks: {hosts - set(theirs.hostvars)}"
    assert not hosts - set(ours.hostvars), f"hosts we lack: {hosts - set(ours.hostvars)}"
    if hosts == set(theirs.hostvars):
        assert set(ours.hostvars) == hosts, f"hosts only we have: {set(ours.hostvars) - hosts}"
    if groups == set(theirs.hosts):
        assert set(ours.hosts) == groups, f"groups differ: {set(ours.hosts) ^ groups}"
    for h in sorted(hosts):
        assert ours.hostvars[h] == theirs.hostvars[h], f"vars of host {h}"
        # The queries ceo uses, against group membership as Ansible sees it.
        assert set(inv.roles_of(h)) == {g for g in theirs.hosts if g not in SPECIAL
                                        and h in theirs.descendants_hosts(g)}, f"roles_of({h!r})"
    for g in sorted(groups):
        assert ours.hosts[g] == theirs.hosts[g], f"direct hosts of group {g}"
        assert ours.children[g] == theirs.children[g], f"children of group {g}"
        assert {h.name for h in inv.hosts_of(g)} == theirs.descendants_hosts(g), f"hosts_of({g!r})"


def check_against_ansible(text: str, scratch: Path, name: str = "hosts.ini") -> tuple[Inventory, dict]:
    """Write text to scratch/name, read it with both parsers, and compare everything."""
    path = scratch / name
    path.write_text(text)
    data = ansible_list(path, scratch)
    inv = Inventory.load(str(path))
    assert_same(inv, data)
    return inv, data


# --- cases ---------------------------------------------------------------------------------------

@dataclass
class Case:
    text: str
    vars: dict = field(default_factory=dict)    # host -> its exact merged vars
    groups: dict = field(default_factory=dict)  # group -> (direct hosts, children)
    alone: bool = False                         # about the whole file: run in a file of its own


CASES = {
    "plain_groups": Case(
        """
[plain_web]
plain-w1
plain-w2
[plain-db]
plain-d1
""",
        vars={"plain-w1": {}, "plain-d1": {}},
        # A dash in a group name is kept (Ansible only warns by default).
        groups={"plain_web": ({"plain-w1", "plain-w2"}, set()), "plain-db": ({"plain-d1"}, set())},
    ),
    "ungrouped_first": Case(
        """loose-a
loose-b:2200 note=first
[ug_g]
ug-h
loose-b note=second
[ug_g:vars]
from_group=1
""",
        vars={"loose-a": {}, "ug-h": {"from_group": 1},
              "loose-b": {"ansible_port": 2200, "note": "second", "from_group": 1}},
        # loose-b is listed in ug_g later, so it is no longer ungrouped.
        groups={"ungrouped": ({"loose-a"}, set()), "ug_g": ({"ug-h", "loose-b"}, set()),
                "all": (set(), {"ungrouped", "ug_g"})},
        alone=True,
    ),
    "all_section": Case(
        """
[all]
allsec-h v=1
[all:vars]
w=2
[allsec_g]
allsec-g
""",
        vars={"allsec-h": {"v": 1, "w": 2}, "allsec-g": {"w": 2}},
        # A host listed only under [all] counts as ungrouped.
        groups={"ungrouped": ({"allsec-h"}, set()), "all": (set(), {"ungrouped", "allsec_g"})},
        alone=True,
    ),
    "several_groups": Case(
        """
[multi_a]
multi-h x=1 d="{'a': 1}"
multi-only-a
[multi_b]
multi-h y=2
[multi_c]
multi-h x=3 d="{'b': 2}"
[multi_b:vars]
gv=b
""",
        # Later lines override earlier ones, a dict wholesale; group vars stay below host vars.
        vars={"multi-h": {"x": 3, "y": 2, "d": {"b": 2}, "gv": "b"}, "multi-only-a": {}},
        groups={"multi_a": ({"multi-h", "multi-only-a"}, set()), "multi_b": ({"multi-h"}, set()),
                "multi_c": ({"multi-h"}, set())},
    ),
    "children_declared_later": Case(
        """
[later_parent:children]
later_child
later_mid
[later_parent:vars]
v=parent
p_only=1
[later_mid:children]
later_child
[later_child]
later-h
[later_child:vars]
v=child
[later_mid]
later-mid-h
[later_parent]
later-h
""",
        vars={"later-h": {"v": "child", "p_only": 1}, "later-mid-h": {"v": "parent", "p_only": 1}},
        groups={"later_parent": ({"later-h"}, {"later_child", "later_mid"}),
                "later_mid": ({"later-mid-h"}, {"later_child"}),
                "later_child": ({"later-h"}, set())},
    ),
    "depth_precedence": Case(
        """
[all:vars]
lvl=all
only_all=1
[leaf:vars]
lvl=leaf
[top:children]
mid
leaf        # also directly under top, but its depth is still 3 (all > top > mid > leaf)
[top:vars]
lvl=top
top_only=t
[mid:children]
leaf
[mid:vars]
lvl=mid
mid_only=m
[leaf]
deep-h lvl=host
deep-h2
[mid]
mid-h
[top]
top-h
[shallow]
deep-h2
[shallow:vars]
lvl=shallow
""",
        vars={
            "deep-h": {"lvl": "host", "only_all": 1, "top_only": "t", "mid_only": "m"},
            "deep-h2": {"lvl": "leaf", "only_all": 1, "top_only": "t", "mid_only": "m"},
            "mid-h": {"lvl": "mid", "only_all": 1, "top_only": "t", "mid_only": "m"},
            "top-h": {"lvl": "top", "only_all": 1, "top_only": "t"},
        },
        groups={"top": ({"top-h"}, {"mid", "leaf"}), "mid": ({"mid-h"}, {"leaf"}),
                "leaf": ({"deep-h", "deep-h2"}, set()), "all": (set(), {"ungrouped", "top", "shallow"})},
        alone=True,
    ),
    "group_var_types": Case(
        """
[typed]
typed-h
[typed:vars]
an_int=42
a_neg=-7
an_underscored=1_000
a_leading_zero=0777
a_float=1.5
a_str=hello world
a_quoted="quoted string"
a_single='single'
a_true=True
a_lower_true=true
a_yes=yes
a_none=None
a_list=[1, 'two', 3.0]
a_dict={'k': [1, 2], 'n': None}
a_tuple=(1, 2)
a_set={3, 1, 2}
an_empty_set=set()
a_nested=[(1, b'x'), {'k': (2,)}]
a_py_comment=42 # Python reads this as a comment after the literal
a_str_hash=foo # but here the whole line is the (non-literal) string
an_empty=
a_complex=1+2j
an_ellipsis=...
a_bytes=b'raw'
an_eq=a=b
   a_spaced  =  spaced value
a_template={{ an_int }}
""",
        vars={"typed-h": {
            "an_int": 42, "a_neg": -7, "an_underscored": 1000, "a_leading_zero": "0777",
            "a_float": 1.5, "a_str": "hello world", "a_quoted": "quoted string",
            "a_single": "single", "a_true": True, "a_lower_true": "true", "a_yes": "yes",
            "a_none": None, "a_list": [1, "two", 3.0], "a_dict": {"k": [1, 2], "n": None},
            "a_tuple": [1, 2], "a_set": [1, 2, 3], "an_empty_set": [],
            "a_nested": [[1, "x"], {"k": [2]}], "a_py_comment": 42,
            "a_str_hash": "foo # but here the whole line is the (non-literal) string",
            "an_empty": "", "a_complex": "(1+2j)", "an_ellipsis": "...", "a_bytes": "raw",
            "an_eq": "a=b", "a_spaced": "spaced value", "a_template": "{{ an_int }}",
        }},
    ),
    "inline_host_vars": Case(
        """
[inline]
inline-a ansible_user="a b" ansible_host=10.0.0.5 count=3 flag=True   # trailing comment
inline-b path='/srv/x y' empty="" quoted="'kept'" list="[1, 2]" text="it's"
; a semicolon comment line
   # an indented hash comment line
inline-c note=x#y dropped=1
inline-d "spaced=a b c" k=v;w
""",
        vars={
            "inline-a": {"ansible_user": "a b", "ansible_host": "10.0.0.5", "count": 3, "flag": True},
            "inline-b": {"path": "/srv/x y", "empty": "", "quoted": "kept", "list": [1, 2],
                         "text": "it's"},
            # Like a shell, `#` inside a word starts a comment too.
            "inline-c": {"note": "x"},
            "inline-d": {"spaced": "a b c", "k": "v;w"},
        },
        groups={"inline": ({"inline-a", "inline-b", "inline-c", "inline-d"}, set())},
    ),
    "ports": Case(
        """
[ports]
port-a:2222
port-b:2200 ansible_port=2300
port-c
port-d ansible_port=5
10.1.2.3:2022
[fe80::1]:2023
[ports2]
port-a:3333
port-c:4444
port-d:7777
port-z:0
weird!:22
""",
        vars={
            # The port comes from a host's first line; later ones are ignored, and so is 0.
            "port-a": {"ansible_port": 2222}, "port-b": {"ansible_port": 2300}, "port-c": {},
            "port-d": {"ansible_port": 5}, "port-z": {},
            "10.1.2.3": {"ansible_port": 2022}, "fe80::1": {"ansible_port": 2023},
            # Not a valid host name, so `:22` is no port but part of the name.
            "weird!:22": {},
        },
        groups={"ports2": ({"port-a", "port-c", "port-d", "port-z", "weird!:22"}, set())},
    ),
    "ranges": Case(
        """
[ranges]
web[01:03].example.org
db[a:c]
node[1:7:3]
rack[1:2]-u[08:09]
mx[8:10]:2022 role=mx
n[y:B]
""",
        vars={"web01.example.org": {}, "mx10": {"ansible_port": 2022, "role": "mx"}},
        groups={"ranges": ({
            "web01.example.org", "web02.example.org", "web03.example.org", "dba", "dbb", "dbc",
            "node1", "node4", "node7", "rack1-u08", "rack1-u09", "rack2-u08", "rack2-u09",
            "mx8", "mx9", "mx10", "ny", "nz", "nA", "nB"}, set())},
    ),
    "siblings_by_name": Case(
        """
[sib_zeta]
sib-h
[sib_alpha]
sib-h
[sib_mid]
sib-h
[sib_zeta:vars]
color=zeta
[sib_alpha:vars]
color=alpha
shape=alpha
size=alpha
[sib_mid:vars]
shape=mid
[sib_parent:children]
sib_y
sib_x
[sib_y]
sib-n
[sib_x]
sib-n
[sib_y:vars]
c=y
[sib_x:vars]
c=x
""",
        # Same depth: applied in name order, so the last name wins, whatever the file order.
        vars={"sib-h": {"color": "zeta", "shape": "mid", "size": "alpha"}, "sib-n": {"c": "y"}},
    ),
    "group_priority": Case(
        """
[prio_a]
prio-h
[prio_b]
prio-h
[prio_a:vars]
ansible_group_priority=10
who=a
[prio_b:vars]
who=b
""",
        # A higher ansible_group_priority applies later at the same depth; it is no variable.
        vars={"prio-h": {"who": "a"}},
    ),
    "comments": Case(
        """
[cmt_g]   # a comment after a section header
cmt-h  # a comment after a host
[cmt_p:children]  # and after a [children] header
cmt_g   # and after a child's name
[cmt_p:vars]
k=v # kept: a vars line is no host line
n=1 # dropped: Python reads it as a comment
""",
        vars={"cmt-h": {"k": "v # kept: a vars line is no host line", "n": 1}},
        groups={"cmt_g": ({"cmt-h"}, set()), "cmt_p": (set(), {"cmt_g"})},
    ),
}

COMBINED = [name for name, case in CASES.items() if not case.alone]


def _check_expectations(inv: Inventory, case: Case):
    for host, expected in case.vars.items():
        assert inv.hosts[host].vars == expected, f"vars of {host}"
    for group, (hosts, children) in case.groups.items():
        if group != "all":
            assert set(inv.groups[group].hosts) == hosts, f"hosts of {group}"
        assert set(inv.groups[group].children) == children, f"children of {group}"


@pytest.fixture(scope="session")
def combined(tmp_path_factory):
    """All cases that do not need a file of their own, in one file and one ansible run."""
    scratch = tmp_path_factory.mktemp("combined")
    for name in COMBINED:
        # Each starts with a section, so none continues the one before.
        assert CASES[name].text.lstrip().startswith("["), name
    text = "\n".join(f"# --- {name}\n{CASES[name].text}" for name in COMBINED)
    path = scratch / "hosts.ini"
    path.write_text(text)
    return Inventory.load(str(path)), ansible_list(path, scratch)


def test_combined_file_matches_ansible(combined):
    inv, data = combined
    assert_same(inv, data)


@pytest.mark.parametrize("name", CASES)
def test_case_matches_ansible(name, combined, tmp_path):
    case = CASES[name]
    if case.alone:
        inv, data = check_against_ansible(case.text, tmp_path)
    else:
        # The case's own hosts and groups, within the combined file.
        inv, data = combined
        alone = Inventory.parse(case.text)
        assert_same(inv, data, hosts=alone.hosts, groups=set(alone.groups) - set(SPECIAL))
    _check_expectations(inv, case)


# --- the repo's hosts.ini and the queries ceo makes --------------------------------------------

@pytest.fixture(scope="module")
def repo_inventory(tmp_path_factory):
    path = REPO / "hosts.ini"
    inv = Inventory.load(str(path))
    assert_same(inv, ansible_list(path, tmp_path_factory.mktemp("repo")))
    return inv


PHOSPHORIC = "phosphoric-acid.csclub.internal"


@pytest.mark.parametrize("role, host, address", [
    ("ldap", PHOSPHORIC, "127.0.0.2"),
    ("kerberos", PHOSPHORIC, "127.0.0.2"),
    ("homes", PHOSPHORIC, "127.0.0.2"),
    ("databases", "coffee.csclub.internal", "127.0.0.3"),
    ("mail", "mail.csclub.internal", "127.0.0.4"),
])
def test_host_for(repo_inventory, role, host, address):
    h = repo_inventory.host_for(role)
    assert (h.name, h.address, h.vars["ansible_host"]) == (host, address, address)
    assert [x.name for x in repo_inventory.hosts_of(role)] == [host]


def test_roles_of(repo_inventory):
    assert repo_inventory.roles_of(PHOSPHORIC) == ["ldap", "kerberos", "homes"]
    assert repo_inventory.roles_of("coffee.csclub.internal") == ["databases"]
    assert repo_inventory.roles_of("mail.csclub.internal") == ["mail"]
    assert repo_inventory.roles_of("no-such-host") == []


def test_hosts_of(repo_inventory):
    assert [h.name for h in repo_inventory.hosts_of("all")] == [
        PHOSPHORIC, "coffee.csclub.internal", "mail.csclub.internal"]
    assert repo_inventory.hosts_of("ungrouped") == []
    assert repo_inventory.hosts_of("no-such-group") == []


def test_host_for_missing_role(repo_inventory):
    with pytest.raises(BadInput) as exc:
        repo_inventory.host_for("printers")
    assert "'printers'" in exc.value.message
    assert str(REPO / "hosts.ini") in exc.value.message


def test_hosts_of_walks_children():
    # (test_case_matches_ansible[depth_precedence] checks the same file against Ansible.)
    inv = Inventory.parse(CASES["depth_precedence"].text)
    # Direct hosts first, then each child's, each host once, in file order.
    assert [h.name for h in inv.hosts_of("top")] == ["top-h", "mid-h", "deep-h", "deep-h2"]
    assert inv.roles_of("deep-h2") == ["leaf", "top", "mid", "shallow"]
    assert inv.host_for("top").name == "top-h"


def test_load_missing_file(tmp_path):
    with pytest.raises(BadInput, match="does not exist"):
        Inventory.load(str(tmp_path / "nope.ini"))


# --- errors ------------------------------------------------------------------------------------

@dataclass
class Bad:
    text: str
    lineno: int
    says: str                    # a fragment of our message
    ansible_rejects: bool = True


ERRORS = {
    "vars_for_undeclared_group": Bad("[a]\nh\n[ghost:vars]\nx=1\n", 3, "undefined group 'ghost'"),
    "children_names_undeclared_group": Bad(
        "[p:children]\nmissing\n[p:vars]\nx=1\n", 2, "undefined group 'missing'"),
    "host_token_without_equals": Bad("[g]\nh x=1 oops\n", 2, "'oops'"),
    "unterminated_quote": Bad('[g]\nh user="a b\n', 2, "No closing quotation"),
    "unknown_section_type": Bad("[g]\nh\n[g:foo]\nx\n", 3, "unknown type 'foo'"),
    "section_with_space": Bad("[g]\nh\n[bad group]\n", 3, "invalid section"),
    # Only `#` comments a section line: Ansible reads this as a host line, and fails.
    "semicolon_after_section": Bad("[g]\nh\n[g2] ; c\nx\n", 3, "bad range"),
    "semicolon_after_child": Bad("[g]\nh\n[p:children]\ng ; c\n", 4, "expected a group name"),
    "vars_line_without_equals": Bad("[g]\nh\n[g:vars]\njustaword\n", 4, "expected key=value"),
    "unhashable_literal": Bad("[g]\nh\n[g:vars]\nx={[1]: 2}\n", 4, "unhashable"),
    "group_contains_itself": Bad("[a:children]\na\n", 2, "contain each other"),
    "groups_contain_each_other": Bad("[a:children]\nb\n[b:children]\na\n", 4, "contain each other"),
    "empty_host_name": Bad("[g]\n'' x=1\n", 2, "empty host name"),
    "host_ends_in_colon": Bad("[g]\nh:\n", 2, "ends in ':'"),
    "range_without_end": Bad("[g]\nweb[1]\n", 2, "bad range"),
    "range_padding_mismatch": Bad("[g]\nweb[01:100]\n", 2, "zero-padded"),
    "priority_not_a_number": Bad("[g]\nh\n[g:vars]\nansible_group_priority=high\n", 4, "must be a number"),
    "priority_none": Bad("[g]\nh\n[g:vars]\nansible_group_priority=None\n", 4, "must be a number"),
    # Ansible silently adds no host for an empty range; we refuse it as a sure typo.
    "empty_range": Bad("[g]\nweb[3:1]\n", 2, "empty range", ansible_rejects=False),
}


@pytest.fixture(scope="session")
def ansible_verdicts(tmp_path_factory):
    """ansible-inventory's exit code and stderr for each error case, all run side by side."""
    procs = {}
    for name, bad in ERRORS.items():
        if bad.ansible_rejects:
            scratch = tmp_path_factory.mktemp(name)
            (scratch / "hosts.ini").write_text(bad.text)
            procs[name] = _start_ansible(scratch / "hosts.ini", scratch)
    return {name: _finish_ansible(proc) for name, proc in procs.items()}


@pytest.mark.parametrize("name", ERRORS)
def test_bad_inventory(name, tmp_path, ansible_verdicts):
    bad = ERRORS[name]
    path = tmp_path / "hosts.ini"
    path.write_text(bad.text)
    with pytest.raises(BadInput) as exc:
        Inventory.load(str(path))
    assert exc.value.message.startswith(f"{path}:{bad.lineno}: "), exc.value.message
    assert bad.says in exc.value.message
    with pytest.raises(BadInput, match=rf"^inventory:{bad.lineno}: "):
        Inventory.parse(bad.text)
    if bad.ansible_rejects:
        rc, out, err = ansible_verdicts[name]
        assert rc == 1, f"ansible-inventory did not reject it with its error status 1 ({rc}):\n{out}{err}"
        assert "Failed to parse inventory" in err


@pytest.mark.parametrize("token", ["web1", "WEB[A:C].example", "db[a:c]", "x[01:10:2]-y", "café.example", "a_b",
                                   "bad-", "-bad", "a..b", "h[A:c]", "[::1]", "web[1]", "ünï[1:3]"])
def test_a_host_name_is_recognised_as_by_ansibles_case_insensitive_pattern(token):
    import re
    from ceo import inventory
    rng = r"\[(?:[a-z]:[a-z]|[0-9]+:[0-9]+)(?::[0-9]+)?\]"
    label = rf"(?:\w|{rng})(?:[\w-]|{rng})*(?<![_-])"
    ansible = re.compile(rf"{label}(?:\.{label})*", re.I | re.U)
    assert bool(inventory._HOSTNAME.fullmatch(token)) == bool(ansible.fullmatch(token))
