"""The steps behind the members verbs, each run and undone by the helper of its host."""

from __future__ import annotations

import os
import time

from ceo import policy
from ceo import terms as T
from ceo.errors import AlreadyExists, BadInput, CeoError, ServiceUnavailable, Stale
from ceo.plugin import Flag, Int, Str, Uid
from ceo.services import directory, homes, kadmin

from . import accounts as acct
from . import plugin
from .messages import WELCOME, announcement
from .params import NEW_ACCOUNT, Address, Clubrep, Count, Terms

@plugin.verb("create", "Step: allocate numbers, add the LDAP user and its group", role="ldap", allow=policy.STAFF,
             mutating=True, check=True, hidden=True, params=NEW_ACCOUNT)
def create(ctx, uid, cn, given_name, sn, program, terms, term, clubrep):
    acct.terms_choice(terms, term)
    if not cn:  # optional in NEW_ACCOUNT only because `add` may fill it from the university directory
        raise BadInput("cn: give the full name (--cn)")
    acct.refuse_taken_name(ctx, uid)
    new_terms = list(term) if term else T.interval(T.current(), terms or 1)
    home = os.path.join(ctx.config.get("homes", "base", "/users"), uid)
    attrs = {"cn": cn, "uid": uid, "homeDirectory": home,
             "loginShell": ctx.config.get("members", "shell", "/bin/bash"),
             ("nonMemberTerm" if clubrep else "term"): new_terms}
    for key, value in (("givenName", given_name), ("sn", sn), ("program", program)):
        if value:
            attrs[key] = value
    number = acct.add_account(
        ctx, uid, "member", ["top", "account", "posixAccount", "shadowAccount", "member"], attrs, {},
        lambda n: f"added LDAP user {uid} (uid number {n}, {'club rep ' if clubrep else ''}terms {' '.join(new_terms)})",
        f"personal group {uid}")
    return {"uid": uid, "uidNumber": number, "terms": new_terms}


@plugin.verb("name_free", "Step: a new account's name is no user, group or reserved name on this host",
             role="any", allow=policy.STAFF, hidden=True, params=[Uid("uid", positional=True)])
def name_free(ctx, uid):
    policy.refuse_reserved_name(ctx, uid)
    return {}


@plugin.verb("principal", "Step: a Kerberos principal with a temporary password", role="kerberos", allow=policy.STAFF,
             mutating=True, check=True, hidden=True, params=[Uid("uid", positional=True)])
def principal(ctx, uid):
    name = _member_principal(ctx, uid, "create principal {} with a temporary password (must change)")
    if name is None:
        return {"principal": f"{uid}@{ctx.config.realm}", "password": None}
    if kadmin.exists(ctx, name):
        raise AlreadyExists(f"principal {name} already exists (remove the orphan with kadmin first)")
    password = acct.new_password()
    ctx.step("principal", lambda: kadmin.add_with_temporary_password(ctx, name, password),
             lambda: kadmin.delete(ctx, name),
             describe=f"created principal {name} (temporary password, must change at first login)")
    return {"principal": name, "password": password}


def _member_principal(ctx, uid, would: str) -> str | None:
    """uid's principal, if uid is a member account ceo manages (never root@, postgres@, ...);
    in check mode, says what would be done to it and returns None."""
    name = f"{uid}@{ctx.config.realm}"
    if ctx.check:
        ctx.step("principal", None, would=would.format(name))
        return None
    policy.managed_member_number(ctx, uid)
    return name


@plugin.verb("password", "Step: a new temporary password (syscom)", role="kerberos", allow=("syscom",),
             mutating=True, check=True, hidden=True, params=[Uid("uid", positional=True)])
def password(ctx, uid):
    name = _member_principal(ctx, uid, "set a new temporary password on {} (must change)")
    if name is None:
        return {"principal": f"{uid}@{ctx.config.realm}", "password": None}
    new = acct.new_password()
    # The password first (a change clears the must-change flag), then the flag. Once the
    # password has changed it is returned whatever happens next: never one nobody was shown.
    ctx.step("password", lambda: kadmin.set_password(ctx, name, new), describe=f"set a new temporary password on {name}",
             would=f"set a new temporary password on {name}")
    ctx.step("must-change", lambda: kadmin.require_change(ctx, name), best_effort=True,
             describe="required a change at next login", would="require a change at next login")
    return {"principal": name, "password": new}


