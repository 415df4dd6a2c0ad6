"""`ceo positions`: the executive's positions and who holds them.

A position is a `position` value on its holders' member entries. Holding any position puts a
member in the exec group (`[positions] group`), and through exec's ties on the exec list;
losing the last one takes them out. `set` computes the change as a diff and applies it (the
position values, then exec's membership through the same steps as `ceo groups addmember` and
`removemember`) as one operation, rolled back as a whole if a step fails. Which positions exist
and which may not be left empty is the config's: `[positions] names`, `required`.
"""

from __future__ import annotations

from ceo.errors import BadInput, CeoError, NotFound
from ceo.output import safe
from ceo.plugin import Plugin, Str
from ceo.services import directory
from plugins.groups.membership import add_member, remove_member, rolled_back

plugin = Plugin("positions", "Exec positions: get, set")

# CSC's positions; the CLI has an option for each (a site's config may name fewer).
NAMES = "president vice-president treasurer secretary sysadmin cro librarian imapd webmaster offsck"
REQUIRED = "president vice-president sysadmin"
UID = r"[a-z][a-z0-9-]{0,31}"


def names(config) -> list[str]:
    return config.getlist("positions", "names", NAMES)


def exec_group(config) -> str:
    return config.get("positions", "group", "exec")


def _holders(ctx) -> dict[str, dict]:
    """{uid: {"name": cn, "positions": set}} for every member holding a position."""
    found = ctx.ldap().entries(directory.people_dn(ctx.config), "(position=*)", ["uid", "cn", "position"], "LEVEL")
    return {e["uid"][0]: {"name": (e.get("cn") or [None])[0], "positions": {p.lower() for p in e["position"]}}
            for e in found}


@plugin.verb("get", "Each position and who holds it",
             example="ceo positions get",
             role="ldap", render=lambda c, r: _render(c, r))
def get(ctx):
    holders = _holders(ctx)
    known = names(ctx.config)
    held = sorted({p for h in holders.values() for p in h["positions"]} - set(known))  # no longer in the config
    return [{"position": p, "holders": [{"uid": u, "name": h["name"]} for u, h in sorted(holders.items())
                                        if p in h["positions"]]} for p in known + held]


def _render(console, rows):
    from rich.table import Table
    table = Table(show_edge=False, header_style="bold")
    for column in ("position", "holders"):
        table.add_column(column)
    for r in rows:
        table.add_row(safe(r["position"]), safe(", ".join(f"{h['uid']} ({h['name']})" for h in r["holders"]) or "-"))
    console.print(table)


def Holders(position):
    return Str(position.replace("-", "_"), f"who holds {position}: one or more uids, or '' for nobody",
               multiple=True, metavar="UID", pattern=f"({UID})?", describe="a user name, or '' for nobody")


@plugin.composite("set", "Set who holds positions (syscom): --POSITION '' leaves it vacant, others keep "
                  "their holders",
                  example=("ceo positions set --president alice --treasurer bob carol",
                           "ceo positions set --cro ''   # leaves cro vacant"),
                  allow=("syscom",), check=True, params=[Holders(p) for p in NAMES.split()])
def set_(run, **given):
    assign = []
    for key, uids in given.items():
        if not uids:  # not named: kept as it is
            continue
        position, holders = key.replace("_", "-"), [u for u in uids if u]
        if len(holders) != len(uids) and holders:
            raise BadInput(f"--{position}: '' (nobody) goes alone, not with user names")
        if len(set(holders)) != len(holders):
            raise BadInput(f"--{position}: a user is named twice")
        assign.append(f"{position}={','.join(holders)}")
    if not assign:
        raise BadInput("nothing to change: name a position, e.g. --treasurer alice (--treasurer '' leaves it vacant)")
    run.prepare(["ldap", "mail"])
    try:
        plan = run.step("positions.assign", {"assign": assign}, role="ldap", describe="positions")
        for uid, held in sorted(plan["affected"].items()):
            if held:
                add_member(run, plan["group"], uid)
            else:
                remove_member(run, plan["group"], uid)
        # Holders named whose positions did not change: in the group and on its lists anyway
        # (unchanged steps), so that running the command again finishes one a failure cut short.
        named = {u for item in assign for u in item.partition("=")[2].split(",") if u}
        for uid in sorted(named - set(plan["affected"])):
            add_member(run, plan["group"], uid)
    except CeoError as err:
        raise rolled_back(run, err) from None
    result = {"positions": plan["positions"], "affected": plan["affected"]}
    if run.output.warnings:
        result["warnings"] = list(run.output.warnings)
    return result


@plugin.verb("assign", "Step: change the position values on member entries (syscom)", role="ldap",
             allow=("syscom",), mutating=True, check=True, hidden=True, params=[
                 Str("assign", "POSITION=UID,UID... (nothing after '=': vacant)", multiple=True, required=True,
                     pattern=rf"{UID}=({UID}(,{UID})*)?", describe="POSITION=UID,UID...")])
def assign(ctx, assign):
    known, required = names(ctx.config), ctx.config.getlist("positions", "required", REQUIRED)
    wanted: dict[str, set[str]] = {}
    for item in assign:
        position, _, uids = item.partition("=")
        if position not in known:
            raise BadInput(f"unknown position {position!r} (the positions are: {', '.join(known)})")
        if position in wanted:
            raise BadInput(f"{position} is named twice")
        wanted[position] = {u for u in uids.split(",") if u}
    named = sorted(set().union(*wanted.values()))
    if named:
        flt = "(&(objectClass=member)(|" + "".join(f"(uid={directory.escape(u)})" for u in named) + "))"
        found = {e["uid"][0] for e in ctx.ldap().entries(directory.people_dn(ctx.config), flt, ["uid"], "LEVEL")}
        missing = [u for u in named if u not in found]
        if missing:
            raise NotFound(f"no member {missing[0]!r}" + (f" (nor {', '.join(missing[1:])})" if missing[1:] else ""))
    holders = _holders(ctx)
    before = {u: h["positions"] for u, h in holders.items()}
    after = {u: ({p for p in held if p not in wanted} | {p for p, us in wanted.items() if u in us})
             for u, held in before.items()}
    for u in named:
        after.setdefault(u, {p for p, us in wanted.items() if u in us})
    vacant = [p for p in required if not any(p in held for held in after.values())]
    if vacant:
        raise BadInput(f"{', '.join(vacant)} may not be left empty")
    conn = ctx.ldap()
    affected = {}
    for uid in sorted(u for u in after if after[u] != before.get(u, set())):
        gained, lost = sorted(after[uid] - before.get(uid, set())), sorted(before.get(uid, set()) - after[uid])
        change = ", ".join([f"+{p}" for p in gained] + [f"-{p}" for p in lost])
        dn, add, drop = directory.user_dn(ctx.config, uid), {"position": gained} if gained else {}, \
            {"position": lost} if lost else {}
        ctx.step("position", lambda d=dn, a=add, r=drop, u=uid: directory.modify(conn, d, f"changing {u}'s positions",
                                                                                  add=a, delete=r),
                 lambda d=dn, a=add, r=drop, u=uid: directory.modify(conn, d, f"restoring {u}'s positions",
                                                                      add=r, delete=a),
                 describe=f"{uid}: " + change, would=f"change {uid}'s positions: {change}")
        affected[uid] = sorted(after[uid])
    positions = {p: sorted(u for u, held in after.items() if p in held) for p in known}
    result = {"positions": positions, "affected": affected, "group": exec_group(ctx.config)}
    if not affected:
        return ctx.unchanged("position", "every position already has those holders", **result)
    return ctx.changed(**result)
