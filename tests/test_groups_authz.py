"""Who may run each groups and positions verb: one table, every verb against every kind of caller.

Callers: syscom (ctdalek), office (ofstaff), a club's member (regular2, in club1), a member
(regular1), and a club account (club1 itself: clubs get no principal, so this module gives it
one for the length of the test, to show that even a club that could log in gets nothing).
A permitted row runs with --check (nothing changes); a refused row runs for real and must
exit 3 with one line, the directory and the rosters unchanged (read as root and as Mailman's
admin, not through ceo).
"""

from __future__ import annotations

import subprocess

import pytest
from groupstate import ceo, one_line
from rootldap import RootLDAP

SYSCOM, OFFICE, CLUB_MEMBER, MEMBER, CLUB = "ctdalek", "ofstaff", "regular2", "regular1", "club1"
EVERYONE = (SYSCOM, OFFICE, CLUB_MEMBER, MEMBER, CLUB)

# verb arguments, and the callers that may (everyone else is refused with exit 3)
TABLE = [
    (["groups", "get", "club1"], EVERYONE),
    (["groups", "list"], EVERYONE),
    (["positions", "get"], EVERYONE),
    (["groups", "add", "authzclub", "--description", "Authz Club"], (SYSCOM,)),
    (["groups", "delete", "club1"], (SYSCOM,)),
    (["groups", "addmember", "club1", "regular1"], (SYSCOM, CLUB_MEMBER)),
    (["groups", "removemember", "club1", "clubrep1"], (SYSCOM, CLUB_MEMBER)),
    (["groups", "addmember", "syscom", "regular1"], (SYSCOM,)),
    (["groups", "removemember", "syscom", "ctdalek", "--no-unsubscribe"], (SYSCOM,)),
    (["groups", "addmember", "office", "regular1"], (SYSCOM,)),
    (["groups", "addmember", "exec", "regular1"], (SYSCOM,)),
    (["groups", "removemember", "office", "ofstaff"], (SYSCOM,)),
    (["positions", "set", "--president", "ctdalek", "--vice-president", "regular1", "--sysadmin", "ctdalek"],
     (SYSCOM,)),
]
READS = {"get", "list"}


@pytest.fixture(scope="module")
def club_can_log_in(cluster):
    """A principal and a ticket for the club account, removed afterwards."""
    keytab = cluster.state / "club1.keytab"
    for query in ("addprinc -randkey club1", f"ktadd -k {keytab} club1"):
        subprocess.run(["kadmin.local", "-q", query], check=True, capture_output=True)
    subprocess.run(["kinit", "-k", "-t", str(keytab), "-c", cluster.ccache(CLUB), "club1"], check=True)
    yield
    subprocess.run(["kadmin.local", "-q", "delprinc -force club1"], check=True, capture_output=True)
    keytab.unlink()
    (cluster.state / "ccache" / CLUB).unlink(missing_ok=True)


def snapshot(cluster, mailman) -> tuple:
    """Every entry with every attribute, and every list's roster: what a refused verb must not change."""
    def dump(conn):
        conn.search(cluster.base_dn, "(objectClass=*)", attributes=["*"])
        return sorted((e["dn"], sorted((k, sorted(map(bytes, v))) for k, v in e["raw_attributes"].items()))
                      for e in conn.response if e.get("type") == "searchResEntry")
    rosters = sorted((m.list_name, sorted(str(x.email) for x in m.members)) for m in mailman.lists)
    return RootLDAP(cluster)._do(dump), rosters


@pytest.mark.parametrize("caller", EVERYONE)
@pytest.mark.parametrize("argv,allowed", TABLE, ids=[" ".join(a[:3]) for a, _ in TABLE])
def test_who_may_run_each_verb(cluster, mailman, club_can_log_in, argv, allowed, caller):
    if caller in allowed:
        extra = [] if argv[1] in READS else ["--check"]
        proc = ceo(cluster, caller, *argv, *extra, "--json")
        assert proc.returncode == 0, (caller, argv, proc.stdout, proc.stderr)
        return
    before = snapshot(cluster, mailman)
    proc = ceo(cluster, caller, *argv, "--yes")
    one_line(proc, 3)
    assert snapshot(cluster, mailman) == before, f"{caller} was refused {argv} but something changed"