@plugin.verb("home", "Step: the home directory from the skeleton, and .forward", role="homes", allow=policy.STAFF,
             mutating=True, check=True, hidden=True,
             params=[Uid("uid", positional=True), Address])
def home(ctx, uid, forwarding_address):
    import shutil
    base = ctx.config.get("homes", "base", "/users")
    skel = ctx.config.get("homes", "skeleton", os.path.join(base, "skel"))
    path = os.path.join(base, uid)
    if os.path.lexists(path):
        raise AlreadyExists(f"{path} already exists")
    if ctx.check:
        ctx.step("home", None, would=f"copy {skel} to {path} (owner {uid}, mode 0755)")
        if forwarding_address:
            ctx.step("forward", None, would=f"write {path}/.forward: {', '.join(forwarding_address)}")
        return {"home": path}
    uid_number = policy.managed_member_number(ctx, uid)  # from LDAP, never from the client
    ctx.step("home", lambda: homes.copy_skeleton(skel, path, uid_number), lambda: shutil.rmtree(path),
             describe=f"made {path} from {skel}")
    if forwarding_address:
        ctx.step("forward", lambda: acct.write_forward(path, forwarding_address, uid_number),
                 describe=f"wrote {path}/.forward ({', '.join(forwarding_address)})")
    return {"home": path}


@plugin.verb("welcome", "Step: the welcome email", role="mail", allow=policy.STAFF, mutating=True, check=True,
             hidden=True, params=[Uid("uid", positional=True), Str("cn", required=True, max_length=256)])
def welcome(ctx, uid, cn):
    from ceo.services import mail
    to = mail.address(ctx.config, uid)
    if ctx.check:
        ctx.step("welcome", None, would=f"email the welcome message to {to}")
        return {}
    domain = ctx.config.get("ceo", "domain")
    ctx.step("welcome", lambda: mail.send(ctx, to=(cn, to), sender=("Computer Science Club", f"exec@{domain}"),
                                          subject="Welcome to the Computer Science Club",
                                          body=WELCOME.format(cn=cn, uid=uid, domain=domain)),
             describe=f"emailed the welcome message to {to}")
    return {}


@plugin.verb("announce", "Step: tell the ceo list who added whom", role="mail", allow=policy.STAFF, mutating=True,
             check=True, hidden=True, params=[
                 Uid("uid", positional=True), Str("cn", required=True, max_length=256),
                 Str("program", max_length=256), Str("kind", choices=("member", "clubrep"), required=True),
                 Flag("failed"), Str("details", multiple=True, max_length=500)])
def announce(ctx, uid, cn, program, kind, failed, details):
    from ceo.services import mail
    domain = ctx.config.get("ceo", "domain")
    to = ctx.config.get("members", "announce_to", f"ceo@{domain}")
    what = "New Club Rep" if kind == "clubrep" else "New Member"
    subject = f"{what}: {uid}" + (" (FAILED)" if failed else "")
    if ctx.check:
        ctx.step("announce", None, would=f"email {to}: {subject}")
        return {}
    body = announcement(uid, cn, program, ctx.caller, failed, details)
    ctx.step("announce", lambda: mail.send(ctx, to=("Membership and Accounts", to),
                                           sender=("ceo", f"ceo@{domain}"), subject=subject, body=body,
                                           X_Auth_User=ctx.caller, X_New_User=uid),
             describe=f"announced to {to}")
    return {}


