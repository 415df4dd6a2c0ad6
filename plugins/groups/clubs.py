"""Club accounts: add and delete, and the steps behind them.

A club account is an LDAP user of class `club` (a number in the club range, no password, no
principal: nobody logs in as it), its group of the same name and number, whose members are the
club's members, a sudo rule that lets them run commands as the club without a password, and a
home the group shares (POSIX default ACLs keep what any of them creates group-writable). Names
follow the members' rules (reserved, referenced, tombstoned), and deletion is the members' own
steps for the kind `club`.
"""

from __future__ import annotations

import os
import shutil

from ceo import policy
from ceo.errors import AlreadyExists, BadInput, NotFound
from ceo.plugin import Str, Uid
from ceo.services import directory, homes
from plugins.lists import refuse_list_addresses
from plugins.members import accounts as acct
from plugins.members.commands import delete_account

from . import plugin

Name = Uid("name", "the club's account name", positional=True, metavar="NAME")
Description = Str("description", "what the club is called, e.g. 'Women in Computer Science'", required=True,
                  max_length=256)


@plugin.composite("add", "Add a club account: LDAP user, group, sudo rule for its members, shared home (syscom)",
                  example='ceo groups add gamedev --description "Game Development Club"',
                  allow=("syscom",), check=True, params=[Name, Description], leftover="ceo groups delete {name} --yes")
def add(run, name, description):
    run.prepare(["ldap", "homes"])
    run.everywhere("members.name_free", {"uid": name})  # a system name on any host is no club's
    refuse_list_addresses(run, name)
    account = run.step("groups.create", {"name": name, "description": description}, role="ldap",
                       describe=f"club account {name}, its group and sudo rule")
    home = run.step("groups.home", {"name": name}, role="homes", describe=f"shared home of {name}")
    return {"name": name, "uidNumber": (account or {}).get("uidNumber"), "home": (home or {}).get("home"),
            "sudo_rule": f"%{name}"}


@plugin.composite("delete", "Delete a club account and every reference to it; a tombstone keeps the name "
                  "(syscom)",
                  example="ceo groups delete gamedev --check",
                  allow=("syscom",), check=True,
                  confirm="Delete the club account {name}: its sudo rule, group, home directory and list roles?",
                  params=[Uid("name", "the club's account name", positional=True, metavar="NAME")])
def delete(run, name):
    run.prepare(["ldap", "homes"])
    run.call("groups.club_account", {"name": name}, role="ldap")  # a club, not a member or a group
    return {"name": name, "home": delete_account(run, name, "club")}


# --- steps ------------------------------------------------------------------------------------

@plugin.verb("club_account", "Step: a club account's LDAP facts; refuses any other account", role="ldap",
             allow=("syscom",), hidden=True, params=[Name])
def club_account(ctx, name):
    found = acct.search(ctx, "(objectClass=posixAccount)", ["uidNumber", "cn", "objectClass"],
                        base=acct.dn(ctx, name), scope="BASE")
    if not found:
        group = acct.search(ctx, "(objectClass=*)", ["cn"], base=f"cn={name},{acct.groups(ctx)}", scope="BASE")
        raise BadInput(f"{name} is a group with no club account: groups delete removes club accounts only") \
            if group else NotFound(f"no club account {name!r}")
    if not policy.is_club(ctx, name):
        kind = "member" if "member" in {c.lower() for c in found[0].get("objectClass", [])} else "system"
        raise BadInput(f"{name} is a {kind} account, not a club account ceo manages")
    return {"name": name, "uidNumber": int(found[0]["uidNumber"][0]), "description": acct.first(found[0], "cn")}


@plugin.verb("create", "Step: the club's LDAP user, its group and its sudo rule", role="ldap", allow=("syscom",),
             mutating=True, check=True, hidden=True, params=[Name, Description])
def create(ctx, name, description):
    acct.refuse_taken_name(ctx, name)
    rule_dn = directory.sudo_rule_dn(ctx.config, name)
    if acct.search(ctx, "(objectClass=*)", ["cn"], base=rule_dn, scope="BASE"):
        raise AlreadyExists(f"a sudo rule %{name} already exists; remove it first")
    attrs = {"cn": description, "uid": name, "homeDirectory": os.path.join(ctx.config.get("homes", "base", "/users"),
                                                                          name),
             "loginShell": ctx.config.get("clubs", "shell", "/bin/bash")}
    number = acct.add_account(ctx, name, "club", ["top", "account", "posixAccount", "shadowAccount", "club"], attrs,
                              {"description": description}, lambda n: f"added club account {name} (uid number {n})",
                              f"club group {name}")
    conn, rule = ctx.ldap(), directory.club_sudo_rule(name)
    says = f"the members of {name} may run commands as {name}, no password"
    ctx.step("sudo-rule", lambda: directory.add(conn, rule_dn, f"adding {rule_dn}", ["top", "sudoRole"], rule),
             lambda: directory.delete(conn, rule_dn, f"removing {rule_dn}", gone_ok=True),
             describe=f"added sudo rule %{name}: {says}", would=f"add sudo rule %{name}: {says}")
    return {"name": name, "uidNumber": number}


@plugin.verb("home", "Step: the club's home, shared by its group (default ACLs), with www", role="homes",
             allow=("syscom",), mutating=True, check=True, hidden=True, params=[Name])
def home(ctx, name):
    base = ctx.config.get("homes", "base", "/users")
    skel = ctx.config.get("homes", "skeleton", os.path.join(base, "skel"))
    path = os.path.join(base, name)
    if os.path.lexists(path):
        raise AlreadyExists(f"{path} already exists")
    says = f"{path} from {skel}, with www, owned by {name}, group {name} rwx with default ACLs"
    if ctx.check:
        ctx.step("home", None, would=f"make {says}")
        return {"home": path}
    number = policy.managed_number(ctx, name, "club")  # from LDAP, never from the client
    ctx.step("home", lambda: homes.copy_shared_skeleton(skel, path, number), lambda: shutil.rmtree(path),
             describe=f"made {says}")
    return {"home": path}
