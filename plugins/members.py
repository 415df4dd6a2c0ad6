"""`ceo members`: add, get, list, modify, renew, pwreset, delete members and club reps.

A member added by ceo is a real account or nothing: an LDAP entry and personal group, a
Kerberos principal, a home directory from the skeleton, mail forwarding, then (best effort)
a welcome email, a subscription to csc-general and an announcement to the ceo list. The
public verbs are run by the client as steps on the hosts of each role; the hidden ones are
those steps, each undone by its own helper if a later step fails.
"""

from __future__ import annotations

import os
import time

from ceo.services import directory, homes, kadmin
from ceo import terms as T
from ceo.errors import (NOT_PERMITTED, AlreadyExists, BadInput, CeoError, NotFound, NotPermitted,
                        ServiceUnavailable)
from ceo.plugin import Email, Flag, Int, Plugin, Str, Term, Uid

plugin = Plugin("members", "Members and club reps: add, get, list, modify, renew, pwreset, delete")
STAFF = ("office", "syscom")
REQUIRES_PWCHANGE = 0x0200  # KRB5_KDB_REQUIRES_PWCHANGE: the temporary password must be changed

Address = Email("forwarding_address", "an address to forward mail to (repeatable)", multiple=True)
def Count(help="how many terms (default 1)"):
    return Int("terms", help, min=1, max=12)
Terms = Term("term", "exact terms (repeatable), e.g. --term w2027 s2027", multiple=True)
Clubrep = Flag("clubrep", "a club rep: nonMemberTerm instead of term; no welcome, no csc-general")


# --- public verbs ---------------------------------------------------------------------------

@plugin.composite("add", "Add a member (or --clubrep): LDAP, Kerberos, home, forwarding, welcome, lists",
                  check=True, render=lambda c, r: _render_added(c, r), params=[
                      Uid("uid", "the new account's user name", positional=True),
                      Str("cn", "full name", required=True, max_length=256),
                      Str("given_name", "given name", max_length=128), Str("sn", "surname", max_length=128),
                      Str("program", "academic program", max_length=256), Count("how many terms, from the current one (default 1)"), Terms, Clubrep,
                      Address, Flag("no_welcome", "do not send the welcome email"),
                      Flag("no_subscribe", "do not subscribe to csc-general")])
def add(run, uid, cn, given_name, sn, program, terms, term, clubrep, forwarding_address, no_welcome,
        no_subscribe):
    _terms_choice(terms, term)
    run.prepare(["ldap", "kerberos", "homes"])
    kind = "clubrep" if clubrep else "member"
    try:
        account = run.step("members.create", {"uid": uid, "cn": cn, "given_name": given_name, "sn": sn,
                                              "program": program, "terms": terms, "term": term,
                                              "clubrep": clubrep}, role="ldap", describe=f"LDAP account {uid}")
        secret = run.step("members.principal", {"uid": uid}, role="kerberos", describe=f"principal {uid}")
        run.step("members.home", {"uid": uid, "forwarding_address": forwarding_address},
                 role="homes", describe=f"home directory of {uid}")
    except CeoError as err:
        err = run.rollback(err)
        if err.exit_code not in (2, 3):  # a mistake or a refusal that changed nothing is not news
            _announce(run, uid, cn, program, kind, failed=True, details=[err.message])
        raise err from None
    if not clubrep:
        if not no_welcome:
            run.step("members.welcome", {"uid": uid, "cn": cn}, role="mail", describe="welcome email",
                     best_effort=True)
        if not no_subscribe:
            # In check mode the account does not exist yet: ask about its address instead.
            who = f"{uid}@{run.config.get('ceo', 'domain')}" if run.check else uid
            run.step("lists.subscribe", {"list": "csc-general", "who": who}, role="mail",
                     describe="subscription to csc-general", best_effort=True)
    _announce(run, uid, cn, program, kind, failed=False, details=[])
    result = {"uid": uid, "uidNumber": account.get("uidNumber"), "kind": kind,
              "terms": account.get("terms"), "principal": secret.get("principal"),
              "password": secret.get("password")}
    if run.output.warnings:
        result["warnings"] = list(run.output.warnings)
    return result


def _announce(run, uid, cn, program, kind, failed, details):
    run.step("members.announce", {"uid": uid, "cn": cn, "program": program, "kind": kind, "failed": failed,
                                  "details": details[:20]},
             role="mail", describe="announcement to the ceo list", best_effort=True)


def _render_added(console, result):
    if result.get("password"):
        console.print(f"[bold]{result['uid']}[/] (uid number {result['uidNumber']}), terms "
                      f"{', '.join(result['terms'] or [])}")
        console.print(f"Temporary password: [bold]{result['password']}[/]  (shown once; "
                      "they must change it at first login)")


@plugin.composite("get", "Show a member: name, program, numbers, terms, positions, groups, lock, forwarding",
                  params=[Uid("uid", "the member", positional=True)])
