"""The fixes office staff used to make by hand in LDAP: `convert` (a club rep registered as a
member, or the reverse), `unrenew` (a term registered by mistake) and `search` (find someone
at the desk by part of a name or user name)."""

from __future__ import annotations

from ceo import policy
from ceo import terms as T
from ceo.errors import BadInput
from ceo.output import count, safe
from ceo.plugin import Flag, Int, Str, Term, Uid
from ceo.services import directory

from . import accounts as acct
from . import plugin

KINDS = {"member": ("term", "member"), "clubrep": ("nonMemberTerm", "club rep")}  # attribute, what it is called
To = Str("to", "what the account becomes: member or clubrep", choices=tuple(KINDS), required=True)


def _member_entry(ctx, uid) -> dict:
    """uid's entry, if it is a member or club rep account ceo manages (never a club's or a service's)."""
    entry = acct.user(ctx, uid)
    if "member" not in {c.lower() for c in entry.get("objectClass", [])}:
        raise BadInput(f"{uid} is not a member or club rep account (a club or system account)")
    policy.managed_member_number(ctx, uid)
    return entry


# --- convert -----------------------------------------------------------------------------------

@plugin.composite("convert", "Make a club rep a member (--to member) or a member a club rep (--to clubrep), "
                  "terms and all",
                  example=("ceo members convert alice --to clubrep   # her terms become club rep terms",
                           "ceo members convert bob --to member --no-welcome"),
                  check=True, allow=policy.STAFF, params=[
                      Uid("uid", "the member or club rep", positional=True), To,
                      Flag("no_welcome", "becoming a member: do not send the welcome email"),
                      Flag("no_subscribe", "becoming a member: do not subscribe to csc-general"),
                      Flag("keep_subscription", "becoming a club rep: stay on csc-general")])
def convert(run, uid, to, no_welcome, no_subscribe, keep_subscription):
    if to == "clubrep" and (no_welcome or no_subscribe):
        raise BadInput("--no-welcome and --no-subscribe go with --to member")
    if to == "member" and keep_subscription:
        raise BadInput("--keep-subscription goes with --to clubrep")
    moved = run.step("members.convert_terms", {"uid": uid, "to": to}, role="ldap",
                     describe=f"converting {uid} to a {KINDS[to][1]}")
    address = f"{uid}@{run.config.get('ceo', 'domain')}"
    # The mail follows the member rules of `members add`, best effort as there: the conversion
    # stands if the mail host fails, with a warning. Someone who already had member terms had
    # the welcome and the subscription when they became a member: nothing is sent again.
    if to == "member" and not moved["was_member"]:
        if not no_welcome:
            run.step("members.welcome", {"uid": uid, "cn": moved["cn"] or uid}, role="mail",
                     describe="welcome email", best_effort=True)
        if not no_subscribe:
            run.step("lists.subscribe", {"list": "csc-general", "who": address}, role="mail",
                     describe="subscription to csc-general", best_effort=True)
    if to == "clubrep" and not keep_subscription:
        # A club rep is not on csc-general by ceo's rules (`add --clubrep` does not subscribe),
        # and a conversion to club rep undoes a mistaken `add` whose subscription was ceo's
        # doing. The list is open: the person may subscribe themselves again.
        run.step("lists.unsubscribe", {"list": "csc-general", "who": address}, role="mail",
                 describe="unsubscription from csc-general", best_effort=True)
    result = {k: moved[k] for k in ("uid", "kind", "terms", "nonMemberTerms", "moved")}
    if run.output.warnings:
        result["warnings"] = list(run.output.warnings)
    return result


@plugin.verb("convert_terms", "Step: move every term between term and nonMemberTerm", role="ldap",
             allow=policy.STAFF, guard=policy.protected_account_guard, mutating=True, check=True, hidden=True,
             params=[Uid("uid", positional=True), To])
def convert_terms(ctx, uid, to):
    # Guarded as a protected account: turning an exec or syscom member into a club rep takes
    # away the `member` standing that authorization and `members expire` read; only they or
    # syscom change that.
    entry = _member_entry(ctx, uid)
    dst, name = KINDS[to]
    src = KINDS["clubrep" if to == "member" else "member"][0]
    moving = T.sort(entry.get(src, []))
    if not moving:
        has = " ".join(T.sort(entry.get(dst, []))) or "none"
        raise BadInput(f"{uid} is already a {name}: no {src} to convert ({dst}: {has})")
    have = set(entry.get(dst, []))
    added = [t for t in moving if t not in have]  # a term in both stays once
    after = {"term": set(entry.get("term", [])), "nonMemberTerm": set(entry.get("nonMemberTerm", []))}
    after[dst] |= set(moving)
    after[src] = set()
    result = {"uid": uid, "kind": to, "cn": acct.first(entry, "cn"), "moved": moving,
              "was_member": bool(entry.get("term")), "terms": T.sort(after["term"]),
              "nonMemberTerms": T.sort(after["nonMemberTerm"])}
    conn, dn = ctx.ldap(), acct.dn(ctx, uid)
    there = {dst: added} if added else {}
    ctx.step("terms", lambda: directory.modify(conn, dn, f"converting {uid}", delete={src: moving}, add=there),
             lambda: directory.modify(conn, dn, f"undoing the conversion of {uid}", delete=there, add={src: moving}),
             describe=f"{uid} is now a {name}: moved {' '.join(moving)} from {src} to {dst}",
             would=f"make {uid} a {name}: move {' '.join(moving)} from {src} to {dst}")
    return ctx.changed(**result)


