"""Who may do what: every authorization rule of ceo is in this file or in a verb's declaration.

A verb declares the roles that admit a caller (`allow`), and may name two rules from here:
`permit`, who else may (a list's owners may see its members), and `guard`, what even an
admitted caller may not (office may not change a syscom member's forwarding). The helper
calls `authorize` before the verb runs; nothing in a verb's body decides who may.

Roles in `allow`:
  syscom, office  members of those LDAP groups
  self            the caller is the verb's target parameter (`target`, else its first positional)
  club-member     the caller is in the group its target names
  member          the caller has a current term
  any             anyone the session authenticated
"""

from __future__ import annotations

from collections import namedtuple

from .errors import AlreadyExists, BadInput, CeoError, NotPermitted

ROLES = ("syscom", "office", "self", "club-member", "member", "any")
STAFF = ("office", "syscom")


def authorize(ctx, verb, args: dict):
    """Raise NotPermitted unless the caller may run `verb` with `args`."""
    if not _admitted(ctx, verb, args):
        needed = " or ".join({"self": f"being {args.get(verb.target)}",
                              "club-member": f"membership in {args.get(verb.target)}",
                              "member": "a current membership"}.get(r, r) for r in verb.allow)
        raise NotPermitted(f"{verb.qualname} needs {needed}; {ctx.caller} has none of these")
    if verb.guard is not None:
        verb.guard(ctx, args)


def _admitted(ctx, verb, args) -> bool:
    allow, caller = verb.allow, ctx.caller
    if "any" in allow:
        return True
    if "self" in allow and args.get(verb.target) == caller:
        return True
    groups = ctx.groups
    if any(role in groups for role in STAFF if role in allow):
        return True
    target = args.get(verb.target)
    if "club-member" in allow and isinstance(target, str) and target in groups:
        return True
    if "member" in allow and is_current_member(ctx, caller):
        return True
    if verb.permit is not None:
        verdict = verb.permit(ctx, args)
        if verdict is True:
            return True
        if isinstance(verdict, str):
            raise NotPermitted(f"{verb.qualname}: {verdict}")
    return False


def offered(ctx, verb) -> str | None:
    """Whether the menus offer `verb` to the caller, before any argument is known (the UI's
    "what may I do"): "all" (any target), "self" (their own account), "some" (targets a rule
    decides: their club, a list they own), or None. Advice only: each request is still
    authorized, with its real arguments, by `authorize`."""
    allow, groups = verb.allow, ctx.groups
    if "any" in allow or any(role in groups for role in STAFF if role in allow):
        return "all"
    if "member" in allow and is_current_member(ctx, ctx.caller):
        return "all"
    if "self" in allow:
        return "self"
    if "club-member" in allow and any(is_club(ctx, g) for g in groups):
        return "some"
    if verb.permit is not None:
        try:  # a rule that admits the caller without looking at the arguments admits them for all
            if verb.permit(ctx, {}) is True:
                return "all"
        except (KeyError, TypeError, CeoError):
            pass
        try:
            verdict = verb.permit(ctx, {verb.target: ctx.caller} if verb.target else {})
        except (KeyError, TypeError, CeoError):  # the rule needs the other arguments to decide
            return "some"
        return "self" if verdict is True else None
    return None


def is_current_member(ctx, uid: str) -> bool:
    from . import terms
    from .services.directory import user_dn
    return bool(ctx.ldap().entries(user_dn(ctx.config, uid), f"(term={terms.current()})", ["uid"], "BASE"))


# --- accounts ------------------------------------------------------------------------------

def protected(ctx, uid: str) -> bool:
    """Protected accounts: the members of syscom, office and exec (`[policy] protected_groups`)
    and those `[policy] protected_accounts` names. Their mail and logins are theirs and
    syscom's to change: office redirecting an exec's mail could read a password reset."""
    from .services import directory
    if uid in ctx.config.getlist("policy", "protected_accounts", ""):
        return True
    return bool(protected_groups(ctx.config) & directory.groups_of(ctx.ldap(), ctx.config, uid))


def protected_groups(config) -> set[str]:
    """Groups whose members are protected accounts; only syscom changes who is in them."""
    return set(config.getlist("policy", "protected_groups", "syscom office exec"))


def protected_account_guard(ctx, args):
    """Guard: a protected account is changed only by itself or by syscom."""
    uid = args["uid"]
    if uid != ctx.caller and "syscom" not in ctx.groups and protected(ctx, uid):
        raise NotPermitted(f"only {uid} or syscom may change {uid}'s account (a protected account)")


