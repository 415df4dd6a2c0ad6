"""What people read at the desk, from real runs against the sandbox: check mode in the
conditional ("would subscribe X to csc-general", never "subscribed"), for every verb that
has a check mode, and refusals that name the command typed (`ceo members add needs ...`),
never a step of it (`members.create`).

The accounts are this module's own (`w` + 8 hex digits), made by `ceo members add` and deleted
by `ceo members delete` at the end (test_members_manage.remove_account reports anything left).
"""

from __future__ import annotations

import json
import re
import uuid

import pytest
from test_members_manage import ARCHIVE, Account, Directory, ensure_archive, remove_account

from ceo import terms as T
from ceo.discovery import discover

NEXT = T.add(T.current(), 1)
# A past-tense first word after "would": what check mode must never say.
PAST = re.compile(r"^would (\w+ed|made|wrote|kept|sent|left|took|gave|ran)\b")
QUALNAME = re.compile(r"\b[a-z]+\.[a-z_]+ (needs|:)")  # `members.create needs`: a step's name


def ceo(cluster, user, *args, **kw):
    kw.setdefault("input", "")  # never a terminal: confirmations need --yes
    return cluster.run(["ceo", *args], user, **kw)


@pytest.fixture(scope="module")
def ldap(cluster):
    return Directory(cluster)