def get(run, uid):
    info = run.call("members.info", {"uid": uid}, role="ldap")
    try:
        info["forwarding"] = run.call("members.forwarding", {"uid": uid}, role="homes")["addresses"]
    except CeoError as err:
        if err.exit_code != NOT_PERMITTED:  # forwarding is for the member, office and syscom only
            info["forwarding"] = f"(unavailable: {err.message})"
    return info


@plugin.verb("list", "List members: --term T, --expired, --clubreps", role="ldap", params=[
    Term("term", "members registered in this term (default: the current one)"),
    Flag("expired", "members whose terms have all passed"),
    Flag("clubreps", "club reps instead of members")], render=lambda c, r: _render_list(c, r))
def list_(ctx, term, expired, clubreps):
    from ldap3.utils.conv import escape_filter_chars as esc
    attr = "nonMemberTerm" if clubreps else "term"
    now = T.current()
    if expired:
        flt = f"(&(objectClass=member)(!(term={now}))(!(nonMemberTerm={now}))({attr}=*))"
    else:
        flt = f"(&(objectClass=member)({attr}={esc(term or now)}))"
    entries = _search(ctx, flt, ["uid", "cn", "program", "term", "nonMemberTerm", "shadowExpire"])
    if expired:  # not current, and not registered ahead either: every term is in the past
        entries = [e for e in entries
                   if all(T.ordinal(t) < T.ordinal(now) for t in e.get("term", []) + e.get("nonMemberTerm", []))]
    rows = [{"uid": e["uid"][0], "name": _first(e, "cn"), "program": _first(e, "program"),
             "terms": T.sort(e.get("term", [])), "nonMemberTerms": T.sort(e.get("nonMemberTerm", [])),
             "locked": _locked(e)} for e in entries]
    return sorted(rows, key=lambda r: r["uid"])


def _render_list(console, rows):
    from rich.table import Table
    table = Table(show_edge=False, header_style="bold")
    for column in ("uid", "name", "program", "last terms", "locked"):
        table.add_column(column)
    for r in rows:
        last = (r["terms"] or r["nonMemberTerms"])[-3:]
        table.add_row(r["uid"], r["name"] or "", r["program"] or "", " ".join(last), "yes" if r["locked"] else "")
    console.print(table)
    console.print(f"{len(rows)} accounts")


@plugin.composite("modify", "Change a member's login shell or mail forwarding", check=True, params=[
    Uid("uid", "the member", positional=True),
    Str("login_shell", "a shell listed in the host's /etc/shells", metavar="PATH", pattern=r"/[A-Za-z0-9/._+-]{1,255}",
        describe="an absolute path"),
    Address, Flag("no_forwarding", "remove mail forwarding")])
def modify(run, uid, login_shell, forwarding_address, no_forwarding):
    if forwarding_address and no_forwarding:
        raise BadInput("give --forwarding-address or --no-forwarding, not both")
    if not (login_shell or forwarding_address or no_forwarding):
        raise BadInput("nothing to change: give --login-shell, --forwarding-address or --no-forwarding")
    if login_shell:
        run.step("members.set_shell", {"uid": uid, "shell": login_shell}, role="ldap", describe="login shell")
    if forwarding_address or no_forwarding:
        run.step("members.set_forwarding", {"uid": uid, "forwarding_address": forwarding_address},
                 role="homes", describe="mail forwarding")
    return {"uid": uid}


@plugin.composite("renew", "Add terms (default: the next unregistered one); unlocks an expired account. "
                  "--csv FILE renews many", check=True, render=lambda c, r: _render_renewals(c, r), params=[
                      Uid("uid", "the member (or --csv)", positional=True, required=False), Count("how many terms, from the next unregistered one (default 1)"), Terms,
                      Clubrep, Str("csv", "a CSV file with a `uid` column and an optional `terms` column: a count N "
                                   "(the N terms from the current one) or terms like 'w2027 s2027' ('-': stdin)",
                                   metavar="FILE", max_length=4096),
                      Flag("skip_invalid", "with --csv: apply the valid rows, report the rest"),
                      Str("receipt", "with --csv: write every row's outcome to this CSV file", metavar="PATH",
                          max_length=4096)])
def renew(run, uid, terms, term, clubrep, csv, skip_invalid, receipt):
    if csv:
        if uid or terms or term:
            raise BadInput("--csv takes the uids and terms from the file: give no UID, --terms or --term")
        from plugins import _csvrenew
        return _csvrenew.renew(run, csv, clubrep=clubrep, skip_invalid=skip_invalid, receipt=receipt)
    if skip_invalid or receipt:
        raise BadInput("--skip-invalid and --receipt go with --csv")
    if not uid:
        raise BadInput("give a UID, or --csv FILE")
    _terms_choice(terms, term)
    return run.call("members.renew_terms", {"uid": uid, "terms": terms, "term": term, "clubrep": clubrep},
                    role="ldap")


def _render_renewals(console, result):
    if "rows" in result:
        from plugins import _csvrenew
        _csvrenew.render(console, result)


@plugin.composite("pwreset", "Give a member a new temporary password (syscom)", check=True,
                  params=[Uid("uid", "the member", positional=True)], render=lambda c, r: _render_password(c, r))