@plugin.verb("info", "Step: a member's LDAP facts", role="ldap", hidden=True, params=[Uid("uid", positional=True)])
def info(ctx, uid):
    entry = acct.user(ctx, uid)
    groups = sorted(directory.groups_of(ctx.ldap(), ctx.config, uid))
    return {"uid": uid, "name": acct.first(entry, "cn"), "given_name": acct.first(entry, "givenName"),
            "sn": acct.first(entry, "sn"), "program": acct.first(entry, "program"),
            "uidNumber": acct.first(entry, "uidNumber"), "gidNumber": acct.first(entry, "gidNumber"),
            "home": acct.first(entry, "homeDirectory"), "shell": acct.first(entry, "loginShell"),
            "terms": T.sort(entry.get("term", [])), "club_rep_terms": T.sort(entry.get("nonMemberTerm", [])),
            "positions": sorted(entry.get("position", [])), "groups": groups, "locked": acct.locked(entry)}


@plugin.verb("forwarding", "Step: a member's forwarding addresses", role="homes", hidden=True,
             allow=("self", "office", "syscom"), params=[Uid("uid", positional=True)])
def forwarding(ctx, uid):
    text = acct.read_forward(os.path.join(acct.home_of(ctx, uid), ".forward"))
    return {"addresses": [line.strip() for line in (text or "").splitlines() if line.strip()]}


@plugin.verb("set_shell", "Step: replace the login shell", role="ldap", allow=("self", "office", "syscom"),
             guard=policy.protected_account_guard, mutating=True, check=True, hidden=True, params=[Uid("uid", positional=True),
                                                           Str("shell", required=True, max_length=256)])
def set_shell(ctx, uid, shell):
    if shell not in acct.shells():
        raise BadInput(f"{shell} is not in /etc/shells on {ctx.host}; ask syscom to add it")
    policy.managed_member_number(ctx, uid)  # a club's or a service's shell is not a member's
    entry = acct.user(ctx, uid)
    old = acct.first(entry, "loginShell")
    if old == shell:
        return ctx.unchanged("shell", f"login shell is already {shell}")
    conn, dn = ctx.ldap(), acct.dn(ctx, uid)
    ctx.step("shell", lambda: directory.modify(conn, dn, "changing the shell", replace={"loginShell": [shell]}),
             lambda: directory.modify(conn, dn, f"restoring the shell of {uid}",
                                      replace={"loginShell": [old] if old else []}),
             describe=f"login shell: {old} -> {shell}", would=f"change the login shell: {old} -> {shell}")
    return ctx.changed()


@plugin.verb("set_forwarding", "Step: replace ~/.forward", role="homes", allow=("self", "office", "syscom"),
             guard=policy.protected_account_guard, mutating=True, check=True, hidden=True,
             params=[Uid("uid", positional=True), Address])
def set_forwarding(ctx, uid, forwarding_address):
    number = policy.managed_member_number(ctx, uid)
    path = os.path.join(acct.home_of(ctx, uid, number), ".forward")
    old = acct.read_forward(path)
    new = "".join(f"{a}\n" for a in forwarding_address) or None
    if old == new:
        return ctx.unchanged("forward", "forwarding unchanged")
    to = ", ".join(forwarding_address)
    ctx.step("forward", lambda: acct.write_forward(os.path.dirname(path), forwarding_address, number),
             lambda: acct.restore(path, old, number),
             describe=f"forwarding: {to}" if to else "removed forwarding",
             would=f"forward mail to {to}" if to else "remove forwarding")
    return ctx.changed()


@plugin.verb("renew_lookup", "Step: the terms and locks of many members at once", role="ldap", allow=policy.STAFF,
             hidden=True, params=[Uid("uids", multiple=True, required=True)])
def lookup(ctx, uids):
    if len(uids) > 50000:
        raise BadInput("at most 50,000 uids at once")
    found = {}
    for i in range(0, len(uids), 200):  # a few hundred alternatives per filter
        flt = "(&(objectClass=posixAccount)(|" + "".join(f"(uid={acct.esc(u)})" for u in uids[i:i + 200]) + "))"
        for e in acct.search(ctx, flt, ["uid", "term", "nonMemberTerm", "shadowExpire", "lockReason",
                                        "objectClass"]):
            found[e["uid"][0]] = {"term": e.get("term", []), "nonMemberTerm": e.get("nonMemberTerm", []),
                                  "member": "member" in {c.lower() for c in e.get("objectClass", [])},
                                  # only a lapsed-membership lock is the renewal's to lift
                                  "shadowExpire": int(e["shadowExpire"][0]) if policy.renewal_unlocks(e) else None}
    return found