@pytest.fixture(scope="module")
def person(cluster, ldap, mailman):
    """A fresh member with two terms, subscribed to csc-general, with a MySQL and a PostgreSQL
    database; deleted with its databases at the end."""
    made_archive = ensure_archive()
    uid = f"w{uuid.uuid4().hex[:8]}"
    proc = ceo(cluster, "ctdalek", "members", "add", uid, "--cn", f"Wording {uid[1:]} Person", "--terms", "2",
               "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)["result"]
    account = Account(uid, result["uidNumber"], result["password"])
    try:
        for noun in ("mysql", "postgresql"):
            made = ceo(cluster, "ctdalek", noun, "create", uid, "--json")
            assert made.returncode == 0, made.stderr
        yield uid
    finally:
        for noun in ("mysql", "postgresql"):
            ceo(cluster, "ctdalek", noun, "delete", uid, "--yes")
        problems = remove_account(cluster, ldap, mailman, account)
        if made_archive:
            ARCHIVE.rmdir()
        assert not problems, problems


# Every verb with a check mode: (user, its arguments; {uid} is the module's person, {new} a name
# nobody has), and whether the run must show at least one "would" line (a maintenance job may
# find nothing to do).
CHECKS = {
    "groups.add": ("ctdalek", ["{new}", "--description", "Wording Club"], True),
    "groups.delete": ("ctdalek", ["club1"], True),
    "groups.addmember": ("ctdalek", ["syscom", "{uid}"], True),
    "groups.removemember": ("ctdalek", ["club1", "regular2"], True),
    "lists.subscribe": ("ofstaff", ["ceo", "{uid}"], True),
    "lists.unsubscribe": ("ofstaff", ["csc-general", "{uid}"], True),
    "members.updateprograms": ("ctdalek", [], False),
    "members.add": ("ofstaff", ["{new}", "--cn", "New Person", "--forwarding-address", "n@example.org"], True),
    "members.modify": ("ofstaff", ["{uid}", "--login-shell", "/bin/sh", "--forwarding-address", "m@example.org"],
                       True),
    "members.renew": ("ofstaff", ["{uid}"], True),
    "members.pwreset": ("ctdalek", ["{uid}"], True),
    "members.delete": ("ctdalek", ["{uid}"], True),
    "members.convert": ("ofstaff", ["{uid}", "--to", "clubrep"], True),
    "members.unrenew": ("ofstaff", ["{uid}", "--term", NEXT], True),
    "members.expire": ("ctdalek", [], False),
    "members.remind": ("ctdalek", [], False),
    "mysql.create": ("ctdalek", ["regular2"], True),
    "mysql.pwreset": ("ctdalek", ["{uid}"], True),
    "mysql.delete": ("ctdalek", ["{uid}"], True),
    "postgresql.create": ("ctdalek", ["regular2"], True),
    "postgresql.pwreset": ("ctdalek", ["{uid}"], True),
    "postgresql.delete": ("ctdalek", ["{uid}"], True),
    "positions.set": ("ctdalek", ["--president", "{uid}", "--vice-president", "regular1", "--sysadmin", "ctdalek"],
                      True),
}


def test_the_table_has_every_verb_with_a_check_mode():
    registry = discover(None)
    checked = {v.qualname for p in registry.plugins.values() for v in p.verbs.values()
               if v.check and not v.hidden and p.source == "bundled"}  # not testkit, not the example
    assert checked == set(CHECKS)


@pytest.mark.parametrize("qualname", sorted(CHECKS))
def test_check_mode_says_what_it_would_do(cluster, person, qualname):
    user, args, some = CHECKS[qualname]
    argv = [*qualname.split("."), *(a.format(uid=person, new=f"x{uuid.uuid4().hex[:8]}") for a in args), "--check"]
    doc = json.loads(ceo(cluster, user, *argv, "--json").stdout)
    assert doc["ok"] is True and doc["check"] is True, doc
    statuses = [s["status"] for s in doc.get("steps", [])]
    assert "done" not in statuses and "failed" not in statuses, doc["steps"]
    would = [s["message"] for s in doc.get("steps", []) if s["status"] == "would"]
    assert would or not some, doc
    for line in would:
        assert line.startswith("would ") and not PAST.match(line), line
        assert not line.startswith("would do step "), line  # a step declared without its would= text
    text = ceo(cluster, user, *argv)
    assert text.returncode == 0, text.stderr
    marked = [line for line in text.stdout.splitlines() if line[:2] in ("~ ", "✓ ", "✗ ")]
    assert all(line.startswith("~ would ") for line in marked), text.stdout
    assert len([m for m in marked if m.startswith("~ ")]) == len(would), text.stdout
    assert text.stdout.rstrip().endswith("(check mode: nothing was changed)"), text.stdout


def test_renew_csv_check_says_would(cluster, person):
    proc = ceo(cluster, "ofstaff", "members", "renew", "--csv", "-", "--check", input=f"uid,terms\n{person},{T.add(NEXT, 1)}\n")
    assert proc.returncode == 0, proc.stderr
    assert f"line 2 {person}: would add terms" in proc.stdout, proc.stdout


# A refusal names the command typed, with the helper's reason, on one line.
REFUSALS = [
    ("regular1", ["members", "add", "zz{new}", "--cn", "No One"],
     "ceo members add needs office or syscom; regular1 has none of these"),
    ("regular1", ["members", "renew", "regular2"], "ceo members renew needs office or syscom; regular1 has none of these"),
    ("regular1", ["members", "modify", "regular2", "--login-shell", "/bin/sh"],
     "ceo members modify needs being regular2 or office or syscom; regular1 has none of these"),
    ("ofstaff", ["members", "delete", "regular2", "--yes"], "ceo members delete needs syscom; ofstaff has none of these"),
    ("regular1", ["groups", "addmember", "club1", "regular1"],
     "ceo groups addmember needs syscom or membership in club1; regular1 has none of these"),
    ("regular1", ["mysql", "create", "regular2"],
     "ceo mysql create needs being regular2 or syscom; regular1 has none of these"),
    ("ofstaff", ["positions", "set", "--treasurer", "regular1"], "ceo positions set needs syscom; ofstaff has none of these"),
    ("regular1", ["lists", "members", "csc-general"], "ceo lists members needs office or syscom; regular1 has none of these"),
    ("regular1", ["lists", "subscribe", "syscom", "regular1"],
     "ceo lists subscribe: members may subscribe or unsubscribe themselves only on csc-general; "
     "the list syscom needs office or syscom"),
]


@pytest.mark.parametrize("user, argv, says", REFUSALS, ids=[" ".join(r[1][:2]) for r in REFUSALS])
def test_refusals_name_the_command_typed(cluster, user, argv, says):
    argv = [a.format(new=uuid.uuid4().hex[:6]) for a in argv]
    proc = ceo(cluster, user, *argv)
    assert (proc.returncode, proc.stderr) == (3, says + "\n"), proc.stderr
    assert not QUALNAME.search(proc.stdout + proc.stderr), proc.stdout
    doc = json.loads(ceo(cluster, user, *argv, "--json").stdout)
    assert doc["error"] == {"name": "NotPermitted", "exit": 3, "message": says}, doc
    assert not any(QUALNAME.search(s["message"]) for s in doc.get("steps", [])), doc["steps"]


def test_the_helper_still_names_its_step(cluster, connect):
    """Only the client rewords: the helper (and so its audit record) says which step it refused."""
    import rawhelper
    _, reply = rawhelper.request(connect("phosphoric-acid", "regular1"), "members", "create",
                                 {"uid": "nobodyhere", "cn": "No One"})
    assert reply["error"]["message"] == "members.create needs office or syscom; regular1 has none of these"


def test_a_hostile_refusal_prints_safely(capsys):
    """A helper's message is shown through the same escaping, reworded or not."""
    from ceo.errors import NotPermitted
    from ceo.output import Output
    from ceo.plugin import Plugin
    from ceo.runner import typed

    plugin = Plugin("members", "")
    plugin.composite("add", "")(lambda run: None)
    evil = NotPermitted("members.create needs \x1b]0;owned\x07office\u202e or syscom; \x1b[2Jx has none")
    err = typed(evil, plugin.verbs["add"], "members.create")
    assert err.message.startswith("ceo members add needs ") and isinstance(err, NotPermitted) and err.exit_code == 3
    Output().error(err)
    shown = capsys.readouterr().err
    assert shown == "ceo members add needs \\x1b]0;owned\\x07office\\u202e or syscom; \\x1b[2Jx has none\n"
    # Only a message that starts with the step's name is reworded: not one that merely contains it.
    other = NotPermitted("only syscom may: members.create needs office")
    assert typed(other, plugin.verbs["add"], "members.create") is other
    assert typed(NotPermitted("members.creation"), plugin.verbs["add"], "members.create").message == "members.creation"