def pwreset(run, uid):
    run.call("members.info", {"uid": uid}, role="ldap")  # exists?
    return run.call("members.password", {"uid": uid}, role="kerberos")


def _render_password(console, result):
    if result.get("password"):
        console.print(f"Temporary password for {result['principal']}: [bold]{result['password']}[/]  "
                      "(shown once; it must be changed at next login)")


@plugin.composite("delete", "Delete a member: lists, home, LDAP entries and groups, principal (syscom)",
                  check=True, confirm="Delete {uid}'s account, home directory and subscriptions?",
                  params=[Uid("uid", "the member", positional=True)])
def delete(run, uid):
    run.prepare(["ldap", "kerberos", "homes"])
    run.call("members.info", {"uid": uid}, role="ldap")
    home = run.step("members.remove_home", {"uid": uid}, role="homes", describe=f"home directory of {uid}")
    run.step("members.remove_ldap", {"uid": uid}, role="ldap", describe=f"LDAP entries of {uid}")
    run.step("members.remove_principal", {"uid": uid}, role="kerberos", describe=f"principal {uid}")
    # Last, and by address (the account is gone): a failed delete keeps its subscriptions.
    run.step("lists.unsubscribe_all", {"who": f"{uid}@{run.config.get('ceo', 'domain')}"}, role="mail",
             describe="list subscriptions", best_effort=True)
    if home and home.get("remove_after"):
        run.step("members.purge_home", {"path": home["moved_to"]}, role="homes", describe="removing the old home",
                 best_effort=True)
    return {"uid": uid, "home": (home or {}).get("archived")}


# --- steps, run by the helpers ----------------------------------------------------------------

@plugin.verb("create", "Step: allocate numbers, add the LDAP user and its group", role="ldap", allow=STAFF,
             mutating=True, check=True, hidden=True, params=[
                 Uid("uid", positional=True), Str("cn", required=True, max_length=256),
                 Str("given_name", max_length=128), Str("sn", max_length=128), Str("program", max_length=256),
                 Count(), Terms, Clubrep])
def create(ctx, uid, cn, given_name, sn, program, terms, term, clubrep):
    _terms_choice(terms, term)
    conn = ctx.ldap()
    people, groups = _people(ctx), _groups(ctx)
    if _search(ctx, f"(uid={uid})", ["uid"], base=people) or _search(ctx, f"(cn={uid})", ["cn"], base=groups):
        raise AlreadyExists(f"{uid} already exists")
    _refuse_system_names(ctx, uid)
    new_terms = list(term) if term else T.interval(T.current(), terms or 1)
    home = os.path.join(ctx.config.get("homes", "base", "/users"), uid)
    attrs = {"cn": cn, "uid": uid, "homeDirectory": home,
             "loginShell": ctx.config.get("members", "shell", "/bin/bash"),
             ("nonMemberTerm" if clubrep else "term"): new_terms}
    for key, value in (("givenName", given_name), ("sn", sn), ("program", program)):
        if value:
            attrs[key] = value
    classes = ["top", "account", "posixAccount", "shadowAccount", "member"]
    if ctx.check:
        ctx.step("ldap-user", None, describe=f"add uid={uid},{people}: " + _show_attrs(attrs)
                 + ", uidNumber=gidNumber=(first free number)")
        ctx.step("ldap-group", None, describe=f"add cn={uid},{groups} (personal group)")
        return {"uid": uid, "uidNumber": None, "terms": new_terms}
    with _number_lock(ctx):
        number = _free_number(ctx)
        attrs.update(uidNumber=number, gidNumber=number)
        user_dn, group_dn = f"uid={uid},{people}", f"cn={uid},{groups}"
        ctx.step("ldap-user", lambda: _ldap_ok(ctx, conn.add(user_dn, classes, attrs), f"adding {user_dn}"),
                 lambda: _ldap_ok(ctx, conn.delete(user_dn), f"removing {user_dn}", gone_ok=True), describe=f"added LDAP user {uid} (uid number {number}, "
                 f"{'club rep ' if clubrep else ''}terms {' '.join(new_terms)})")
    ctx.step("ldap-group", lambda: _ldap_ok(ctx, conn.add(group_dn, ["top", "group", "posixGroup"],
                                                          {"cn": uid, "gidNumber": number}), f"adding {group_dn}"),
             lambda: _ldap_ok(ctx, conn.delete(group_dn), f"removing {group_dn}", gone_ok=True), describe=f"added personal group {uid}")
    return {"uid": uid, "uidNumber": number, "terms": new_terms}


@plugin.verb("principal", "Step: a Kerberos principal with a temporary password", role="kerberos", allow=STAFF,
             mutating=True, check=True, hidden=True, params=[Uid("uid", positional=True)])