@plugin.verb("renew_rows", "Step: renew a batch of rows read by the client, LDAP writes pipelined (--csv)",
             role="ldap", allow=policy.STAFF, mutating=True, hidden=True, audit_rows=True, params=[
                 Uid("uids", multiple=True, required=True),
                 Str("adds", "per row: the terms to add, space-separated", multiple=True,
                     pattern=r"([wsf][0-9]{4}( [wsf][0-9]{4}){0,11})?", describe="terms like 'w2027 s2027'"),
                 Int("expires", "per row: the shadowExpire the client read, -1 for none", multiple=True, min=-1),
                 Clubrep])
def renew_rows(ctx, uids, adds, expires, clubrep):
    """Each row is one modify, exactly as the client planned it from what it read; all of a
    batch's modifies are in flight at once. A row whose entry changed since (a term already
    there, no lock to remove) is redone the careful way; each row gets one event and, if it
    changed something, one audit record."""
    if not len(uids) == len(adds) == len(expires) or len(uids) > 1000:
        raise BadInput("uids, adds and expires must be parallel lists of at most 1,000 rows")
    attr = "nonMemberTerm" if clubrep else "term"
    conn = ctx.ldap(pipelined=True)
    rows = []
    for uid, add_, expire in zip(uids, adds, expires, strict=True):
        if not add_ and expire < 0:  # nothing to do: never sent (and every row is answered below)
            rows.append((uid, [], False, None))
            continue
        # The unlock is atomic with the lapsed reason: any other lock makes LDAP refuse the row.
        unlock = {"shadowExpire": [], "lockReason": [policy.LAPSED]} if expire >= 0 else None
        change = directory.changes(add={attr: add_.split()} if add_ else None, delete=unlock)
        try:
            sent = conn.modify(acct.dn(ctx, uid), change)
        except CeoError as exc:  # refused before it left: the rows already in flight are still answered
            sent = exc
        rows.append((uid, add_.split(), expire >= 0, sent))
    outcomes, broken = [], None
    for i, (uid, new, unlock, msgid) in enumerate(rows):
        row = {"uid": uid, "term": new, "clubrep": clubrep}
        if msgid is None or isinstance(msgid, CeoError):
            status, message = ("unchanged", "nothing to do") if msgid is None else ("failed", msgid.message)
            _row_done(ctx, i, row, unlock, status, message, outcomes)
            continue
        try:
            result = conn.response(msgid) if not broken else {"result": -1, "description": broken}
            code = result["result"]
        except ServiceUnavailable as exc:  # the connection went: this row may or may not be done
            broken = f"{exc.message}; run the same file again"
            code, result = -1, {"description": broken}
        if code in directory.STALE:  # changed since the client read it
            try:
                if not new:  # only an unlock was asked, and someone already did it
                    raise _AlreadyDone
                careful = renew_terms(ctx.quiet(), uid, None, new, clubrep)
                status = "done" if careful["changed"] else "unchanged"
                message = _renewed(careful["added"], careful["unlocked"], clubrep) if careful["changed"] \
                    else "already there"
            except _AlreadyDone:
                status, message = "unchanged", "already unlocked"
            except CeoError as err:
                status, message = "failed", err.message
        elif code == directory.SUCCESS:
            status, message = "done", _renewed(new, unlock, clubrep)
        elif code == directory.OBJECT_CLASS_VIOLATION:
            status, message = "failed", f"{uid} is not a member (a club or system account)"
        else:
            status, message = "failed", f"LDAP: {result.get('description')}"
        _row_done(ctx, i, row, unlock, status, message, outcomes)
    return {"rows": outcomes}


def _row_done(ctx, i, row, unlock, status, message, outcomes):
    """One row's event and, if it did or tried something, its audit record."""
    if status != "unchanged":
        ctx.audit({**row, "unlock": unlock}, status if status == "failed" else "done",
                  message if status == "failed" else None)
    ctx.emit({"row": i, "status": status, "message": message})
    outcomes.append({"uid": row["uid"], "status": status, "message": message})


