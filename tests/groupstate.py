"""What the groups and positions tests check, read from the services themselves: group
memberships and grant records (LDAP as root), positions, subscriptions (Mailman's REST API),
NSS's view (`id`), and the test's own accounts, made and deleted through ceo."""

from __future__ import annotations

import configparser
import contextlib
import io
import json
import subprocess
import uuid
from pathlib import Path

import ldap3
from ldap3.utils.conv import escape_filter_chars
from rootldap import RootLDAP

BASE = "dc=csclub,dc=internal"
PEOPLE, GROUPS, GRANTS = f"ou=People,{BASE}", f"ou=Group,{BASE}", f"ou=Grants,{BASE}"
DOMAIN = "csclub.internal"
CONFIG = Path("/etc/csc/ceo.ini")


def ceo(cluster, user, *args):
    return cluster.run(["ceo", *args], user, stdin=subprocess.DEVNULL)


def ok(proc) -> dict:
    """The result of a --json command that must have succeeded."""
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    return json.loads(proc.stdout)["result"]


def one_line(proc, code: int, *words: str) -> str:
    """Exit `code`, one line on stderr naming the problem, no traceback anywhere."""
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ceo"), proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


class Directory(RootLDAP):
    def _search(self, base, flt, attrs, scope=ldap3.SUBTREE):
        def search(conn):
            conn.search(base, flt, search_scope=scope, attributes=attrs)
            return [e for e in conn.response or [] if e.get("type") == "searchResEntry"]
        return self._do(search)

    def groups_of(self, uid) -> set[str]:
        dn = escape_filter_chars(f"uid={uid},{PEOPLE}")
        return {e["attributes"]["cn"][0] for e in self._search(GROUPS, f"(uniqueMember={dn})", ["cn"])}

    def grants_of(self, uid) -> set[str]:
        """The cn of every grant record naming uid: `syscom:office`, `syscom:list:syscom`."""
        dn = escape_filter_chars(f"uid={uid},{PEOPLE}")
        return {e["attributes"]["cn"][0] for e in self._search(GRANTS, f"(uniqueMember={dn})", ["cn"])}

    def members_of(self, group) -> set[str]:
        entry = self.read(f"cn={group},{GROUPS}") or {}
        return {v.split(",")[0][4:] for v in entry.get("uniqueMember", [])}

    def positions(self) -> dict[str, set[str]]:
        """{uid: positions} of everyone holding one."""
        return {e["attributes"]["uid"][0]: {p.lower() for p in e["attributes"]["position"]}
                for e in self._search(PEOPLE, "(position=*)", ["uid", "position"], ldap3.LEVEL)}

    def membership(self, group, uid, present: bool):
        """Put uid in or out of a group by hand (a membership of their own, no record)."""
        op = ldap3.MODIFY_ADD if present else ldap3.MODIFY_DELETE
        self.modify(f"cn={group},{GROUPS}", {"uniqueMember": [(op, [f"uid={uid},{PEOPLE}"])]})

    def ungrant(self, cn, uid):
        self.modify(f"cn={cn},{GRANTS}", {"uniqueMember": [(ldap3.MODIFY_DELETE, [f"uid={uid},{PEOPLE}"])]})


def address(uid) -> str:
    return f"{uid}@{DOMAIN}"


def lists_of(mailman, uid) -> set[str]:
    """The lists uid's address is subscribed to, read list by list."""
    return {m.list_name for m in mailman.lists if address(uid) in {s.email for s in m.members}}


def subscribe(mailman, name, uid, present: bool):
    """A subscription of uid's own, made in Mailman by hand."""
    mlist = mailman.get_list(f"{name}@{DOMAIN}")
    if present:
        mlist.subscribe(address(uid), pre_verified=True, pre_confirmed=True, pre_approved=True,
                        send_welcome_message=False)
    elif address(uid) in {m.email for m in mlist.members}:
        mlist.unsubscribe(address(uid), pre_confirmed=True, pre_approved=True)


def nss_groups(uid) -> set[str]:
    """The groups NSS (nslcd, from LDAP) gives uid, as `id` shows them."""
    proc = subprocess.run(["id", "-Gn", uid], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return set(proc.stdout.split())


def state(ldap, mailman, uid) -> dict:
    """Everything a membership change could touch for uid."""
    return {"groups": ldap.groups_of(uid), "grants": ldap.grants_of(uid), "lists": lists_of(mailman, uid),
            "positions": ldap.positions().get(uid, set())}


def new_member(cluster, prefix: str) -> str:
    uid = f"{prefix}{uuid.uuid4().hex[:8]}"
    proc = ceo(cluster, "ctdalek", "members", "add", uid, "--cn", f"Group Test {uid}", "--no-welcome",
               "--no-subscribe")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return uid


def delete_member(cluster, ldap, mailman, uid):
    """`ceo members delete`, which must leave no membership, grant record or subscription."""
    proc = ceo(cluster, "ctdalek", "members", "delete", uid, "--yes")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert ldap.groups_of(uid) == set() and ldap.grants_of(uid) == set() and lists_of(mailman, uid) == set()


@contextlib.contextmanager
def config(**sections):
    """The sandbox's ceo.ini (read by the client and every helper) with some keys changed, e.g.
    config(ties={"lists_best_effort": "yes"}); the file's own text is back afterwards."""
    before = CONFIG.read_text()
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(before)
    for section, keys in sections.items():
        if not parser.has_section(section):
            parser.add_section(section)
        for key, value in keys.items():
            parser.set(section, key, value)
    text = io.StringIO()
    parser.write(text)
    CONFIG.write_text(text.getvalue())
    try:
        yield
    finally:
        CONFIG.write_text(before)
        assert CONFIG.read_text() == before