def principal(ctx, uid):
    name = f"{uid}@{ctx.config.realm}"
    if ctx.check:
        ctx.step("principal", None, describe=f"create principal {name} with a temporary password (must change)")
        return {"principal": name, "password": None}
    from kadmin import NewPrincipalKey
    _member_number(ctx, uid)  # only for an account ceo made: never root@, postgres@, ...
    admin = kadmin.admin(ctx)
    if kadmin.call(ctx, lambda: admin.principal_exists(name)):
        raise AlreadyExists(f"principal {name} already exists (remove the orphan with kadmin first)")
    password = _new_password()
    ctx.step("principal", lambda: kadmin.call(ctx, lambda: admin.add_principal(
                 name, key=NewPrincipalKey.Password(password), attributes=REQUIRES_PWCHANGE)),
             lambda: kadmin.call(ctx, lambda: admin.delete_principal(name)),
             describe=f"created principal {name} (temporary password, must change at first login)")
    return {"principal": name, "password": password}


@plugin.verb("password", "Step: a new temporary password (syscom)", role="kerberos", allow=("syscom",),
             mutating=True, check=True, hidden=True, params=[Uid("uid", positional=True)])
def password(ctx, uid):
    name = f"{uid}@{ctx.config.realm}"
    if ctx.check:
        ctx.step("password", None, describe=f"set a new temporary password on {name} (must change)")
        return {"principal": name, "password": None}
    _member_number(ctx, uid)  # members only: system principals are changed with kadmin
    admin = kadmin.admin(ctx)
    princ = kadmin.call(ctx, lambda: admin.get_principal(name))
    if princ is None:
        raise NotFound(f"no principal {name}")
    new = _new_password()

    # The password first (a change clears the must-change flag), then the flag. Once the
    # password has changed it is returned whatever happens next: never one nobody was shown.
    ctx.step("password", lambda: kadmin.call(ctx, lambda: admin.principal_change_password(name, new)),
             describe=f"set a new temporary password on {name}")
    ctx.step("must-change", lambda: kadmin.call(ctx, lambda: princ.modify(
        admin, attributes=princ.attributes | REQUIRES_PWCHANGE)), best_effort=True,
             describe="required a change at next login")
    return {"principal": name, "password": new}