# --- unrenew -----------------------------------------------------------------------------------

@plugin.verb("unrenew", "Remove a term registered by mistake (the current one or a later one)",
             example="ceo members unrenew alice --term w2027",
             role="ldap",
             allow=policy.STAFF, guard=policy.protected_account_guard, mutating=True, check=True,
             params=[Uid("uid", "the member or club rep", positional=True),
                     Term("term", "the term to remove, e.g. w2027", required=True)])
def unrenew(ctx, uid, term):
    entry = _member_entry(ctx, uid)
    now = T.current()
    if T.ordinal(term) < T.ordinal(now):
        raise BadInput(f"{term} is past (this is {now}): a past term is the record of who was a member, "
                       "and is not removed")
    attrs = [a for a in ("term", "nonMemberTerm") if term in entry.get(a, [])]
    registered = T.sort(entry.get("term", []) + entry.get("nonMemberTerm", []))
    if not attrs:
        raise BadInput(f"{uid} is not registered for {term} (registered: {' '.join(registered) or 'none'})")
    left = [t for t in registered if t != term]
    if not left:
        # An account with no term at all is neither member nor club rep, and `members expire`
        # (which looks for term or nonMemberTerm) would never lock it.
        raise BadInput(f"{term} is {uid}'s only term: an account with no terms is never expired; "
                       "register the right term first, or delete the account")
    if term == now and now not in left:
        # Not locked here: `members expire` locks lapsed accounts after the grace period, as
        # for anyone who did not renew, and a renewal in the meantime costs nothing.
        ctx.emit({"step": "lock", "status": "warning",
                  "message": f"{uid} has no current term now: `members expire` will lock the account "
                             "after the grace period unless it is renewed"})
    conn, dn = ctx.ldap(), acct.dn(ctx, uid)
    gone = {a: [term] for a in attrs}
    ctx.step("terms", lambda: directory.modify(conn, dn, f"removing {term} from {uid}", delete=gone),
             lambda: directory.modify(conn, dn, f"putting {term} back on {uid}", add=gone),
             describe=f"removed {term} from {uid} ({', '.join(attrs)})",
             would=f"remove {term} from {uid} ({', '.join(attrs)})")
    return ctx.changed(uid=uid, removed=term,
                       terms=T.sort(t for t in entry.get("term", []) if t != term),
                       nonMemberTerms=T.sort(t for t in entry.get("nonMemberTerm", []) if t != term))


# --- search ------------------------------------------------------------------------------------

# Members' names are personal data: the desk (office) and syscom look people up; a member has
# no need of a directory of everyone else's names and programs.
@plugin.verb("search", "Find members and club reps by part of a name or user name (office, syscom)",
             example=('ceo members search "ali lid"',
                      "ceo members search regular --limit 50"),
             role="ldap",
             allow=policy.STAFF, params=[
                 Str("text", "part of a name or user name; every word must match", positional=True, max_length=100),
                 Int("limit", "at most this many (default 20)", min=1, max=100)],
             render=lambda c, r: _render_search(c, r))
def search(ctx, text, limit):
    limit = limit or 20
    words = text.lower().split()
    if sum(len(w) for w in words) < 2:
        raise BadInput("give at least two characters of a name or user name")
    # Each word, in any order, in the name or the user name (case-insensitive substrings), or
    # the name sounding like the text (slapd's approximate match on cn: phonetic, so "Reguler"
    # finds Regular). Only for letters: a word of digits has no sound and would match anyone.
    each = "".join(f"(|(cn=*{acct.esc(w)}*)(uid=*{acct.esc(w)}*))" for w in words[:8])
    sounds = f"(cn~={acct.esc(' '.join(words))})" if all(w.isalpha() for w in words) else ""
    flt = f"(&(objectClass=member)(|(&{each}){sounds}))"
    entries = acct.search(ctx, flt, ["uid", "cn", "program", "term", "nonMemberTerm", "shadowExpire"])
    joined = " ".join(words)

    def rank(e):
        uid, cn = e["uid"][0], (acct.first(e, "cn") or "").lower()
        return (uid != joined, not uid.startswith(joined), joined not in cn, uid)
    entries.sort(key=rank)
    now = T.current()
    rows = [{"uid": e["uid"][0], "name": acct.first(e, "cn"), "program": acct.first(e, "program"),
             "terms": T.sort(e.get("term", [])), "nonMemberTerms": T.sort(e.get("nonMemberTerm", [])),
             "current": now in e.get("term", []) + e.get("nonMemberTerm", []), "locked": acct.locked(e)}
            for e in entries[:limit]]
    return {"matches": rows, "more": len(entries) > limit, "limit": limit}


def _render_search(console, result):
    from rich.table import Table
    rows = result["matches"]
    if not rows:
        console.print("No one matches.")
        return
    table = Table(show_edge=False, header_style="bold")
    for column in ("uid", "name", "program", "last terms", "current", "locked"):
        table.add_column(column)
    for r in rows:
        last = [*r["terms"][-3:]] + [f"{t} (club rep)" for t in r["nonMemberTerms"][-2:]]
        table.add_row(r["uid"], safe(r["name"] or ""), safe(r["program"] or ""), " ".join(last),
                      "yes" if r["current"] else "", "yes" if r["locked"] else "")
    console.print(table)
    console.print(count(len(rows), "account") + (f" (the first {result['limit']}; say more of the name, or "
                                               "--limit)" if result["more"] else ""))
