"""The members verbs users type; each is a list of steps on the hosts of their roles."""

from __future__ import annotations

from ceo import policy, terms as T
from ceo.errors import NOT_PERMITTED, BadInput, CeoError, NotFound
from ceo.output import count, facts, safe
from ceo.plugin import Flag, Str, Term, Uid

from plugins.lists import refuse_list_addresses

from . import accounts as acct
from . import plugin
from . import university as uw
from .params import NEW_ACCOUNT, Address, Clubrep, Count, Terms


@plugin.composite("add", "Add a member (or --clubrep): LDAP, Kerberos, home, forwarding, welcome, lists",
                  example=('ceo members add alice --cn "Alice Liddell" --program "MAT/CS" --terms 2',
                           'ceo members add bob --clubrep --cn "Bob Builder" --check'),
                  allow=policy.STAFF, check=True, render=lambda c, r: _render_added(c, r),
                  leftover="ceo members delete {uid} --yes", params=[
                      *NEW_ACCOUNT, Address, Flag("no_welcome", "do not send the welcome email"),
                      Flag("no_subscribe", "do not subscribe to csc-general")])
def add(run, uid, cn, given_name, sn, program, terms, term, clubrep, forwarding_address, no_welcome,
        no_subscribe):
    acct.terms_choice(terms, term)
    run.prepare(["ldap", "kerberos", "homes"])
    cn, given_name, sn, program = uw.fill(run, uid, cn, given_name, sn, program)
    run.everywhere("members.name_free", {"uid": uid})  # a system name on any host is no member's
    # Before anything is written: the address the account would get may still be a list's owner
    # or moderator (a deleted account's); the new person would inherit that. Mailman down: a
    # warning, as for the subscription (the create step checks the directory itself).
    refuse_list_addresses(run, uid)
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


# A result's password (add, pwreset): given, it is shown once here; None, nothing was made
# (check mode); left out, the office UI shows it itself (spelled out), and the rest is shown.
def _render_added(console, result):
    if result.get("uidNumber") is None:  # check mode: the steps said what would be made
        return
    rows = [("User number", result["uidNumber"]),
            ("Club rep terms" if result.get("kind") == "clubrep" else "Terms", result.get("terms") or []),
            ("Principal", result.get("principal"))]
    if result.get("password"):
        rows.append(("Temporary password", result["password"]))
    facts(console, f"{result['uid']}: a new {'club rep' if result.get('kind') == 'clubrep' else 'member'}", rows)
    if result.get("password"):
        console.print("The password is shown once; they must change it at first login.")


@plugin.composite("get", "Show a member: name, program, numbers, terms, positions, groups, lock, forwarding",
                  example="ceo members get alice", roles=("ldap", "homes"),
                  params=[Uid("uid", "the member", positional=True)], render=lambda c, r: _render_member(c, r))
def get(run, uid):
    info = run.call("members.info", {"uid": uid}, role="ldap")
    try:
        info["forwarding"] = run.call("members.forwarding", {"uid": uid}, role="homes")["addresses"]
    except CeoError as err:
        if err.exit_code != NOT_PERMITTED:  # forwarding is for the member, office and syscom only
            info["forwarding"] = f"(unavailable: {err.message})"
    return info


def _render_member(console, r):
    forwarding = r.get("forwarding")
    rows = [("Name", r.get("name"))]
    rows += [(label, r.get(key)) for label, key in (("Given name", "given_name"), ("Surname", "sn")) if r.get(key)]
    rows += [("Program", r.get("program")), ("User number", r.get("uidNumber")), ("Group number", r.get("gidNumber")),
             ("Home", r.get("home")), ("Shell", r.get("shell")), ("Terms", r.get("terms") or []),
             ("Club rep terms", r.get("club_rep_terms") or []), ("Positions", r.get("positions") or []),
             ("Groups", r.get("groups") or []), ("Locked", "yes" if r.get("locked") else "no")]
    if forwarding is not None:  # not shown to a caller who may not read it
        rows.append(("Mail forwarding", forwarding if isinstance(forwarding, str) else ", ".join(forwarding)))
    facts(console, r["uid"], rows)


@plugin.verb("list", "List members: --term T, --expired, --clubreps",
             example=("ceo members list",
                      "ceo members list --expired --json",
                      "ceo members list --term w2027 --clubreps"),
             role="ldap", params=[
    Term("term", "members registered in this term (default: the current one)"),
    Flag("expired", "members whose terms have all passed"),
    Flag("clubreps", "club reps instead of members")], render=lambda c, r: _render_list(c, r))
def list_(ctx, term, expired, clubreps):
    attr = "nonMemberTerm" if clubreps else "term"
    now = T.current()
    if expired:
        flt = f"(&(objectClass=member)(!(term={now}))(!(nonMemberTerm={now}))({attr}=*))"
    else:
        flt = f"(&(objectClass=member)({attr}={acct.esc(term or now)}))"
    entries = acct.search(ctx, flt, ["uid", "cn", "program", "term", "nonMemberTerm", "shadowExpire"])
    if expired:  # not current, and not registered ahead either: every term is in the past
        entries = [e for e in entries
                   if all(T.ordinal(t) < T.ordinal(now) for t in e.get("term", []) + e.get("nonMemberTerm", []))]
    rows = [{"uid": e["uid"][0], "name": acct.first(e, "cn"), "program": acct.first(e, "program"),
             "terms": T.sort(e.get("term", [])), "nonMemberTerms": T.sort(e.get("nonMemberTerm", [])),
             "locked": acct.locked(e)} for e in entries]
    return sorted(rows, key=lambda r: r["uid"])