@plugin.verb("home", "Step: the home directory from the skeleton, and .forward", role="homes", allow=STAFF,
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
        ctx.step("home", None, describe=f"copy {skel} to {path} (owner {uid}, mode 0755)")
        if forwarding_address:
            ctx.step("forward", None, describe=f"write {path}/.forward: {', '.join(forwarding_address)}")
        return {"home": path}
    uid_number = _member_number(ctx, uid)  # from LDAP, never from the client
    ctx.step("home", lambda: homes.copy_skeleton(skel, path, uid_number), lambda: shutil.rmtree(path),
             describe=f"made {path} from {skel}")
    if forwarding_address:
        ctx.step("forward", lambda: _write_forward(path, forwarding_address, uid_number),
                 describe=f"wrote {path}/.forward ({', '.join(forwarding_address)})")
    return {"home": path}


@plugin.verb("welcome", "Step: the welcome email", role="mail", allow=STAFF, mutating=True, check=True,
             hidden=True, params=[Uid("uid", positional=True), Str("cn", required=True, max_length=256)])
def welcome(ctx, uid, cn):
    from ceo.services import mail
    to = mail.address(ctx.config, uid)
    if ctx.check:
        ctx.step("welcome", None, describe=f"email the welcome message to {to}")
        return {}
    domain = ctx.config.get("ceo", "domain")
    ctx.step("welcome", lambda: mail.send(ctx, to=(cn, to), sender=("Computer Science Club", f"exec@{domain}"),
                                          subject="Welcome to the Computer Science Club",
                                          body=WELCOME.format(cn=cn, uid=uid, domain=domain)),
             describe=f"emailed the welcome message to {to}")
    return {}


@plugin.verb("announce", "Step: tell the ceo list who added whom", role="mail", allow=STAFF, mutating=True,
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
        ctx.step("announce", None, describe=f"email {to}: {subject}")
        return {}
    body = (f"Name:     {cn}\nAccount:  {uid}\nProgram:  {program or '(unknown)'}\n"
            f"Added by: {ctx.caller}\n\n"
            + ("The account was NOT created:\n" + "\n".join(f"  {d}" for d in details) if failed
               else "All steps succeeded.") + "\n\nYour Friend,\nceo\n")
    ctx.step("announce", lambda: mail.send(ctx, to=("Membership and Accounts", to),
                                           sender=("ceo", f"ceo@{domain}"), subject=subject, body=body,
                                           X_Auth_User=ctx.caller, X_New_User=uid),
             describe=f"announced to {to}")
    return {}


@plugin.verb("info", "Step: a member's LDAP facts", role="ldap", hidden=True, params=[Uid("uid", positional=True)])
def info(ctx, uid):
    entry = _user(ctx, uid)
    groups = sorted(e["cn"][0] for e in _search(ctx, f"(uniqueMember={_esc(_dn(ctx, uid))})", ["cn"],
                                                base=_groups(ctx)))
    return {"uid": uid, "name": _first(entry, "cn"), "given_name": _first(entry, "givenName"),
            "sn": _first(entry, "sn"), "program": _first(entry, "program"),
            "uidNumber": _first(entry, "uidNumber"), "gidNumber": _first(entry, "gidNumber"),
            "home": _first(entry, "homeDirectory"), "shell": _first(entry, "loginShell"),
            "terms": T.sort(entry.get("term", [])), "club_rep_terms": T.sort(entry.get("nonMemberTerm", [])),
            "positions": sorted(entry.get("position", [])), "groups": groups, "locked": _locked(entry)}


@plugin.verb("forwarding", "Step: a member's forwarding addresses", role="homes", hidden=True,
             allow=("self", "office", "syscom"), params=[Uid("uid", positional=True)])
def forwarding(ctx, uid):
    text = _read_forward(os.path.join(_home_of(ctx, uid), ".forward"))
    return {"addresses": [line.strip() for line in (text or "").splitlines() if line.strip()]}


@plugin.verb("set_shell", "Step: replace the login shell", role="ldap", allow=("self", "office", "syscom"),
             mutating=True, check=True, hidden=True, params=[Uid("uid", positional=True),
                                                           Str("shell", required=True, max_length=256)])
def set_shell(ctx, uid, shell):
    if shell not in _shells():
        raise BadInput(f"{shell} is not in /etc/shells on {ctx.host}; ask syscom to add it")
    _guard_syscom_member(ctx, uid, "login shell")
    entry = _user(ctx, uid)
    old = _first(entry, "loginShell")
    if old == shell:
        ctx.emit({"step": "shell", "status": "unchanged", "message": f"login shell is already {shell}"})
        return {"changed": False}
    import ldap3
    conn, dn = ctx.ldap(), _dn(ctx, uid)
    ctx.step("shell", lambda: _ldap_ok(ctx, conn.modify(dn, {"loginShell": [(ldap3.MODIFY_REPLACE, [shell])]}),
                                       "changing the shell"),
             lambda: _ldap_ok(ctx, conn.modify(dn, {"loginShell": [(ldap3.MODIFY_REPLACE, [old] if old else [])]}),
                              f"restoring the shell of {uid}"),
             describe=f"login shell: {old} -> {shell}")
    return {"changed": True}


@plugin.verb("set_forwarding", "Step: replace ~/.forward", role="homes", allow=("self", "office", "syscom"),
             mutating=True, check=True, hidden=True, params=[Uid("uid", positional=True), Address])
def set_forwarding(ctx, uid, forwarding_address):
    _guard_syscom_member(ctx, uid, "forwarding")
    number = _member_number(ctx, uid)
    path = os.path.join(_home_of(ctx, uid, number), ".forward")
    old = _read_forward(path)
    new = "".join(f"{a}\n" for a in forwarding_address) or None
    if old == new:
        ctx.emit({"step": "forward", "status": "unchanged", "message": "forwarding unchanged"})
        return {"changed": False}
    describe = (f"forwarding: {', '.join(forwarding_address)}" if forwarding_address else "removed forwarding")
    ctx.step("forward", lambda: _write_forward(os.path.dirname(path), forwarding_address, number),
             lambda: _restore(path, old, number), describe=describe)
    return {"changed": True}


@plugin.verb("lookup", "Step: the terms and locks of many members at once", role="ldap", allow=STAFF,
             hidden=True, params=[Uid("uids", multiple=True, required=True)])
def lookup(ctx, uids):
    if len(uids) > 50000:
        raise BadInput("at most 50,000 uids at once")
    found = {}
    for i in range(0, len(uids), 200):  # a few hundred alternatives per filter
        flt = "(&(objectClass=posixAccount)(|" + "".join(f"(uid={_esc(u)})" for u in uids[i:i + 200]) + "))"
        for e in _search(ctx, flt, ["uid", "term", "nonMemberTerm", "shadowExpire"]):
            found[e["uid"][0]] = {"term": e.get("term", []), "nonMemberTerm": e.get("nonMemberTerm", []),
                                  "shadowExpire": int(e["shadowExpire"][0]) if e.get("shadowExpire") else None}
    return found


@plugin.verb("renew_rows", "Step: renew a batch of rows read by the client, LDAP writes pipelined (--csv)",
             role="ldap", allow=STAFF, mutating=True, hidden=True, audit_rows=True, params=[
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
    import ldap3
    from ceo.services.directory import connect
    if not len(uids) == len(adds) == len(expires) or len(uids) > 1000:
        raise BadInput("uids, adds and expires must be parallel lists of at most 1,000 rows")
    attr = "nonMemberTerm" if clubrep else "term"
    conn = ctx.service("ldap-pipelined", lambda: connect(ctx.config, ctx.host, lambda: ctx.session.drop("ldap-pipelined"),
                                                         pipelined=True))
    rows = []
    for uid, add_, expire in zip(uids, adds, expires, strict=True):
        change = {attr: [(ldap3.MODIFY_ADD, add_.split())]} if add_ else {}
        if expire >= 0:
            change["shadowExpire"] = [(ldap3.MODIFY_DELETE, [])]
        rows.append((uid, add_.split(), expire >= 0, conn.modify(_dn(ctx, uid), change)))
    outcomes, broken = [], None
    for i, (uid, new, unlock, msgid) in enumerate(rows):
        row = {"uid": uid, "term": new, "clubrep": clubrep}
        try:
            result = conn.response(msgid) if not broken else {"result": -1, "description": broken}
            code = result["result"]
        except ServiceUnavailable as exc:  # the connection went: this row may or may not be done
            broken = f"{exc.message}; run the same file again"
            code, result = -1, {"description": broken}
        if code in (16, 20):  # the entry changed since the client read it
            try:
                if not new:  # only an unlock was asked, and someone already did it
                    raise _AlreadyDone
                careful = renew_terms(_Quiet(ctx), uid, None, new, clubrep)
                status = "done" if careful["changed"] else "unchanged"
                message = _renewed(careful["added"], careful["unlocked"], clubrep) if careful["changed"] \
                    else "already there"
            except _AlreadyDone:
                status, message = "unchanged", "already unlocked"
            except CeoError as err:
                status, message = "failed", err.message
        elif code == 0:
            status, message = "done", _renewed(new, unlock, clubrep)
        else:
            status, message = "failed", f"LDAP: {result.get('description')}"
        if status != "unchanged":
            ctx.audit({**row, "unlock": unlock}, status if status == "failed" else "done",
                      message if status == "failed" else None)
        ctx.emit({"row": i, "status": status, "message": message})
        outcomes.append({"uid": uid, "status": status, "message": message})
    return {"rows": outcomes}


class _AlreadyDone(Exception):
    pass


class _Quiet:
    """A context for a nested careful renewal: its steps are done, not announced (the batch
    reports the row itself)."""

    def __init__(self, ctx):
        self._ctx = ctx
        self.check = False
        self.steps = type(ctx.steps)(lambda event: None, False)

    def step(self, *args, **kw):
        return self.steps.run(*args, **kw)

    def emit(self, event):
        pass

    def __getattr__(self, name):
        return getattr(self._ctx, name)


@plugin.verb("renew_terms", "Step: add terms, unlock", role="ldap", allow=STAFF, mutating=True, check=True,
             hidden=True, params=[Uid("uid", positional=True), Count(), Terms, Clubrep])
def renew_terms(ctx, uid, terms, term, clubrep):
    import ldap3
    _terms_choice(terms, term)
    entry = _user(ctx, uid)
    attr = "nonMemberTerm" if clubrep else "term"
    have = set(entry.get(attr, []))
    known = have | (set(entry.get("term", [])) if clubrep else set())
    wanted = list(term) if term else T.interval(T.next_unregistered(known), terms or 1)
    new = [t for t in wanted if t not in have]
    locked = "shadowExpire" in entry
    result = {"uid": uid, attr: T.sort(have | set(new)), "added": new, "unlocked": locked}
    if not new and not locked:
        ctx.emit({"step": "terms", "status": "unchanged", "message": f"{uid} already has {' '.join(wanted)}"})
        return {**result, "changed": False}
    change = {}
    if new:
        change[attr] = [(ldap3.MODIFY_ADD, new)]
    if locked:
        change["shadowExpire"] = [(ldap3.MODIFY_DELETE, [])]
    undo = {attr: [(ldap3.MODIFY_DELETE, new)]} if new else {}
    if locked:
        undo["shadowExpire"] = [(ldap3.MODIFY_REPLACE, entry["shadowExpire"])]
    conn, dn = ctx.ldap(), _dn(ctx, uid)
    ctx.step("terms", lambda: _ldap_ok(ctx, conn.modify(dn, change), f"renewing {uid}"),
             lambda: _ldap_ok(ctx, conn.modify(dn, undo), f"undoing the renewal of {uid}"),
             describe=f"{uid}: " + _renewed(new, locked, clubrep))
    return {**result, "changed": True}


def _renewed(new, unlocked, clubrep) -> str:
    return (f"added {'club rep ' if clubrep else ''}terms {' '.join(new)}" if new else "") + \
        (" and " if new and unlocked else "") + ("unlocked the account" if unlocked else "")


@plugin.verb("remove_home", "Step: archive or remove the home directory (syscom)", role="homes",
             allow=("syscom",), mutating=True, check=True, hidden=True, params=[Uid("uid", positional=True)])
def remove_home(ctx, uid):
    base = ctx.config.get("homes", "base", "/users")
    path = os.path.join(base, uid)
    mode = ctx.config.get("homes", "on_delete", "archive")
    archive = ctx.config.get("homes", "archive_dir", os.path.join(base, ".deleted"))
    if not os.path.lexists(path):
        ctx.emit({"step": "home", "status": "unchanged", "message": f"{path} does not exist"})
        return {"changed": False}
    dest = os.path.join(archive, f"{uid}-{time.strftime('%Y%m%d-%H%M%S')}-{os.urandom(3).hex()}")
    if ctx.check:
        ctx.step("home", None, describe=f"{'move' if mode == 'archive' else 'remove'} {path}"
                 + (f" to {dest}" if mode == "archive" else ""))
        return {}
    os.makedirs(archive, mode=0o700, exist_ok=True)
    # Moved aside first in either mode, so a later failing step can put it back.
    ctx.step("home", lambda: os.rename(path, dest), lambda: os.rename(dest, path),
             describe=f"moved {path} to {dest}")
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
    ctx.step("purge", (lambda: shutil.rmtree(real)) if not ctx.check else None, describe=f"removed {real}")
    return {}


@plugin.verb("remove_ldap", "Step: remove group memberships, the user and its group (syscom)", role="ldap",
             allow=("syscom",), mutating=True, check=True, hidden=True, params=[Uid("uid", positional=True)])
def remove_ldap(ctx, uid):
    import ldap3
    conn, dn = ctx.ldap(), _dn(ctx, uid)
    user = _user(ctx, uid, all_attrs=True)
    memberships = [e["dn"] for e in _search(ctx, f"(uniqueMember={_esc(dn)})", ["cn"], base=_groups(ctx))]
    group_dn = f"cn={uid},{_groups(ctx)}"
    group = _search(ctx, "(objectClass=*)", ["*"], base=group_dn, scope="BASE")
    for gdn in memberships:
        ctx.step("membership", lambda g=gdn: _ldap_ok(ctx, conn.modify(g, {"uniqueMember": [(ldap3.MODIFY_DELETE, [dn])]}),
                                                      f"leaving {g}"),
                 lambda g=gdn: _ldap_ok(ctx, conn.modify(g, {"uniqueMember": [(ldap3.MODIFY_ADD, [dn])]}), f"rejoining {g}"),
                 describe=f"removed {uid} from {gdn.split(',')[0][3:]}")
    if group:
        ctx.step("group", lambda: _ldap_ok(ctx, conn.delete(group_dn), f"deleting {group_dn}"),
                 lambda: _ldap_ok(ctx, conn.add(group_dn, attributes=_readd(group[0])), f"restoring {group_dn}"), describe=f"deleted group {uid}")
    ctx.step("user", lambda: _ldap_ok(ctx, conn.delete(dn), f"deleting {dn}"),
             lambda: _ldap_ok(ctx, conn.add(dn, attributes=_readd(user)), f"restoring {dn}"), describe=f"deleted LDAP user {uid}")
    return {}


@plugin.verb("remove_principal", "Step: delete the principal (syscom)", role="kerberos", allow=("syscom",),
             mutating=True, check=True, hidden=True, params=[Uid("uid", positional=True)])
def remove_principal(ctx, uid):
    name = f"{uid}@{ctx.config.realm}"
    admin = kadmin.admin(ctx)
    if not kadmin.call(ctx, lambda: admin.principal_exists(name)):
        ctx.emit({"step": "principal", "status": "unchanged", "message": f"no principal {name}"})
        return {"changed": False}
    ctx.step("principal", (lambda: kadmin.call(ctx, lambda: admin.delete_principal(name))) if not ctx.check else None,
             describe=f"deleted principal {name}")
    return {}


# --- plumbing ----------------------------------------------------------------------------------

WELCOME = """Hello {cn},

Welcome to the Computer Science Club! Your account is {uid}.

- You have been subscribed to csc-general@{domain}, the club's general list.
- Log in with `ssh {uid}@<any club machine>` using the temporary password the office gave
  you; you will be asked to choose your own at once.
- Your web space is ~/www, served at https://{domain}/~{uid}/.
- Need a MySQL or PostgreSQL database? Run `ceo` on any club machine.

Questions: the office, or exec@{domain}; for the machines, syscom@{domain}.

The Computer Science Club
"""


def _terms_choice(count, explicit):
    if count and explicit:
        raise BadInput("give --terms N or --term T..., not both")
    if explicit and len(set(explicit)) != len(explicit):
        raise BadInput(f"a term is repeated in {' '.join(explicit)}")


def _new_password() -> str:
    """16 characters from an unambiguous alphabet: ~95 bits."""
    import secrets
    alphabet = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(secrets.choice(alphabet) for _ in range(16))


def _people(ctx):
    return directory.people_dn(ctx.config)


def _groups(ctx):
    return directory.groups_dn(ctx.config)


def _dn(ctx, uid):
    return directory.user_dn(ctx.config, uid)


_esc = directory.escape


def _search(ctx, flt, attrs, base=None, scope="SUBTREE"):
    return ctx.ldap().entries(base or _people(ctx), flt, attrs, scope)


def _user(ctx, uid, all_attrs=False):
    found = _search(ctx, "(objectClass=posixAccount)", ["*"] if all_attrs else
                    ["cn", "givenName", "sn", "program", "uidNumber", "gidNumber", "homeDirectory", "loginShell",
                     "term", "nonMemberTerm", "position", "shadowExpire"], base=_dn(ctx, uid), scope="BASE")
    if not found:
        raise NotFound(f"no member {uid!r}")
    return found[0]


def _first(entry, attr):
    values = entry.get(attr)
    return values[0] if values else None


def _locked(entry) -> bool:
    expire = entry.get("shadowExpire")
    return bool(expire) and int(expire[0]) <= int(time.time() // 86400)


RESERVED = ("root admin administrator postmaster abuse hostmaster webmaster www mail ceo exec syscom office "
            "staff skel nobody sudo adm wheel operator")


def _refuse_system_names(ctx, uid):
    """A member may not take a name the system or the mail already uses: a personal group
    called `sudo` or `adm` would be a group the hosts grant rights to."""
    import grp
    import pwd
    reserved = set(ctx.config.getlist("members", "reserved", RESERVED))
    for known, lookup in (("user", pwd.getpwnam), ("group", grp.getgrnam)):
        try:
            lookup(uid)
        except KeyError:
            continue
        raise AlreadyExists(f"{uid} is already a {known} on {ctx.host}")
    if uid in reserved:
        raise BadInput(f"{uid} is a reserved name")


def _member_number(ctx, uid) -> int:
    """The uid number of an account ceo manages: an LDAP member in the member range."""
    entry = _search(ctx, "(&(objectClass=member)(objectClass=posixAccount))", ["uidNumber"],
                    base=_dn(ctx, uid), scope="BASE")
    low = int(ctx.config.get("members", "uid_min", "20001"))
    high = int(ctx.config.get("members", "uid_max", "29999"))
    number = int(entry[0]["uidNumber"][0]) if entry and entry[0].get("uidNumber") else None
    if number is None or not low <= number <= high:
        raise NotPermitted(f"{uid} is not a member account ceo manages")
    return number


def _home_of(ctx, uid, number: int | None = None) -> str:
    """base/uid, if it is a real directory (not a link) owned by the member."""
    path = os.path.join(ctx.config.get("homes", "base", "/users"), uid)
    number = _member_number(ctx, uid) if number is None else number
    return homes.owned_dir(path, number, uid)


def _guard_syscom_member(ctx, uid, what):
    """A syscom member's account is changed only by themself or by syscom."""
    if uid != ctx.caller and "syscom" not in ctx.groups and _in_group(ctx, uid, "syscom"):
        raise NotPermitted(f"only syscom may change the {what} of {uid}, a syscom member")


def _in_group(ctx, uid, group) -> bool:
    return bool(_search(ctx, f"(&(cn={group})(uniqueMember={_esc(_dn(ctx, uid))}))", ["cn"], base=_groups(ctx)))


def _readd(entry) -> dict:
    return {k: v for k, v in entry.items() if k != "dn"}


def _ldap_ok(ctx, ok, what, gone_ok=False):
    """Raise, naming what failed, unless the LDAP operation succeeded (or, for an undo that
    removes something, it was already gone)."""
    if not ok:
        result = ctx.ldap().result
        if gone_ok and result.get("result") == 32:
            return
        if result.get("result") == 68:
            raise AlreadyExists(f"{what}: already exists")
        if result.get("result") == 32:
            raise NotFound(f"{what}: no such entry")
        raise ServiceUnavailable(f"LDAP on {ctx.host} failed {what}: {result.get('description')}")


def _show_attrs(attrs) -> str:
    return ", ".join(f"{k}={' '.join(v) if isinstance(v, list) else v}" for k, v in attrs.items())


class _number_lock:
    """Serialises uid-number allocation on this host: concurrent adds never share a number."""

    def __init__(self, ctx):
        self.path = ctx.config.get("members", "lock_file", "/run/lock/ceo-uidnumber.lock")

    def __enter__(self):
        import fcntl
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc):
        os.close(self.fd)  # releases the lock


def _free_number(ctx) -> int:
    """The first number in the member range used by no account or group (LDAP or local)."""
    import grp
    import pwd
    low = int(ctx.config.get("members", "uid_min", "20001"))
    high = int(ctx.config.get("members", "uid_max", "29999"))
    used = set()
    base = ctx.config.get("ldap", "base")
    for e in _search(ctx, "(|(objectClass=posixAccount)(objectClass=posixGroup))", ["uidNumber", "gidNumber"],
                     base=base):
        used.update(int(v) for v in e.get("uidNumber", []) + e.get("gidNumber", []))
    for n in range(low, high + 1):
        if n in used:
            continue
        try:
            pwd.getpwuid(n)
            continue
        except KeyError:
            pass
        try:
            grp.getgrgid(n)
            continue
        except KeyError:
            return n
    raise ServiceUnavailable(f"no free uid number left in {low}-{high}")


def _read_forward(path: str) -> str | None:
    return homes.read_file(path)


def _write_forward(home: str, addresses, number: int):
    homes.write_file(home, ".forward", "".join(f"{a}\n" for a in addresses) or None, number)


def _restore(path: str, old: str | None, number: int):
    _write_forward(os.path.dirname(path), (old or "").splitlines(), number)


def _shells() -> set[str]:
    try:
        with open("/etc/shells") as f:
            return {line.strip() for line in f if line.strip().startswith("/")}
    except OSError:
        return set()
