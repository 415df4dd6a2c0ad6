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

from .errors import AlreadyExists, BadInput, NotPermitted

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
    if "member" in allow and _is_member(ctx, caller):
        return True
    if verb.permit is not None:
        verdict = verb.permit(ctx, args)
        if verdict is True:
            return True
        if isinstance(verdict, str):
            raise NotPermitted(f"{verb.qualname}: {verdict}")
    return False


def _is_member(ctx, uid: str) -> bool:
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
    groups = set(ctx.config.getlist("policy", "protected_groups", "syscom office exec"))
    return bool(groups & directory.groups_of(ctx.ldap(), ctx.config, uid))


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
    reserved = set(RESERVED.split()) | set(ctx.config.getlist("policy", "reserved_names", ""))
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
        sudo = directory.sudoers_dn(ctx.config).lower()
        named = sorted({f"{'sudo rule' if dn.lower().endswith(sudo) else 'group'} {dn.split(',')[0].split('=', 1)[1]} "
                        f"({attr})" for dn, attr, _ in refs})
        raise AlreadyExists(f"{uid} is still named by {', '.join(named)}; remove those references first")


def managed_member_number(ctx, uid: str) -> int:
    """The uid number of an account ceo manages (an LDAP member in the member range); ceo
    changes no other account's principal, password or home: never root@, postgres@, ..."""
    from .services.directory import user_dn
    entry = ctx.ldap().entries(user_dn(ctx.config, uid), "(&(objectClass=member)(objectClass=posixAccount))",
                               ["uidNumber"], "BASE")
    low = int(ctx.config.get("members", "uid_min", "20001"))
    high = int(ctx.config.get("members", "uid_max", "29999"))
    number = int(entry[0]["uidNumber"][0]) if entry and entry[0].get("uidNumber") else None
    if number is None or not low <= number <= high:
        raise NotPermitted(f"{uid} is not a member account ceo manages")
    return number


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
           f"{args['list']} needs office or syscom"


def group_list_guard(ctx, args):
    """Guard: a list tied to a group (`[policy] group_lists`: syscom, syscom-alerts, exec)
    follows that group's membership, so only syscom changes it directly."""
    tied = ctx.config.getlist("policy", "group_lists", "syscom syscom-alerts exec")
    if args["list"] in tied and "syscom" not in ctx.groups:
        raise NotPermitted(f"{args['list']} follows a group's membership: only syscom changes it directly")


def list_owner(ctx, args):
    """Permit: a list's owners may see its members."""
    from .services import mailman
    mlist = mailman.get_list(ctx, args["list"])
    owners = mailman.call(ctx, lambda: {m.email.lower() for m in mlist.owners})
    return True if mailman.member_address(ctx, ctx.caller) in owners else None


# --- maintenance -------------------------------------------------------------------------------
# The unattended jobs (`members expire`, `members remind`) run as syscom, as root on the LDAP
# host itself (the `local` connection), or as a maintenance account: a principal whose keytab
# the job's host holds, with a plain posixAccount in LDAP, named in `[maintenance] accounts`.

def maintenance_account(ctx, args):
    """Permit: the maintenance accounts (`[maintenance] accounts`) may run the maintenance jobs,
    and nothing else. Never a member account: every account ceo creates is one, so office
    cannot make an account of that name and inherit the right."""
    from .services.directory import user_dn
    if ctx.caller not in ctx.config.getlist("maintenance", "accounts", ""):
        return None
    entry = ctx.ldap().entries(user_dn(ctx.config, ctx.caller), "(objectClass=posixAccount)", ["objectClass"], "BASE")
    if not entry or "member" in {c.lower() for c in entry[0].get("objectClass", [])}:
        return f"{ctx.caller} is named in [maintenance] accounts but is a member account (or none): refused"
    return True


def never_locked(ctx) -> set[str]:
    """The uids `members expire` never locks, whatever their terms: the protected accounts
    (see protected(): syscom, office and exec, and `[policy] protected_accounts`), read in one
    search of their groups rather than one per member."""
    from .services import directory
    names = ctx.config.getlist("policy", "protected_groups", "syscom office exec")
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