# Names no account may take: mail roles, ceo's own groups, and the users and groups that
# Debian and common packages create (a member's personal group `docker` or `libvirt` would
# carry that group's rights on a host that has it, even one this helper cannot see).
# `[policy] reserved_names` adds the site's own.
RESERVED = (
    "root admin administrator postmaster abuse hostmaster webmaster www mail ceo exec syscom office "
    "staff skel nobody nogroup sudo adm wheel operator daemon bin sys sync games man lp news uucp proxy "
    "www-data backup list irc gnats src shadow utmp tty disk kmem dialout fax voice cdrom floppy tape "
    "audio dip video plugdev netdev users input render sgx kvm lpadmin scanner bluetooth docker lxd "
    "libvirt libvirt-qemu libvirt-dnsmasq systemd-journal systemd-network systemd-resolve systemd-timesync "
    "systemd-coredump messagebus polkitd sshd ssh-keys crontab _apt postgres mysql openldap nslcd "
    "nscd ntp chrony postfix postdrop debian-exim mailman list-admin ssl-cert kerberos")


def refuse_reserved_name(ctx, uid: str):
    """A new account may not take a name the system or the mail already uses: a personal
    group called `sudo` or `adm` would be a group the hosts grant rights to. Each helper
    checks its own host (the client asks every host of the inventory) and the lists."""
    import grp
    import pwd
    reserved = (set(RESERVED.split()) | set(ctx.config.getlist("policy", "reserved_names", ""))
                | set(ctx.config.getlist("maintenance", "accounts", "")))  # their rights come with the name
    for known, lookup in (("user", pwd.getpwnam), ("group", grp.getgrnam)):
        try:
            lookup(uid)
        except KeyError:
            continue
        raise AlreadyExists(f"{uid} is already a {known} on {ctx.host}")
    if uid in reserved:
        raise BadInput(f"{uid} is a reserved name")


def refuse_referenced_name(ctx, uid: str):
    """A new account may not take a name something still names, or it inherits that: a group
    membership, a sudo rule. Nor the name of a deleted account (its tombstone), unless
    `[members] reuse_deleted_names = yes`: ceo cannot find every reference to a deleted name
    (other members' ~/.k5login, ACLs on other systems), so by default a name is never reused.
    A reused name gets a new uid number; its old ones stay with the tombstone."""
    from .services import directory
    conn = ctx.ldap()
    dead = directory.tombstones(conn, ctx.config, uid)
    if dead and not ctx.config.getbool("members", "reuse_deleted_names"):
        numbers = ", ".join(str(n) for e in dead for n in e.get("uidNumber", []))
        homes = ", ".join(h for e in dead for h in e.get("homeDirectory", [])) or "not archived"
        raise AlreadyExists(f"{uid} is the name of a deleted account (uid number {numbers}, home {homes}); "
                            "names are not reused unless [members] reuse_deleted_names = yes")
    refs = directory.references(conn, ctx.config, uid)
    if refs:
        sudo, grants = directory.sudoers_dn(ctx.config).lower(), directory.grants_dn(ctx.config).lower()
        kind = lambda dn: "sudo rule" if dn.endswith(sudo) else "grant" if dn.endswith(grants) else "group"  # noqa: E731
        named = sorted({f"{kind(dn.lower())} {dn.split(',')[0].split('=', 1)[1]} ({attr})" for dn, attr, _ in refs})
        raise AlreadyExists(f"{uid} is still named by {', '.join(named)}; remove those references first")


# The kinds of account ceo manages: the objectClass that marks each, and the config section
# whose uid_min/uid_max give its range of uid numbers.
KINDS = {"member": ("member", "members", 20001, 29999), "club": ("club", "clubs", 30001, 39999)}


def number_range(config, kind: str) -> tuple[int, int]:
    _, section, low, high = KINDS[kind]
    return int(config.get(section, "uid_min", str(low))), int(config.get(section, "uid_max", str(high)))


def managed_number(ctx, uid: str, kind: str = "member") -> int:
    """The uid number of an account of `kind` ceo manages (an LDAP entry of that class, its
    number in that kind's range); ceo changes no other account's principal, password or
    home: never root@, postgres@, ..., and a club's home is never taken for a member's."""
    from .services.directory import user_dn
    cls = KINDS[kind][0]
    entry = ctx.ldap().entries(user_dn(ctx.config, uid), f"(&(objectClass={cls})(objectClass=posixAccount))",
                               ["uidNumber"], "BASE")
    low, high = number_range(ctx.config, kind)
    number = int(entry[0]["uidNumber"][0]) if entry and entry[0].get("uidNumber") else None
    if number is None or not low <= number <= high:
        raise NotPermitted(f"{uid} is not a {kind} account ceo manages")
    return number


