"""Group membership: get, list, addmember, removemember, and what a group ties.

A group's ties (`[ties]` in ceo.ini, policy.ties) are the other groups and the lists its
members get: syscom gives office, staff, adm, src and the syscom and syscom-alerts lists. Adding
a member is one operation across two hosts, rolled back as a whole if a step fails: the LDAP
host puts them in the group and its tied groups, the mail host says which tied lists they are
on, the LDAP host records the others as the group's gift (grants.py says why), and the mail
host subscribes them. With
`[ties] lists_best_effort = yes` a Mailman failure is a warning and the groups stand.
`add_member` and `remove_member` are the one way to change a group's members: `ceo positions`
uses them for exec.
"""

from __future__ import annotations

from ceo import policy
from ceo.errors import CeoError, NotFound, PartlyDone, Unreachable
from ceo.output import count, facts, safe
from ceo.plugin import Flag
from ceo.services import directory

from . import plugin
from .grants import MANAGE, Group, Member


# --- the plan, shared with `ceo positions` -------------------------------------------------------

def add_member(run, group, uid, subscribe=True) -> dict:
    """Steps: uid into group and its tied groups (LDAP); which tied lists they are on (mail); the
    record of the lists the group gives them (LDAP), then the subscriptions (mail). A failed list
    step fails the whole operation unless lists are best effort; the caller rolls back
    (`rolled_back`)."""
    args = {"group": group, "uid": uid}
    joined = run.step("groups.join", args, role="ldap", describe=f"{uid} in {group} and the groups it ties")
    lists = joined.get("lists", []) if subscribe else []
    if not lists:
        return {"group": group, "uid": uid, "subscribed": []}
    best = policy.lists_best_effort(run.config)
    held = _list_step(run, "groups.tied_lists", args, best, f"the lists {group} ties that {uid} is on")
    if held is None:
        _best_effort_note(run, f"{uid} stays in {group}; subscribe them to {', '.join(lists)} by hand")
        return {"group": group, "uid": uid, "subscribed": []}
    recorded = len(run.done)
    run.step("groups.grant_lists", {**args, "giving": held["off"], "already": held["on"]},
             role="ldap", describe=f"the record of the lists {group} gives {uid}")
    try:
        subs = _list_step(run, "groups.subscribe_tied", args, best,
                          f"subscriptions of {uid} to {', '.join(lists)} (tied to {group})")
    except CeoError as err:
        # The mail host could not take back every subscription it made, or the session to it
        # was lost (what it made is not known): their records stay, so that a re-run or
        # removemember takes them for the group's; the rest rolls back.
        if isinstance(err, Unreachable):
            run.keep_since(recorded)
            raise PartlyDone(f"{err.message}; could not undo: the subscriptions the mail host may have made "
                             f"(the records of them are kept)") from err
        if err.exit_code == PartlyDone.exit_code:
            run.keep_since(recorded)
        raise
    if subs is None:  # the records stand: a subscription made by hand later is the group's gift
        _best_effort_note(run, f"{uid} stays in {group}; subscribe them to {', '.join(lists)} by hand")
        return {"group": group, "uid": uid, "subscribed": []}
    return {"group": group, "uid": uid, "subscribed": subs["subscribed"]}


def remove_member(run, group, uid, unsubscribe=True) -> dict:
    """Steps: off the tied lists only its records gave them (mail), then out of group and out of
    what only its records gave them (LDAP). The lists first: were the LDAP step first and the
    caller removing themselves from syscom, its undo would no longer be theirs to make."""
    args = {"group": group, "uid": uid}
    unsubscribed, failed = [], False
    if unsubscribe and policy.ties(run.config).get(group, policy.Tie()).lists:
        done = _list_step(run, "groups.unsubscribe_tied", args, policy.lists_best_effort(run.config),
                          f"unsubscribing {uid} from the lists {group} gave them")
        unsubscribed, failed = (done or {}).get("unsubscribed", []), done is None
    left = run.step("groups.leave", {**args, "keep_lists": not unsubscribe}, role="ldap",
                    describe=f"{uid} out of {group} and what it gave them")
    if failed and left.get("unsubscribe"):
        _best_effort_note(run, f"{uid} is out of {group} but still on {', '.join(left['unsubscribe'])}: "
                               "unsubscribe them by hand")
    return {"group": group, "uid": uid, "unsubscribed": unsubscribed}


