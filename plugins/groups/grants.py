"""The steps behind addmember and removemember, each run and undone by the helper of its host:
a group's member, what the group's ties give them, and the records of what it gave.

Why records: removing someone from syscom must take back only what syscom gave. Someone in
office on their own keeps office; someone on syscom-alerts for another reason stays on it. So
when group G gives a user U something its ties name (a group U was not in, or a list U was not
on), or something U had only through another group's gift, U's DN goes into G's record of it:
`cn=G:office,ou=Grants` or `cn=G:list:syscom-alerts,ou=Grants` (see services/directory.py).
Taking U out of G takes U out of G's records, and takes away each thing no other record still
gives U; what U had on their own has no record, and stays. Two more rules keep the records
true (a record always means "U has this because of G"): removing U from a group directly ends
every record of it (office given by syscom, then `removemember office U`), and adding U to a
group they had only as a gift makes it their own (its records are dropped).

The LDAP host keeps the records, the mail host changes subscriptions, and a record goes in
before the subscription it is for (grant_lists says why); each step checks on its
own host that the caller may manage the group (policy.group_manager_guard) and reads the ties
from its own config, never from the request; the mail host reads the records itself to know
which subscriptions a removal takes back.
"""

from __future__ import annotations

from ceo import policy
from ceo.errors import BadInput, CeoError, NotFound
from ceo.plugin import Flag, GroupName, Str, Uid
from ceo.services import directory

from plugins.lists import ListName, is_subscribed, set_membership

from . import plugin

Group = GroupName("group", "the group", positional=True)
Member = Uid("uid", "the user", positional=True)


def Lists(name, help, **kw):
    return Str(name, help, multiple=True, pattern=ListName.pattern, describe=ListName.describe, **kw)


# syscom changes any group's members; a club's members only their club's (the guard says so).
MANAGE = dict(allow=("syscom", "club-member"), target="group", guard=policy.group_manager_guard,
              mutating=True, check=True, hidden=True)


def tie_of(ctx, group) -> policy.Tie:
    return policy.ties(ctx.config).get(group, policy.Tie())


def shown(given: str) -> str:
    """A grant's thing as words: `office` -> group office, `list:exec` -> list exec."""
    return f"list {given[5:]}" if given.startswith("list:") else f"group {given}"


class Holdings:
    """A user's groups and grant records as read at the start of a step, and the step's writes
    on them (each a ctx.step with its undo)."""

    def __init__(self, ctx, uid):
        self.ctx, self.uid, self.config, self.conn = ctx, uid, ctx.config, ctx.ldap()
        self.dn = directory.user_dn(self.config, uid)
        if not self.conn.entries(self.dn, "(objectClass=posixAccount)", ["uid"], "BASE"):
            raise NotFound(f"no user {uid!r}")
        self.groups = directory.groups_of(self.conn, self.config, uid)
        self.grants = directory.grants_of(self.conn, self.config, uid)  # {given: {givers}}
        self.wrote = False
        self._ou = None

    # Each write says what it did and what it would do (check mode): describe, would.
    def add(self, group, describe, would):
        self._member("member", self._group_dn(group), True, describe, would)

    def remove(self, group, describe, would):
        self._member("member", self._group_dn(group), False, describe, would)

    def record(self, giver, given, describe, would):
        """Put the user in giver's record of `given` (making the record, and ou=Grants, if missing)."""
        dn = directory.grant_dn(self.config, giver, given)
        self._grants_ou()
        if self.conn.entries(dn, "(objectClass=*)", ["cn"], "BASE"):
            self._member("grant", dn, True, describe, would)
            return
        conn, attrs = self.conn, self._record(giver, given)
        self._step("grant", lambda: directory.add(conn, dn, f"adding {dn}", ["top", "group"], attrs),
                   lambda: directory.delete(conn, dn, f"removing {dn}", gone_ok=True), describe, would)

    def drop(self, giver, given, describe, would):
        """Take the user out of giver's record of `given`; the record goes with its last one (an
        empty record means nothing, and would outlive what made it)."""
        dn = directory.grant_dn(self.config, giver, given)
        found = self.conn.entries(dn, "(objectClass=*)", ["uniqueMember"], "BASE")
        if found and [v.lower() for v in found[0].get("uniqueMember", [])] == [self.dn.lower()]:
            conn, attrs = self.conn, self._record(giver, given)
            self._step("grant", lambda: directory.delete(conn, dn, f"removing {dn}"),
                       lambda: directory.add(conn, dn, f"adding {dn}", ["top", "group"], attrs), describe, would)
            return
        self._member("grant", dn, False, describe, would)

    def _record(self, giver, given) -> dict:
        return {"cn": f"{giver}:{given}", "uniqueMember": [self.dn],
                "description": f"members of {giver} given {shown(given)} by ceo groups addmember"}

    def _group_dn(self, name):
        return f"cn={name},{directory.groups_dn(self.config)}"

    def _member(self, step, dn, present: bool, describe, would):
        """The user's DN in (or out of) the uniqueMember values of a group or a grant record."""
        conn, value = self.conn, {"uniqueMember": [self.dn]}

        def put(there: bool):
            what = f"adding {self.uid} to {dn}" if there else f"removing {self.uid} from {dn}"
            directory.modify(conn, dn, what, **{"add" if there else "delete": value})
        self._step(step, lambda: put(present), lambda: put(not present), describe, would)

    def _grants_ou(self):
        if self._ou is None:
            conn, ou = self.conn, directory.grants_dn(self.config)
            self._ou = bool(conn.entries(ou, "(objectClass=*)", ["ou"], "BASE"))
            if not self._ou:
                self._step("grants", lambda: directory.add(conn, ou, f"adding {ou}", ["top", "organizationalUnit"],
                                                           {"ou": ou.split(",")[0].split("=", 1)[1]}),
                           lambda: directory.delete(conn, ou, f"removing {ou}", gone_ok=True), f"added {ou}",
                           f"add {ou}")
                self._ou = True

    def _step(self, name, do, undo, describe, would):
        self.ctx.step(name, do, undo, describe=describe, would=would)
        self.wrote = True


