"""`ceo lists`: Mailman 3 mailing lists, through Mailman's REST API on the mail host.

The one way ceo touches lists: other plugins subscribe and unsubscribe through these verbs as
steps (`lists.subscribe`, undone by `lists.unsubscribe`). Subscriptions made by ceo are
pre-verified, pre-confirmed and pre-approved: no confirmation mail round trip.
"""

from __future__ import annotations

from ceo import policy
from ceo.errors import NotFound
from ceo.output import safe
from ceo.services import mailman
from ceo.plugin import EMAIL, Plugin, Str, Uid

plugin = Plugin("lists", "Mailing lists (Mailman 3): show, subscribe, unsubscribe")

ListName = Str("list", "a list, e.g. csc-general", positional=True, metavar="LIST",
               pattern=r"[a-z0-9][a-z0-9._-]{0,63}", describe="a list name such as csc-general")
Who = Str("who", "a user name (meaning uid@the club's domain) or an email address", positional=True,
          metavar="WHO", pattern=rf"[a-z][a-z0-9-]{{0,31}}|{EMAIL}", describe="a user name or an email address")


# --- verbs ------------------------------------------------------------------------------------

def _render_lists(console, result):
    from rich.table import Table
    table = Table(show_edge=False, header_style="bold")
    for column in ("list", "members", "description"):
        table.add_column(column)
    for row in result:
        table.add_row(safe(row["list"]), str(row["members"]), safe(row["description"]))
    console.print(table)


@plugin.verb("list", "The lists, with their descriptions and member counts",
             example="ceo lists list",
             role="mail",
             render=_render_lists)
def list_(ctx):
    client = mailman.client(ctx)
    lists = mailman.call(ctx, lambda: client.lists)
    return [{"list": m.list_name, "address": m.fqdn_listname, "members": mailman.call(ctx, lambda m=m: m.member_count),
             "description": mailman.call(ctx, lambda m=m: m.settings.get("description", "")) or ""} for m in lists]


def _render_members(console, result):
    from rich.table import Table
    table = Table(show_edge=False, header_style="bold")
    table.add_column("address")
    table.add_column("name")
    for row in result:
        table.add_row(safe(row["address"]), safe(row["name"]))
    console.print(table)
    console.print(f"{len(result)} subscribers")


@plugin.verb("members", "The subscribers of a list (office, syscom, and the list's owners)",
             example="ceo lists members csc-general",
             role="mail",
             allow=("office", "syscom"), permit=policy.list_owner, params=[ListName], render=_render_members)
def members(ctx, list):
    mlist = mailman.get_list(ctx, list)
    return [{"address": m.email, "name": m.display_name or ""}
            for m in mailman.call(ctx, lambda: mlist.members)]


# Office and syscom change anyone's subscriptions; members their own, on the open lists; lists
# tied to a group only syscom.
SUBSCRIPTION = dict(role="mail", allow=policy.STAFF, permit=policy.own_address_on_open_list,
                    guard=policy.group_list_guard, mutating=True, check=True, params=[ListName, Who])


@plugin.verb("subscribe", "Subscribe someone (members: themselves, to open lists)",
             example=("ceo lists subscribe csc-general alice",
                      "ceo lists subscribe ceo bob@example.org --check"),
             **SUBSCRIPTION)
def subscribe(ctx, list, who):
    return set_membership(ctx, list, who, subscribed=True)


@plugin.verb("unsubscribe", "Unsubscribe someone (members: themselves, from open lists)",
             example="ceo lists unsubscribe csc-general alice",
             **SUBSCRIPTION)
def unsubscribe(ctx, list, who):
    return set_membership(ctx, list, who, subscribed=False)


@plugin.verb("unsubscribe_all", "Step: take someone off every list, as subscriber, owner and moderator "
             "(for deletions)", role="mail", allow=("syscom",), mutating=True, check=True, hidden=True, params=[Who])