def managed_member_number(ctx, uid: str) -> int:
    """managed_number for a member (the name its many callers know)."""
    return managed_number(ctx, uid, "member")


# Why an account is locked (`lockReason` beside `shadowExpire`). A renewal lifts only the
# lock for a lapsed membership; a lock syscom set for any other reason stays until syscom
# lifts it, and so does a lock with no recorded reason.
LAPSED = "lapsed"


def renewal_unlocks(entry: dict) -> bool:
    return bool(entry.get("shadowExpire")) and entry.get("lockReason", [None])[0] == LAPSED


def refuse_non_member(uid: str, entry: dict):
    """Terms belong to member entries only: a club or system account is not renewed."""
    if "member" not in {c.lower() for c in entry.get("objectClass", [])}:
        raise BadInput(f"{uid} is not a member (a club or system account): nothing to renew")


# --- clubs ---------------------------------------------------------------------------------

def is_club(ctx, name: str) -> bool:
    """`name` is a club account ceo manages (class `club`, a number in the club range), so its
    group is a club's group: its members may run commands as the club (the sudo rule)."""
    import re
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_-]{0,31}", name):
        return False  # no DN is built from anything else
    try:
        managed_number(ctx, name, "club")
    except NotPermitted:
        return False
    return True


# --- lists -----------------------------------------------------------------------------------

def own_address_on_open_list(ctx, args):
    """Permit: members may subscribe or unsubscribe their own address, on the open lists."""
    from .services import mailman
    who = args["who"]
    if not (who == ctx.caller or who.lower() == mailman.member_address(ctx, ctx.caller)):
        return None
    open_lists = ctx.config.getlist("mailman", "open_lists", "csc-general")
    if args["list"] in open_lists:
        return True
    return f"members may subscribe or unsubscribe themselves only on {', '.join(open_lists)}; " \
           f"the list {args['list']} needs office or syscom"


def group_list_guard(ctx, args):
    """Guard: a list tied to a group (`[ties]`, see below: syscom, syscom-alerts, exec)
    follows that group's membership, so only syscom changes it directly."""
    if args["list"] in group_lists(ctx.config) and "syscom" not in ctx.groups:
        raise NotPermitted(f"{args['list']} follows a group's membership: only syscom changes it directly")


def list_owner(ctx, args):
    """Permit: a list's owners may see its members."""
    from .services import mailman
    mlist = mailman.get_list(ctx, args["list"])
    owners = mailman.call(ctx, lambda: {m.email.lower() for m in mlist.owners})
    return True if mailman.member_address(ctx, ctx.caller) in owners else None


# --- databases -------------------------------------------------------------------------------

def database_account(ctx, name: str) -> dict:
    """{kind, number, home} of an account ceo may give a database (`ceo mysql`, `ceo postgresql`):
    a member or club account ceo manages (KINDS: its class, its number in that kind's range).
    Never a system account (root, postgres, a service): its database and user would carry the
    name of something else on the database host."""
    from .errors import NotFound
    from .services.directory import user_dn
    found = ctx.ldap().entries(user_dn(ctx.config, name), "(objectClass=posixAccount)",
                               ["objectClass", "uidNumber", "homeDirectory"], "BASE")
    if not found:
        raise NotFound(f"no member or club account {name!r}")
    entry = found[0]
    kinds = [k for k, (cls, *_) in KINDS.items() if cls in {c.lower() for c in entry.get("objectClass", [])}]
    number = int(entry["uidNumber"][0]) if entry.get("uidNumber") else None
    low, high = number_range(ctx.config, kinds[0]) if len(kinds) == 1 else (1, 0)
    if number is None or not low <= number <= high:
        raise NotPermitted(f"{name} is not a member or club account ceo manages")
    return {"kind": kinds[0], "number": number, "home": entry.get("homeDirectory", [None])[0]}


def club_database(ctx, args):
    """Permit: the members of a club's group manage the club account's databases. A club's only:
    the `club-member` role would also admit whoever is in a member's personal group, and no one
    but the member (and syscom) acts for a member."""
    name = args.get("name")
    return True if isinstance(name, str) and name in ctx.groups and is_club(ctx, name) else None


def database_account_guard(ctx, args):
    """Guard: a database only for an account ceo may give one (database_account)."""
    database_account(ctx, args["name"])

# --- groups ----------------------------------------------------------------------------------

# What membership in a group gives: other groups, and subscriptions to lists (tuples of names).
Tie = namedtuple("Tie", "groups lists", defaults=((), ()))


