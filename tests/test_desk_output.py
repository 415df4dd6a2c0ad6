"""What the desk reads: `members get` and `groups get` as panels with a person's labels, the
password of `members add` and `pwreset` in a panel (and, in the office UI, everything but the
password, which the UI reads out itself), `doctor` whole at 80 columns. From real runs against
the sandbox, compared with LDAP read as root; --json stays as scripts know it.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid

import pytest
from test_members_manage import ARCHIVE, Account, Directory, ensure_archive, kinit, remove_account

from ceo import terms as T

RAW = re.compile(r"\b(sn|cn|uid|uidNumber|gidNumber|given_name|club_rep_terms|nonMemberTerm|homeDirectory|"
                 r"loginShell|gid)\b")  # attribute and key names a person should not have to read


def ceo(cluster, user, *args):
    return cluster.run(["ceo", *args], user, input="")


def at80(cluster, user, *args):
    """`ceo ARGS` as rich draws it on an 80-column terminal that is not one (no colours)."""
    return subprocess.run(["ceo", *args], env=cluster.env(user, COLUMNS="80"), input="", capture_output=True,
                          text=True, timeout=60)


def rows(text: str) -> dict[str, str]:
    """A panel's `Label  value` lines as {label: value} (the frame taken off)."""
    out = {}
    for line in text.splitlines():
        inner = line.strip().strip("│").strip()
        parts = re.split(r"\s{2,}", inner, maxsplit=1)
        if len(parts) == 2:
            out[parts[0]] = parts[1]
    return out


@pytest.fixture(scope="module")
def ldap(cluster):
    return Directory(cluster)


def test_members_get_is_a_panel_of_labels_a_person_reads(cluster, ldap):
    proc = at80(cluster, "ofstaff", "members", "get", "regular1")
    assert proc.returncode == 0, proc.stderr
    shown = rows(proc.stdout)
    entry = ldap.user("regular1")
    assert proc.stdout.splitlines()[0].startswith("╭─ regular1 "), proc.stdout
    assert shown["Name"] == entry["cn"][0] and shown["User number"] == str(entry["uidNumber"][0])
    assert shown["Group number"] == str(entry["gidNumber"][0]) and shown["Home"] == entry["homeDirectory"][0]
    assert shown["Terms"].split() == T.sort(entry["term"])
    assert shown["Club rep terms"] == "-" and shown["Locked"] == "no" and "Mail forwarding" in shown
    assert not RAW.search(proc.stdout), proc.stdout
    assert all(len(line) <= 80 for line in proc.stdout.splitlines())


def test_members_get_json_is_unchanged(cluster):
    doc = json.loads(ceo(cluster, "ofstaff", "members", "get", "regular1", "--json").stdout)
    assert set(doc["result"]) == {"uid", "name", "given_name", "sn", "program", "uidNumber", "gidNumber", "home",
                                  "shell", "terms", "club_rep_terms", "positions", "groups", "locked", "forwarding"}


def test_a_locked_member_says_locked(cluster, ldap):
    shown = rows(at80(cluster, "ofstaff", "members", "get", "expired1").stdout)
    assert shown["Locked"] == "yes" and ldap.user("expired1").get("shadowExpire")


def test_groups_get_is_a_panel_with_its_members(cluster, ldap):
    proc = at80(cluster, "ofstaff", "groups", "get", "office")
    assert proc.returncode == 0, proc.stderr
    shown = rows(proc.stdout)
    group = ldap.group("office")
    members = sorted(v.split(",")[0][4:] for v in group.get("uniqueMember", []))
    assert shown["Group number"] == str(group["gidNumber"][0]) and shown["Kind"] == "group"
    assert shown["Its members get"] == "groups cdrom, audio, video, www" and shown["Given to members of"] == "syscom"
    assert shown["Members"] == f"{len(members)} members"
    for uid in members:
        assert re.search(rf"│ {uid} +│ {ldap.user(uid)['cn'][0]} +│ (their own|given by \w+)", proc.stdout), uid
    assert not RAW.search(proc.stdout), proc.stdout
    club = rows(at80(cluster, "ofstaff", "groups", "get", "club1").stdout)
    assert club["Kind"] == "club account" and club["Description"] == "Club One"


def test_groups_get_json_is_unchanged(cluster):
    doc = json.loads(ceo(cluster, "ofstaff", "groups", "get", "office", "--json").stdout)
    assert set(doc["result"]) == {"group", "gid", "description", "club", "members", "ties", "tied_to"}


def test_doctor_is_whole_at_80_columns(cluster):
    proc = at80(cluster, "ofstaff", "doctor")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    assert "…" not in proc.stdout
    checks = json.loads(ceo(cluster, "ofstaff", "doctor", "--json").stdout)["result"]["checks"]
    flat = " ".join(proc.stdout.split())
    for c in checks:
        # every check by name, each detail in full (the --json run's, but for the minutes left)
        assert c["check"] in flat, c
        detail = re.sub(r"\d+ h \d+ min left", "", c["detail"])
        assert " ".join(detail.split()) in flat, c
    for host in {c["host"].split(".")[0] for c in checks if c["host"] != "-"}:
        assert sum(line.split() == [host] for line in lines) == 1, host  # a heading, once per host