def unsubscribe_all(ctx, who):
    address, _ = _address(ctx, who)
    client = mailman.client(ctx)
    found = mailman.call(ctx, lambda: [m for m in client.get_lists() if mailman.is_member(ctx, m, address)])
    roles = mailman.roles_of(ctx, address)
    if not found and not roles:
        return ctx.unchanged("unsubscribe", f"{address} is on no list", lists=[], roles=[])
    for mlist in found:
        set_membership(ctx, mlist.list_name, address, subscribed=False)
    for mlist, role in roles:
        ctx.step(role, lambda m=mlist, r=role: mailman.remove_role(ctx, m, r, address),
                 lambda m=mlist, r=role: mailman.add_role(ctx, m, r, address),
                 describe=f"removed {address} as {role} of {mlist.list_name}",
                 would=f"remove {address} as {role} of {mlist.list_name}")
    return ctx.changed(lists=[m.list_name for m in found], roles=[f"{role} of {m.list_name}" for m, role in roles])


@plugin.verb("roles", "Step: a new account's address: a list's own, or already a list's owner or moderator",
             role="mail", allow=policy.STAFF, hidden=True, params=[Uid("uid", positional=True)])
def roles(ctx, uid):
    address = mailman.member_address(ctx, uid)
    return {"address": address, "list": mailman.list_address_named(ctx, uid),
            "roles": [f"{role} of {m.list_name}" for m, role in mailman.roles_of(ctx, address)]}


def refuse_list_addresses(run, uid: str):
    """Client side, before a new account is written: its address may not be a list's (the
    account would be a list's posting address, `csc-general`, or `csc-general-owner`), nor
    inherit a deleted account's list roles. Mailman down: a warning (the step is best effort)."""
    from ceo.errors import AlreadyExists
    held = run.step("lists.roles", {"uid": uid}, role="mail", best_effort=True,
                    describe=f"checked the lists for {uid}'s address")
    if held and held.get("list"):
        raise AlreadyExists(f"{held['address']} is an address of the list {held['list']}: choose another name")
    if held and held["roles"]:
        raise AlreadyExists(f"{held['address']} is still {', '.join(held['roles'])}; remove those roles first")


def is_subscribed(ctx, list, who) -> bool:
    mlist = mailman.get_list(ctx, list)
    return mailman.is_member(ctx, mlist, _address(ctx, who)[0])


def set_membership(ctx, list, who, subscribed: bool):
    """Make `who` (un)subscribed, with undo; a no-op, reported as unchanged, when it already
    is. The one way a helper changes a subscription: the groups steps use it for tied lists."""
    mlist = mailman.get_list(ctx, list)
    address, name = _address(ctx, who)
    result = {"list": list, "address": address}
    if mailman.is_member(ctx, mlist, address) == subscribed:
        state = "already on" if subscribed else "not on"
        return ctx.unchanged("subscription", f"{address} is {state} {list}", **result)

    def add(welcome=True):
        mailman.subscribe(ctx, mlist, address, name, welcome)

    def remove():
        mailman.unsubscribe(ctx, mlist, address)

    def back(to: bool):  # an undo also runs for a request that may not have been done (no answer)
        if mailman.is_member(ctx, mlist, address) == to:
            return
        if to:
            add(welcome=False)
        else:
            remove()

    ctx.note(pre_confirmed=True, pre_approved=True)
    if subscribed:
        ctx.step("subscribe", add, lambda: back(False), describe=f"subscribed {address} to {list}",
                 would=f"subscribe {address} to {list}")
    else:
        ctx.step("unsubscribe", remove, lambda: back(True), describe=f"unsubscribed {address} from {list}",
                 would=f"unsubscribe {address} from {list}")
    return ctx.changed(**result)


# --- plumbing ---------------------------------------------------------------------------------

def _address(ctx, who: str) -> tuple[str, str | None]:
    """A uid means uid@domain, and must exist; an address is used as given."""
    if "@" in who:
        local, domain = who.rsplit("@", 1)
        return f"{local}@{domain.lower()}", None
    from ceo.services.directory import user_dn
    found = ctx.ldap().entries(user_dn(ctx.config, who), "(objectClass=posixAccount)", ["cn"], "BASE")
    if not found:
        raise NotFound(f"no user {who!r}")
    return mailman.member_address(ctx, who), found[0].get("cn", [None])[0]


