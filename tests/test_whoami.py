"""`ceo whoami`: the helper's answer to "what may I do", from the policy module, as each kind
of caller gets it; the UI's menus are built from it. Through the real command."""

from __future__ import annotations

import json
import subprocess

import pytest


def whoami(cluster, user):
    proc = cluster.run(["ceo", "whoami", "--json"], user, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["result"]


@pytest.mark.parametrize("user, offered, not_offered", [
    ("regular1", {"members.get": "all", "members.modify": "self", "mysql.create": "self"},
     ["members.add", "members.renew", "members.pwreset", "groups.add", "groups.addmember", "positions.set",
      "members.expire", "mysql.list"]),
    ("ofstaff", {"members.add": "all", "members.renew": "all", "members.modify": "all", "lists.members": "all"},
     ["members.pwreset", "members.delete", "groups.add", "positions.set", "members.updateprograms"]),
    ("ctdalek", {"members.pwreset": "all", "groups.add": "all", "positions.set": "all", "mysql.create": "all"},
     []),
    # a club's member may change their club's members (a rule decides which group)
    ("regular2", {"groups.addmember": "some", "members.modify": "self"}, ["groups.add", "members.add"]),
])
def test_what_each_caller_is_offered(cluster, user, offered, not_offered):
    me = whoami(cluster, user)
    assert me["caller"] == user and me["principal"] == f"{user}@{cluster.realm}"
    for verb, how in offered.items():
        assert me["may"].get(verb) == how, (verb, me["may"].get(verb))
    assert not set(not_offered) & set(me["may"]), set(not_offered) & set(me["may"])


def test_no_step_is_offered(cluster):
    """Steps are not commands: run alone they leave half a job, so no menu lists them."""
    me = whoami(cluster, "ctdalek")
    assert "members.create" not in me["may"] and "groups.join" not in me["may"]
    assert "members.add" in me["may"]


def test_groups_come_from_ldap_not_the_request(cluster):
    assert "syscom" in whoami(cluster, "ctdalek")["groups"]
    assert "syscom" not in whoami(cluster, "ofstaff")["groups"]
    assert whoami(cluster, "regular1")["member"] is True


def test_the_ui_needs_a_terminal(cluster):
    proc = cluster.run(["ceo", "tui"], "ofstaff", stdin=subprocess.DEVNULL)
    assert proc.returncode == 2 and "needs a terminal" in proc.stderr and "Traceback" not in proc.stderr
    bare = cluster.run(["ceo"], "ofstaff", stdin=subprocess.DEVNULL)  # off a terminal: the usage, as before
    assert bare.returncode == 2 and "usage: ceo" in bare.stderr