class _AlreadyDone(Exception):
    pass


@plugin.verb("renew_terms", "Step: add terms, unlock", role="ldap", allow=policy.STAFF, mutating=True, check=True,
             hidden=True, params=[Uid("uid", positional=True), Count(), Terms, Clubrep])
def renew_terms(ctx, uid, terms, term, clubrep):
    acct.terms_choice(terms, term)
    attr = "nonMemberTerm" if clubrep else "term"
    wanted, warned = (list(term) if term else None), False
    for _ in range(5):  # another renewal of the same member may write between our read and write
        entry = acct.user(ctx, uid)
        policy.refuse_non_member(uid, entry)
        if wanted is None:  # counted on the first read only: racing a renewal for the same payment,
            # the retry finds the counted terms there and adds no more
            known = set(entry.get(attr, [])) | (set(entry.get("term", [])) if clubrep else set())
            wanted = T.interval(T.next_unregistered(known), terms or 1)
        if entry.get("shadowExpire") and not policy.renewal_unlocks(entry) and not warned:
            reason = entry.get("lockReason", ["no reason recorded"])[0]
            ctx.emit({"step": "lock", "status": "warning",
                      "message": f"{uid} stays locked ({reason}): only syscom lifts that lock"})
            warned = True
        try:
            return _renew(ctx, uid, entry, wanted, attr, clubrep)
        except Stale:
            continue
    raise Stale(f"renewing {uid}: the entry kept changing while it was being written; try again")


def _renew(ctx, uid, entry, wanted, attr, clubrep):
    have = set(entry.get(attr, []))
    new = [t for t in wanted if t not in have]
    locked = policy.renewal_unlocks(entry)
    result = {"uid": uid, attr: T.sort(have | set(new)), "added": new, "unlocked": locked}
    if not new and not locked:
        return ctx.unchanged("terms", f"{uid} already has {' '.join(wanted)}", **result)
    added = {attr: new} if new else {}
    lock = {"shadowExpire": entry["shadowExpire"], "lockReason": [policy.LAPSED]} if locked else {}
    conn, dn = ctx.ldap(), acct.dn(ctx, uid)
    # Its undo takes away exactly what this write added (LDAP refuses an add of a value that is
    # there, so no other renewal added the same): a renewal that found it here has reported
    # "already has" on this one's word, which an undo (a failed later step) takes back with it.
    ctx.step("terms", lambda: directory.modify(conn, dn, f"renewing {uid}", stale=True, add=added,
                                               delete={k: [] if k == "shadowExpire" else v for k, v in lock.items()}),
             lambda: directory.modify(conn, dn, f"undoing the renewal of {uid}", delete=added, replace=lock),
             describe=f"{uid}: " + _renewed(new, locked, clubrep), would=f"{_renewed(new, locked, clubrep, would=True)} ({uid})")
    return ctx.changed(**result)


def _renewed(new, unlocked, clubrep, would=False) -> str:
    """What a renewal did ("added terms w2027 and unlocked the account"), or would do."""
    add, unlock = ("add", "unlock") if would else ("added", "unlocked")
    return (f"{add} {'club rep ' if clubrep else ''}terms {' '.join(new)}" if new else "") + \
        (" and " if new and unlocked else "") + (f"{unlock} the account" if unlocked else "")


# The kind of account a deletion step is for (policy.KINDS): each removes only an account of
# that kind that ceo manages, so `members delete` never takes a club and `groups delete` never
# takes a member.
Kind = Str("kind", "member or club", choices=tuple(policy.KINDS), default="member")


@plugin.verb("remove_home", "Step: archive or remove the home directory (syscom)", role="homes",
             allow=("syscom",), mutating=True, check=True, hidden=True, params=[Uid("uid", positional=True), Kind])