def test_members_add_shows_the_account_and_its_password(cluster, ldap, mailman):
    made_archive = ensure_archive()
    uid = f"d{uuid.uuid4().hex[:8]}"
    proc = at80(cluster, "ofstaff", "members", "add", uid, "--cn", "Desk Output Person", "--no-welcome",
                "--no-subscribe")
    account = None
    try:
        assert proc.returncode == 0, proc.stderr
        shown = rows(proc.stdout)
        number = ldap.user(uid)["uidNumber"][0]
        account = Account(uid, int(number), shown.get("Temporary password"))
        assert f"╭─ {uid}: a new member " in proc.stdout
        assert shown["User number"] == str(number) and shown["Principal"] == f"{uid}@{cluster.realm}"
        login = kinit(uid, shown["Temporary password"], cluster.state / "ccache" / f"desk-{uid}", new="Desk-chosen-9")
        assert login.returncode == 0, login.output  # the password shown is the principal's
        assert "shown once" in proc.stdout and not RAW.search(proc.stdout.split("╭─")[1])
    finally:
        problems = remove_account(cluster, ldap, mailman, account or Account(uid, 0, None))
        if made_archive:
            ARCHIVE.rmdir()
        assert not problems, problems


# --- the renderers, on results with, without and with no password (pure: rich only) --------------

def drawn(qualname, result) -> str:
    import io
    from rich.console import Console
    from ceo.discovery import discover
    plugin, name = qualname.split(".")
    buf = io.StringIO()
    discover(None).verb(plugin, name).render(Console(file=buf, width=80, highlight=False), result)
    return buf.getvalue()


ADDED = {"uid": "alice", "uidNumber": 20042, "kind": "member", "terms": ["w2027"], "principal": "alice@X"}
DATABASE = {"host": "db", "port": 3306, "database": "alice", "user": "alice", "file": "/users/alice/ceo-mysql-info"}


@pytest.mark.parametrize("qualname, result, facts", [
    ("members.add", ADDED, ["User number  20042", "Terms  w2027", "Principal  alice@X"]),
    ("members.pwreset", {"principal": "alice@X"}, ["Principal  alice@X"]),
    ("mysql.create", DATABASE, ["Database  alice", "User  alice"]),
])
def test_renderers_show_the_rest_when_the_ui_took_the_password(qualname, result, facts):
    with_password = drawn(qualname, {**result, "password": "Sekr1tSekr1tSekr"})
    without = drawn(qualname, result)  # the office UI took it out to read it out
    nothing = drawn(qualname, {**result, "password": None, "uidNumber": None})  # check mode: nothing made
    for fact in facts:
        assert re.search(r"\s+".join(map(re.escape, fact.split("  "))), with_password), (fact, with_password)
        assert re.search(r"\s+".join(map(re.escape, fact.split("  "))), without), (fact, without)
    assert "Sekr1tSekr1tSekr" in with_password and "Sekr1t" not in without and "assword  " not in without
    assert nothing == ""


def test_a_panel_shows_hostile_values_as_text():
    """Names and descriptions come from LDAP: escape sequences and rich markup are shown, not run."""
    import io
    from rich.console import Console
    from ceo.output import facts
    buf = io.StringIO()
    facts(Console(file=buf, width=80, force_terminal=True, highlight=False), "x\x1b]0;owned\x07",
          [("Name", "[red]Mallory[/] \x1b[2J\u202eevil")])
    shown = buf.getvalue()
    assert "\x1b]0;" not in shown and "\x1b[2J" not in shown and "\u202e" not in shown, repr(shown)
    assert "[red]Mallory[/]" in shown and "\\x1b[2J" in shown and "\\u202e" in shown, shown


def test_emoji_codes_in_a_value_are_printed_as_typed(capsys):
    """rich would turn `:smile:` in a member's name into an emoji: ceo's consoles print it as typed."""
    from ceo.output import Output, facts
    out = Output()
    facts(out.console, "bob:smile:[b]", [("Name", "Bob :smile: :thumbs_up:")])
    out.err_console.print("x :smile:")
    got = capsys.readouterr()
    assert "Bob :smile: :thumbs_up:" in got.out and "bob:smile:[b]" in got.out and "x :smile:" in got.err, got


def test_printable_ascii_is_shown_as_is_and_anything_else_as_the_pattern_escapes_it():
    """plain() skips its pattern for printable ASCII: what it returns must be the pattern's."""
    from hypothesis import given, settings, strategies as st
    from ceo import output

    def escaped(text):
        return re.sub(output._UNSAFE, lambda m: f"\\u{ord(m.group()):04x}" if ord(m.group()) > 0xff
                      else f"\\x{ord(m.group()):02x}", text)

    @settings(max_examples=3000, deadline=None)
    @given(st.text(alphabet=st.characters(max_codepoint=0x7f)) | st.text(max_size=8))
    def check(text):
        assert output.plain(text) == escaped(text)
    check()
    assert output.plain("\x1b]0;pwned\x07 \u202egnp") == "\\x1b]0;pwned\\x07 \\u202egnp"