def require_group(ctx, name, tied_by=None):
    dn = f"cn={name},{directory.groups_dn(ctx.config)}"
    if ctx.ldap().entries(dn, "(|(objectClass=posixGroup)(objectClass=group))", ["cn"], "BASE"):
        return
    if tied_by:  # the site's config names a group that is not there: not the caller's mistake
        raise CeoError(f"[ties] {tied_by}.groups names {name}, which is not a group: fix ceo.ini")
    raise NotFound(f"no group {name!r}")


# --- the LDAP host -----------------------------------------------------------------------------

@plugin.verb("join", "Step: put a user in a group and in the groups it ties, recording what it gave",
             role="ldap", params=[Group, Member], **MANAGE)
def join(ctx, group, uid):
    require_group(ctx, group)
    tie = tie_of(ctx, group)
    for name in tie.groups:
        require_group(ctx, name, tied_by=group)
    m = Holdings(ctx, uid)
    if group not in m.groups:
        m.add(group, f"added {uid} to {group}", f"add {uid} to {group}")
    for giver in sorted(m.grants.get(group, ())):  # asked for directly: from now on their own
        m.drop(giver, group, f"{group} is now {uid}'s own membership (it was given by {giver})",
               f"make {group} {uid}'s own membership (it was given by {giver})")
    for name in tie.groups:
        givers = m.grants.get(name, set())
        if name not in m.groups:
            m.add(name, f"added {uid} to {name} (given by {group})", f"add {uid} to {name} (given by {group})")
            m.record(group, name, f"recorded {group} as giving {uid} {name}", f"record {group} as giving {uid} {name}")
        elif givers and group not in givers:  # held only through other gifts: now one more
            also = f"too (also given by {', '.join(sorted(givers))})"
            m.record(group, name, f"recorded {group} as giving {uid} {name} {also}",
                     f"record {group} as giving {uid} {name} {also}")
        elif not givers:
            ctx.emit({"step": "member", "status": "unchanged", "message": f"{uid} is in {name} on their own"})
    result = {"group": group, "uid": uid, "lists": list(tie.lists)}
    if not m.wrote:
        return ctx.unchanged("member", f"{uid} is already in {group} and every group it ties", **result)
    return ctx.changed(**result)


@plugin.verb("leave", "Step: take a user out of a group and take back what it gave them", role="ldap",
             params=[Group, Member, Flag("keep_lists", "unsubscribe from nothing (the lists' records are dropped)")],
             **MANAGE)
def leave(ctx, group, uid, keep_lists):
    require_group(ctx, group)
    m = Holdings(ctx, uid)
    if group in m.groups:
        m.remove(group, f"removed {uid} from {group}", f"remove {uid} from {group}")
    for giver in sorted(m.grants.get(group, ())):  # a direct removal ends every reason for it
        m.drop(giver, group, f"dropped the record of {giver} giving {uid} {group}",
               f"drop the record of {giver} giving {uid} {group}")
    unsubscribe = []
    for given in sorted((g for g, givers in m.grants.items() if group in givers), key=lambda g: (g[:5] == "list:", g)):
        others = sorted(m.grants[given] - {group})
        m.drop(group, given, f"dropped the record of {group} giving {uid} {shown(given)}",
               f"drop the record of {group} giving {uid} {shown(given)}")
        if others:
            ctx.emit({"step": "member", "status": "unchanged",
                      "message": f"{uid} keeps {shown(given)}: also given by {', '.join(others)}"})
        elif given.startswith("list:"):
            if keep_lists:
                ctx.emit({"step": "member", "status": "unchanged", "message": f"{uid} stays on {given[5:]} (asked)"})
            else:
                unsubscribe.append(given[5:])
        elif given in m.groups:
            m.remove(given, f"removed {uid} from {given} (given by {group})",
                     f"remove {uid} from {given} (given by {group})")
    tie = tie_of(ctx, group)
    for name in tie.groups:  # what the group ties but did not give: theirs, and it stays
        if name in m.groups and group not in m.grants.get(name, ()):
            ctx.emit({"step": "member", "status": "unchanged", "message": f"{uid} keeps {name}: not given by {group}"})
    result = {"group": group, "uid": uid, "unsubscribe": unsubscribe,
              "kept_lists": [n for n in tie.lists if group not in m.grants.get(f"list:{n}", ())]}
    if not m.wrote:
        return ctx.unchanged("member", f"{uid} is not in {group} and has nothing it gave", **result)
    return ctx.changed(**result)