def _render_list(console, rows):
    from rich.table import Table
    table = Table(show_edge=False, header_style="bold")
    for column in ("uid", "name", "program", "last terms", "locked"):
        table.add_column(column)
    for r in rows:
        last = (r["terms"] or r["nonMemberTerms"])[-3:]
        table.add_row(r["uid"], safe(r["name"] or ""), safe(r["program"] or ""), " ".join(last), "yes" if r["locked"] else "")
    console.print(table)
    console.print(count(len(rows), "account"))


@plugin.composite("modify", "Change a member's login shell or mail forwarding",
                  example=("ceo members modify alice --login-shell /bin/zsh",
                           "ceo members modify alice --forwarding-address alice@example.org",
                           "ceo members modify alice --no-forwarding"),
                  check=True,
                  allow=("self", "office", "syscom"), params=[
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
                  "--csv FILE renews many",
                  example=("ceo members renew alice              # the next unregistered term",
                           "ceo members renew alice --term w2027 s2027",
                           "ceo members renew --csv renewals.csv --receipt done.csv"),
                  check=True, allow=policy.STAFF, render=lambda c, r: _render_renewals(c, r), params=[
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
        from . import csvrenew
        return csvrenew.renew(run, csv, clubrep=clubrep, skip_invalid=skip_invalid, receipt=receipt)
    if skip_invalid or receipt:
        raise BadInput("--skip-invalid and --receipt go with --csv")
    if not uid:
        raise BadInput("give a UID, or --csv FILE")
    acct.terms_choice(terms, term)
    return run.call("members.renew_terms", {"uid": uid, "terms": terms, "term": term, "clubrep": clubrep},
                    role="ldap")


def _render_renewals(console, result):
    if "rows" in result:
        from . import csvrenew
        csvrenew.render(console, result)


@plugin.composite("pwreset", "Give a member a new temporary password (syscom)",
                  example="ceo members pwreset alice", roles=("ldap", "kerberos"),
                  check=True, allow=("syscom",),
                  params=[Uid("uid", "the member", positional=True)], render=lambda c, r: _render_password(c, r))
def pwreset(run, uid):
    run.call("members.info", {"uid": uid}, role="ldap")  # exists?
    return run.call("members.password", {"uid": uid}, role="kerberos")


def _render_password(console, result):
    if "password" in result and not result["password"]:  # check mode: nothing was changed
        return
    rows = [("Principal", result.get("principal"))]
    if result.get("password"):
        rows.append(("Temporary password", result["password"]))
    facts(console, f"{result.get('principal', '').split('@')[0]}: a new temporary password", rows)
    console.print(f"{'The password is shown once; it' if result.get('password') else 'It'} must be changed "
                  "at next login.")


@plugin.composite("delete", "Delete a member: lists, home, LDAP entries and groups, principal (syscom)",
                  example=("ceo members delete alice --check",
                           "ceo members delete alice --yes"),
                  check=True, allow=("syscom",), confirm="Delete {uid}'s account, home directory and subscriptions?",
                  params=[Uid("uid", "the member", positional=True)])
def delete(run, uid):
    run.prepare(["ldap", "kerberos", "homes"])
    try:
        run.call("members.info", {"uid": uid}, role="ldap")
    except NotFound:
        # Deleted by a run that a failure cut short (its tombstone is first): finish it.
        if not run.call("members.deleted", {"uid": uid}, role="ldap")["deleted"]:
            raise
        return {"uid": uid, "home": None, "finished": finish_delete(run, uid)}
    return {"uid": uid, "home": delete_account(run, uid, "member")}


def finish_delete(run, uid) -> bool:
    """The steps of a member's delete after its LDAP entries: what a run cut short left."""
    done = _past_ldap(run, uid, "member")
    if not run.check and not any((d or {}).get("changed") for d in done) and not run.output.warnings:
        raise NotFound(f"no member {uid!r}: deleted earlier, and nothing of it is left")
    return True


def delete_account(run, uid, kind) -> str | None:
    """The steps that delete a member's or a club's account (`groups delete`), in order: its
    home, its LDAP entries with every reference (a tombstone stays), a member's principal;
    then, best effort, its lists and the home moved aside. Returns where the home went."""
    home = run.step("members.remove_home", {"uid": uid, "kind": kind}, role="homes",
                    describe=f"home directory of {uid}")
    run.step("members.remove_ldap", {"uid": uid, "archived": (home or {}).get("archived"), "kind": kind},
             role="ldap", describe=f"LDAP entries of {uid}")
    _past_ldap(run, uid, kind)
    if home and home.get("remove_after"):
        run.step("members.purge_home", {"path": home["moved_to"]}, role="homes", describe="removing the old home",
                 best_effort=True)
    return (home or {}).get("archived")


def _past_ldap(run, uid, kind) -> list:
    """A delete's steps after the LDAP entries (a member's principal, then its lists); their results."""
    done = []
    if kind == "member":
        done.append(run.step("members.remove_principal", {"uid": uid}, role="kerberos", describe=f"principal {uid}"))
    # Last, and by address (the account is gone): a failed delete keeps its subscriptions and roles.
    done.append(run.step("lists.unsubscribe_all", {"who": f"{uid}@{run.config.get('ceo', 'domain')}"}, role="mail",
                         describe="list subscriptions and roles", best_effort=True))
    return done