def _list_step(run, qualname, args, best, describe):
    try:
        return run.step(qualname, args, role="mail", describe=describe, best_effort=best)
    except CeoError as err:
        raise err.reworded(f"{err.message}; lists are not best effort ([ties] lists_best_effort = no), "
                           "so none of the change is made") from None


def _best_effort_note(run, what):
    run.output.event(run.inventory.host_for("mail").name, {
        "step": "lists", "status": "warning",
        "message": f"lists are best effort ([ties] lists_best_effort = yes): the LDAP changes stand; {what}"})


def rolled_back(run, err: CeoError) -> CeoError:
    """A failed operation, its completed steps undone; its message says whether they were."""
    undoing = bool(run.done)
    err = run.rollback(err)
    if undoing and not isinstance(err, PartlyDone):
        err = err.reworded(f"{err.message}: rolled back, every change before it was undone")
    return err


def _result(run, result: dict) -> dict:
    if run.output.warnings:
        result["warnings"] = list(run.output.warnings)
    return result


# --- verbs ---------------------------------------------------------------------------------------

@plugin.composite("addmember", "Add a user to a group, and to the groups and lists it ties (syscom; "
                  "a club's members: their club)",
                  example=("ceo groups addmember gamedev alice",
                           "ceo groups addmember syscom alice   # also office, staff, adm, src and two lists"),
                  check=True, allow=MANAGE["allow"], params=[
                      Group, Member, Flag("no_subscribe", "do not subscribe them to the lists the group ties")],
                  leftover="ceo groups removemember {group} {uid}")
def addmember(run, group, uid, no_subscribe):
    run.prepare(["ldap"] if no_subscribe else ["ldap", "mail"])
    try:
        return _result(run, add_member(run, group, uid, subscribe=not no_subscribe))
    except CeoError as err:
        raise rolled_back(run, err) from None


@plugin.composite("removemember", "Remove a user from a group, and only what it gave them "
                  "(syscom; a club's members: their club)",
                  example=("ceo groups removemember gamedev alice",
                           "ceo groups removemember syscom alice --no-unsubscribe"),
                  check=True, allow=MANAGE["allow"], params=[
                      Group, Member, Flag("no_unsubscribe", "leave their list subscriptions alone")])
def removemember(run, group, uid, no_unsubscribe):
    run.prepare(["ldap"] if no_unsubscribe else ["ldap", "mail"])
    try:
        return _result(run, remove_member(run, group, uid, unsubscribe=not no_unsubscribe))
    except CeoError as err:
        raise rolled_back(run, err) from None


def _member_uid(config, value: str) -> str:
    """A uniqueMember value as the uid it names (a DN outside ou=People as itself)."""
    people = "," + directory.people_dn(config).lower()
    low = value.lower().replace(", ", ",")
    return value.split(",", 1)[0][4:] if low.startswith("uid=") and low.endswith(people) else value


def _description(group: dict, club: dict | None) -> str | None:
    """The group's description, else its club account's (description, else its name)."""
    for values in (group.get("description"), (club or {}).get("description"), (club or {}).get("cn")):
        if values:
            return values[0]
    return None


def _names(ctx, uids) -> dict[str, str]:
    out, people = {}, directory.people_dn(ctx.config)
    uids = sorted(uids)
    for i in range(0, len(uids), 200):
        flt = "(|" + "".join(f"(uid={directory.escape(u)})" for u in uids[i:i + 200]) + ")"
        for e in ctx.ldap().entries(people, flt, ["uid", "cn"], "LEVEL"):
            out[e["uid"][0]] = (e.get("cn") or [""])[0]
    return out


@plugin.verb("get", "Show a group: description, gid, members and their names, what it ties",
             example="ceo groups get syscom",
             role="ldap",
             params=[Group], render=lambda c, r: _render_group(c, r))