def remove_home(ctx, uid, kind):
    policy.managed_number(ctx, uid, kind)
    base = ctx.config.get("homes", "base", "/users")
    path = os.path.join(base, uid)
    mode = ctx.config.get("homes", "on_delete", "archive")
    archive = ctx.config.get("homes", "archive_dir", os.path.join(base, ".deleted"))
    if not os.path.lexists(path):
        return ctx.unchanged("home", f"{path} does not exist")
    dest = os.path.join(archive, f"{uid}-{time.strftime('%Y%m%d-%H%M%S')}-{os.urandom(3).hex()}")
    if ctx.check:
        ctx.step("home", None, would=f"{'move' if mode == 'archive' else 'remove'} {path}"
                 + (f" to {dest}" if mode == "archive" else ""))
        return {}
    os.makedirs(archive, mode=0o700, exist_ok=True)
    # Moved aside first in either mode, so a later failing step can put it back.
    ctx.step("home", lambda: os.rename(path, dest), lambda: os.rename(dest, path),
             describe=f"moved {path} to {dest}", would=f"move {path} to {dest}")
    return {"archived": dest if mode == "archive" else None, "moved_to": dest, "remove_after": mode != "archive"}


@plugin.verb("purge_home", "Step: remove a home moved aside by remove_home (syscom)", role="homes",
             allow=("syscom",), mutating=True, check=True, hidden=True,
             params=[Str("path", required=True, max_length=512)])
def purge_home(ctx, path):
    import shutil
    base = ctx.config.get("homes", "base", "/users")
    archive = os.path.realpath(ctx.config.get("homes", "archive_dir", os.path.join(base, ".deleted")))
    real = os.path.realpath(path)
    if os.path.dirname(real) != archive:  # only what remove_home moved aside
        raise BadInput(f"{path} is not in {archive}")
    ctx.step("purge", (lambda: shutil.rmtree(real)) if not ctx.check else None, describe=f"removed {real}",
             would=f"remove {real}")
    return {}


@plugin.verb("remove_ldap", "Step: remove every reference to the user, the user and its group; leave a tombstone "
             "(syscom)", role="ldap", allow=("syscom",), mutating=True, check=True, hidden=True,
             params=[Uid("uid", positional=True),
                     Str("archived", "where remove_home archived the home", max_length=512,
                         pattern=r"/[A-Za-z0-9/._-]{1,511}", describe="an absolute path"), Kind])
def remove_ldap(ctx, uid, archived, kind):
    conn, dn = ctx.ldap(), acct.dn(ctx, uid)
    number = policy.managed_number(ctx, uid, kind)
    user = acct.user(ctx, uid, all_attrs=True)
    # The tombstone first: a run cut short (a service died, an undo failed) still marks the
    # name as deleted, and `members delete` run again finishes from it.
    _tombstone(ctx, uid, number, archived)
    if kind == "club":  # its own sudo rule goes whole; other rules that name it lose those values
        rule_dn = directory.sudo_rule_dn(ctx.config, uid)
        rule = acct.search(ctx, "(objectClass=sudoRole)", ["*"], base=rule_dn, scope="BASE")
        if rule:
            ctx.step("sudo-rule", lambda: directory.delete(conn, rule_dn, f"deleting {rule_dn}"),
                     lambda: directory.add(conn, rule_dn, f"restoring {rule_dn}", attrs=acct.readd(rule[0])),
                     describe=f"deleted sudo rule %{uid}", would=f"delete sudo rule %{uid}")
    group_dn = f"cn={uid},{acct.groups(ctx)}"
    group = acct.search(ctx, "(objectClass=*)", ["*"], base=group_dn, scope="BASE")
    sudo = directory.sudoers_dn(ctx.config).lower()
    # Everything that names it, so that a later account of the same name or number inherits nothing.
    own_rule = directory.sudo_rule_dn(ctx.config, uid).lower() if kind == "club" else None
    for ref_dn, attr, value in directory.references(conn, ctx.config, uid, number):
        if ref_dn.lower() == own_rule:  # deleted whole above (still there in check mode)
            continue
        name = ref_dn.split(",")[0].split("=", 1)[1]
        what = f"{value} from sudo rule {name} ({attr})" if ref_dn.lower().endswith(sudo) else \
            f"{uid} from {name}" + ("" if attr == "uniqueMember" else f" ({attr})")
        ctx.step("reference", lambda d=ref_dn, a=attr, v=value: directory.modify(
                     conn, d, f"removing {v} from {d}", delete={a: [v]}),
                 lambda d=ref_dn, a=attr, v=value: directory.modify(conn, d, f"putting {v} back in {d}", add={a: [v]}),
                 describe=f"removed {what}", would=f"remove {what}")
    if group:
        ctx.step("group", lambda: directory.delete(conn, group_dn, f"deleting {group_dn}"),
                 lambda: directory.add(conn, group_dn, f"restoring {group_dn}", attrs=acct.readd(group[0])),
                 describe=f"deleted group {uid}", would=f"delete group {uid}")
    ctx.step("user", lambda: directory.delete(conn, dn, f"deleting {dn}"),
             lambda: directory.add(conn, dn, f"restoring {dn}", attrs=acct.readd(user)), describe=f"deleted LDAP user {uid}",
             would=f"delete LDAP user {uid}")
    return {}