@plugin.verb("grant_lists", "Step: record the tied lists a group is about to subscribe a user to", role="ldap",
             params=[Group, Member,
                     Lists("giving", "tied lists they are not on, which the mail host subscribes them to next"),
                     Lists("already", "tied lists they are on already")], **MANAGE)
def grant_lists(ctx, group, uid, giving, already):
    """Before the subscriptions, not after: a subscription made and then never recorded (the
    LDAP host lost in between) would pass for the member's own on a re-run, and stay when they
    leave the group. A record made and a subscription not is taken back by the rollback, or
    made good by the re-run."""
    stray = sorted(set(giving + already) - set(tie_of(ctx, group).lists))
    if stray:
        raise BadInput(f"{stray[0]} is not a list tied to {group}")
    m = Holdings(ctx, uid)
    if group not in m.groups and not ctx.check:
        raise BadInput(f"{uid} is not in {group}: its lists are not theirs to record")
    for name in giving:
        if group not in m.grants.get(f"list:{name}", ()):
            m.record(group, f"list:{name}", f"recorded {group} as subscribing {uid} to {name}",
                     f"record {group} as subscribing {uid} to {name}")
    for name in already:
        givers = m.grants.get(f"list:{name}", set())
        if givers and group not in givers:
            also = f"too (also given by {', '.join(sorted(givers))})"
            m.record(group, f"list:{name}", f"recorded {group} as subscribing {uid} to {name} {also}",
                     f"record {group} as subscribing {uid} to {name} {also}")
        elif not givers:
            ctx.emit({"step": "grant", "status": "unchanged",
                      "message": f"{uid} is on {name} already, on their own: not recorded as {group}'s"})
    result = {"group": group, "uid": uid}
    return ctx.changed(**result) if m.wrote else {**result, "state": "unchanged", "changed": False}


# --- the mail host -----------------------------------------------------------------------------

@plugin.verb("tied_lists", "Step: which of the lists a group ties a user is on", role="mail",
             params=[Group, Member], **{**MANAGE, "mutating": False, "check": False})
def tied_lists(ctx, group, uid):
    names = tie_of(ctx, group).lists  # this host's config says which, not the request
    if group not in directory.groups_of(ctx.ldap(), ctx.config, uid):  # join comes first
        if not ctx.check:  # a group's managers learn the subscriptions of its members only
            raise BadInput(f"{uid} is not in {group}: which lists they are on is not its business")
        return {"group": group, "uid": uid, "on": [], "off": list(names)}
    on = [name for name in names if is_subscribed(ctx, name, uid)]
    return {"group": group, "uid": uid, "on": on, "off": [n for n in names if n not in on]}


@plugin.verb("subscribe_tied", "Step: subscribe a user to the lists a group ties", role="mail",
             params=[Group, Member], **MANAGE)
def subscribe_tied(ctx, group, uid):
    subscribed, already = [], []
    for name in tie_of(ctx, group).lists:  # this host's config says which, not the request
        done = set_membership(ctx, name, uid, subscribed=True)
        (subscribed if done["changed"] else already).append(name)
    result = {"group": group, "uid": uid, "subscribed": subscribed, "already": already}
    return ctx.changed(**result) if subscribed else {**result, "state": "unchanged", "changed": False}


@plugin.verb("unsubscribe_tied", "Step: unsubscribe a user from the tied lists only this group's records gave them",
             role="mail", params=[Group, Member], **MANAGE)
def unsubscribe_tied(ctx, group, uid):
    """Before the LDAP host drops the records (so that an undo of this step is still the
    caller's to make if the removal was of themselves), and from the records as read from here."""
    grants = directory.grants_of(ctx.ldap(), ctx.config, uid)
    unsubscribed = []
    for name in tie_of(ctx, group).lists:
        givers = grants.get(f"list:{name}", set())
        if group not in givers or givers - {group}:
            why = f"also given by {', '.join(sorted(givers - {group}))}" if group in givers else \
                f"not subscribed by {group} (their own subscription, or none)"
            ctx.emit({"step": "subscription", "status": "unchanged", "message": f"{uid} stays on {name}: {why}"})
            continue
        if set_membership(ctx, name, uid, subscribed=False)["changed"]:
            unsubscribed.append(name)
    result = {"group": group, "uid": uid, "unsubscribed": unsubscribed}
    return ctx.changed(**result) if unsubscribed else {**result, "state": "unchanged", "changed": False}