def get(ctx, group):
    conn, config = ctx.ldap(), ctx.config
    found = conn.entries(f"cn={group},{directory.groups_dn(config)}", "(objectClass=posixGroup)",
                         ["cn", "gidNumber", "description", "uniqueMember", "memberUid"], "BASE")
    if not found:
        raise NotFound(f"no group {group!r}")
    entry = found[0]
    club = conn.entries(directory.user_dn(config, group), "(objectClass=club)", ["cn", "description"], "BASE")
    uids = {_member_uid(config, v) for v in entry.get("uniqueMember", [])} | set(entry.get("memberUid", []))
    names = _names(ctx, uids)
    given_by: dict[str, list[str]] = {}  # who has this group as another group's gift
    for e in conn.entries(directory.grants_dn(config), f"(cn=*:{directory.escape(group)})", ["cn", "uniqueMember"],
                          "LEVEL"):
        giver = e["cn"][0].rsplit(":", 1)[0]
        for v in e.get("uniqueMember", []):
            given_by.setdefault(_member_uid(config, v), []).append(giver)
    all_ties = policy.ties(config)
    tie = all_ties.get(group, policy.Tie())
    return {"group": group, "gid": int(entry["gidNumber"][0]) if entry.get("gidNumber") else None,
            "description": _description(entry, club[0] if club else None), "club": bool(club),
            "members": [{"uid": u, "name": names.get(u), "given_by": sorted(given_by.get(u, []))} for u in sorted(uids)],
            "ties": {"groups": list(tie.groups), "lists": list(tie.lists)},
            "tied_to": sorted(g for g, t in all_ties.items() if group in t.groups)}


def _render_group(console, r):
    ties = [f"groups {', '.join(r['ties']['groups'])}"] * bool(r["ties"]["groups"]) + \
        [f"lists {', '.join(r['ties']['lists'])}"] * bool(r["ties"]["lists"])
    rows = [("Description", r["description"]), ("Kind", "club account" if r["club"] else "group"),
            ("Group number", r["gid"]), ("Its members get", "; ".join(ties) or "nothing more")]
    if r["tied_to"]:
        rows.append(("Given to members of", ", ".join(r["tied_to"])))
    rows.append(("Members", count(len(r["members"]), "member")))
    table = None
    if r["members"]:
        from rich.table import Table
        table = Table(show_edge=False, header_style="bold", pad_edge=False)
        for column in ("user", "name", "member by"):
            table.add_column(column, overflow="fold")
        for m in r["members"]:
            by = f"given by {', '.join(m['given_by'])}" if m["given_by"] else "their own"
            table.add_row(safe(m["uid"]), safe(m["name"] or ""), safe(by))
    facts(console, r["group"], rows, below=table)


@plugin.verb("list", "Clubs and groups, with member counts (--clubs: clubs only)",
             example="ceo groups list --clubs",
             role="ldap",
             params=[Flag("clubs", "only clubs")], render=lambda c, r: _render_list(c, r))
def list_(ctx, clubs):
    conn, config = ctx.ldap(), ctx.config
    accounts = conn.entries(directory.people_dn(config), "(|(objectClass=member)(objectClass=club))",
                            ["uid", "gidNumber", "objectClass", "cn", "description"], "LEVEL")
    club = {e["uid"][0]: e for e in accounts if "club" in {c.lower() for c in e.get("objectClass", [])}}
    personal = {(e["uid"][0], e.get("gidNumber", [None])[0]) for e in accounts if e["uid"][0] not in club}
    rows = []
    for e in conn.entries(directory.groups_dn(config), "(objectClass=posixGroup)",
                          ["cn", "gidNumber", "description", "uniqueMember", "memberUid"], "LEVEL"):
        name, gid = e["cn"][0], e.get("gidNumber", [None])[0]
        if (name, gid) in personal or (clubs and name not in club):  # a member's own group is no one else's
            continue
        members = {_member_uid(config, v) for v in e.get("uniqueMember", [])} | set(e.get("memberUid", []))
        rows.append({"group": name, "kind": "club" if name in club else "group",
                     "gid": int(gid) if gid is not None else None, "members": len(members),
                     "description": _description(e, club.get(name)) or ""})
    return sorted(rows, key=lambda r: (r["kind"] != "club", r["group"]))


def _render_list(console, rows):
    from rich.table import Table
    table = Table(show_edge=False, header_style="bold")
    for column in ("group", "kind", "gid", "members", "description"):
        table.add_column(column)
    for r in rows:
        table.add_row(safe(r["group"]), r["kind"], str(r["gid"]), str(r["members"]), safe(r["description"]))
    console.print(table)
    console.print(f"{len(rows)} groups")