def _tombstone(ctx, uid, number, archived):
    """A small entry that outlives the account: its name is not reused by default (see
    policy.refuse_referenced_name) and its uid number never (free_number skips it), since the
    archived home still carries that number. `account` + `extensibleObject` (standard schema,
    nothing to deploy), never a posixAccount: NSS does not see it."""
    conn, ou = ctx.ldap(), directory.tombstones_dn(ctx.config)
    tomb_dn = directory.tombstone_dn(ctx.config, number)
    note = f"deleted {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())} by {ctx.caller}" \
        + (f", home archived at {archived}" if archived else ", home not archived")
    attrs = {"uid": uid, "uidNumber": number, "description": note, **({"homeDirectory": archived} if archived else {})}
    if not acct.search(ctx, "(objectClass=*)", ["ou"], base=ou, scope="BASE"):
        ctx.step("tombstones", lambda: directory.add(conn, ou, f"adding {ou}", ["top", "organizationalUnit"],
                                                     {"ou": "Tombstones"}),
                 lambda: directory.delete(conn, ou, f"removing {ou}", gone_ok=True), describe=f"added {ou}",
                 would=f"add {ou}")
    there = acct.search(ctx, "(objectClass=*)", ["uid"], base=tomb_dn, scope="BASE")
    if there and there[0].get("uid") == [uid]:  # left by a run cut short: this one finishes it
        return ctx.emit({"step": "tombstone", "status": "unchanged", "message": f"{uid} has a tombstone already"})
    ctx.step("tombstone", lambda: directory.add(conn, tomb_dn, f"adding {tomb_dn}", ["top", "account", "extensibleObject"],
                                                attrs),
             lambda: directory.delete(conn, tomb_dn, f"removing {tomb_dn}", gone_ok=True),
             describe=f"left a tombstone for {uid} (uid number {number})",
             would=f"leave a tombstone for {uid} (uid number {number})")


@plugin.verb("deleted", "Step: whether a user name is a deleted account's (its tombstone) (syscom)", role="ldap",
             allow=("syscom",), hidden=True, params=[Uid("uid", positional=True)])
def deleted(ctx, uid):
    found = acct.search(ctx, f"(uid={directory.escape(uid)})", ["uidNumber"],
                        base=directory.tombstones_dn(ctx.config), scope="LEVEL")
    return {"uid": uid, "deleted": bool(found)}


@plugin.verb("remove_principal", "Step: delete the principal (syscom)", role="kerberos", allow=("syscom",),
             mutating=True, check=True, hidden=True, params=[Uid("uid", positional=True)])
def remove_principal(ctx, uid):
    name = f"{uid}@{ctx.config.realm}"
    if not kadmin.exists(ctx, name):
        return ctx.unchanged("principal", f"no principal {name}")
    ctx.step("principal", (lambda: kadmin.delete(ctx, name)) if not ctx.check else None,
             describe=f"deleted principal {name}", would=f"delete principal {name}")
    return ctx.changed()