# CSC's ties. `[ties]` in ceo.ini says `GROUP.groups = ...` and `GROUP.lists = ...`, each key
# over the default of the same name (an empty value unties). Ties are not followed further: a
# syscom member gets office, not office's cdrom (as CSC's ceo did); tie cdrom to syscom for that.
DEFAULT_TIES = {"syscom.groups": "office staff adm src", "syscom.lists": "syscom syscom-alerts",
                "office.groups": "cdrom audio video www", "exec.lists": "exec"}


def ties(config) -> dict[str, Tie]:
    """{group: Tie} from `[ties]` over DEFAULT_TIES."""
    keys = dict(DEFAULT_TIES)
    if config.parser.has_section("ties"):
        keys.update((k, v) for k, v in config.parser.items("ties") if "." in k)
    out: dict[str, dict] = {}
    for key, value in keys.items():
        group, kind = key.rsplit(".", 1)
        if kind in ("groups", "lists"):
            out.setdefault(group, {})[kind] = tuple(dict.fromkeys(value.split()))
    return {g: Tie(**t) for g, t in out.items() if any(t.values())}


def group_lists(config) -> set[str]:
    """The lists that follow a group's membership: every list a tie names."""
    return {name for tie in ties(config).values() for name in tie.lists}


def lists_best_effort(config) -> bool:
    """`[ties] lists_best_effort = yes`: a membership change stands when Mailman fails, with a
    warning; by default the whole change is rolled back."""
    return config.getbool("ties", "lists_best_effort")


def group_manager_guard(ctx, args):
    """Guard on changing a group's members (and what it ties): syscom any group; a club's own
    members (admitted as club-member) only their club, and never a protected group (syscom,
    office, exec: rights on every host), nor a club whose ties would give one."""
    if "syscom" in ctx.groups:
        return
    group = args["group"]
    protected = protected_groups(ctx.config)
    if group in protected or not is_club(ctx, group):
        raise NotPermitted(f"only syscom changes the members of {group} (a club's members change only their club's)")
    given = protected & set(ties(ctx.config).get(group, Tie()).groups)
    if given:
        raise NotPermitted(f"{group} gives {', '.join(sorted(given))}: only syscom changes its members")

# --- maintenance -------------------------------------------------------------------------------
# The unattended jobs (`members expire`, `members remind`) run as syscom, as root on the LDAP
# host itself (the `local` connection), or as a maintenance account: a principal whose keytab
# the job's host holds, with a plain posixAccount in LDAP, named in `[maintenance] accounts`.

def maintenance_account(ctx, args):
    """Permit: the maintenance accounts (`[maintenance] accounts`) may run the maintenance jobs,
    and nothing else. Never a member or club account, nor a number ceo hands out: office could
    make such an account of that name (the names are also reserved) and inherit the right."""
    from .services.directory import user_dn
    if ctx.caller not in ctx.config.getlist("maintenance", "accounts", ""):
        return None
    entry = ctx.ldap().entries(user_dn(ctx.config, ctx.caller), "(objectClass=posixAccount)",
                               ["objectClass", "uidNumber"], "BASE")
    classes = {c.lower() for c in entry[0].get("objectClass", [])} if entry else set()
    number = int(entry[0]["uidNumber"][0]) if entry and entry[0].get("uidNumber") else None
    # Nor a club account: every member of a club's group can act as the club (its sudo rule).
    # Nor any number ceo hands out, whatever the entry's class says.
    managed = number is not None and any(low <= number <= high for low, high in
                                         (number_range(ctx.config, kind) for kind in KINDS))
    if not entry or classes & {cls for cls, *_ in KINDS.values()} or managed:
        return f"{ctx.caller} is named in [maintenance] accounts but is a member or club account (or none): refused"
    return True


def never_locked(ctx) -> set[str]:
    """The uids `members expire` never locks, whatever their terms: the protected accounts
    (see protected(): syscom, office and exec, and `[policy] protected_accounts`), read in one
    search of their groups rather than one per member."""
    from .services import directory
    names = sorted(protected_groups(ctx.config))
    out = set(ctx.config.getlist("policy", "protected_accounts", ""))
    if not names:
        return out
    flt = "(|" + "".join(f"(cn={directory.escape(n)})" for n in names) + ")"
    people = directory.people_dn(ctx.config).lower()
    for group in ctx.ldap().entries(directory.groups_dn(ctx.config), flt, ["uniqueMember", "memberUid"], "LEVEL"):
        out.update(group.get("memberUid", []))
        for dn in group.get("uniqueMember", []):
            rdn, _, rest = dn.partition(",")
            if rdn.lower().startswith("uid=") and rest.replace(" ", "").lower() == people.replace(" ", ""):
                out.add(rdn[4:])
    return out
