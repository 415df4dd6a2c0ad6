"""What the members steps share: LDAP lookups of accounts, number allocation, name rules,
~/.forward through the homes service."""

from __future__ import annotations

import os
import time

from ceo import policy
from ceo.errors import AlreadyExists, BadInput, NotFound, ServiceUnavailable
from ceo.services import directory, homes


def terms_choice(count, explicit):
    if count and explicit:
        raise BadInput("give --terms N or --term T..., not both")
    if explicit and len(set(explicit)) != len(explicit):
        raise BadInput(f"a term is repeated in {' '.join(explicit)}")


def new_password() -> str:
    """16 characters from an unambiguous alphabet: ~95 bits."""
    import secrets
    alphabet = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(secrets.choice(alphabet) for _ in range(16))


def people(ctx):
    return directory.people_dn(ctx.config)


def groups(ctx):
    return directory.groups_dn(ctx.config)


def dn(ctx, uid):
    return directory.user_dn(ctx.config, uid)


esc = directory.escape


def search(ctx, flt, attrs, base=None, scope="SUBTREE"):
    return ctx.ldap().entries(base or people(ctx), flt, attrs, scope)


def user(ctx, uid, all_attrs=False):
    found = search(ctx, "(objectClass=posixAccount)", ["*"] if all_attrs else
                    ["cn", "givenName", "sn", "program", "uidNumber", "gidNumber", "homeDirectory", "loginShell",
                     "term", "nonMemberTerm", "position", "shadowExpire", "lockReason", "objectClass"],
                    base=dn(ctx, uid), scope="BASE")
    if not found:
        raise NotFound(f"no member {uid!r}")
    return found[0]


def first(entry, attr):
    values = entry.get(attr)
    return values[0] if values else None


def locked(entry) -> bool:
    expire = entry.get("shadowExpire")
    return bool(expire) and int(expire[0]) <= int(time.time() // 86400)


def home_of(ctx, uid, number: int | None = None) -> str:
    """base/uid, if it is a real directory (not a link) owned by the member."""
    path = os.path.join(ctx.config.get("homes", "base", "/users"), uid)
    number = policy.managed_member_number(ctx, uid) if number is None else number
    return homes.owned_dir(path, number, uid)


def readd(entry) -> dict:
    return {k: v for k, v in entry.items() if k != "dn"}


def show_attrs(attrs) -> str:
    return ", ".join(f"{k}={' '.join(v) if isinstance(v, list) else v}" for k, v in attrs.items())


class number_lock:
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


def free_number(ctx, kind: str = "member") -> int:
    """The first number in the range of `kind` (policy.KINDS) used by no account or group (LDAP
    or local), no deleted account (tombstone) and no sudo rule."""
    import grp
    import pwd
    low, high = policy.number_range(ctx.config, kind)
    used = set()
    base = ctx.config.get("ldap", "base")
    for e in search(ctx, "(|(objectClass=posixAccount)(objectClass=posixGroup))", ["uidNumber", "gidNumber"],
                     base=base):
        used.update(int(v) for v in e.get("uidNumber", []) + e.get("gidNumber", []))
    used |= directory.held_numbers(ctx.ldap(), ctx.config)  # deleted accounts', sudo rules' `#number`
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


def refuse_taken_name(ctx, uid: str):
    """A new account's name (member or club) is no account or group in LDAP, no system or
    reserved name on this host, and nothing still names it (policy)."""
    if search(ctx, f"(uid={esc(uid)})", ["uid"]) or search(ctx, f"(cn={esc(uid)})", ["cn"], base=groups(ctx)):
        raise AlreadyExists(f"{uid} already exists")
    policy.refuse_reserved_name(ctx, uid)
    policy.refuse_referenced_name(ctx, uid)


def add_account(ctx, uid: str, kind: str, classes, attrs: dict, group_attrs: dict, user_says, group_says) -> int:
    """The LDAP user of `kind` and its group (classes `group` + `posixGroup`, the same number),
    each a step undone by this helper; the number is allocated under the lock. In check mode,
    says so and returns None. user_says(number), group_says: what the steps report."""
    user_dn, group_dn = dn(ctx, uid), f"cn={uid},{groups(ctx)}"
    if ctx.check:
        ctx.step("ldap-user", None, would=f"add {user_dn}: " + show_attrs(attrs)
                 + ", uidNumber=gidNumber=(first free number)")
        ctx.step("ldap-group", None, would=f"add {group_dn} ({group_says})")
        return None
    conn = ctx.ldap()
    with number_lock(ctx):
        number = free_number(ctx, kind)
        attrs = {**attrs, "uidNumber": number, "gidNumber": number}
        ctx.step("ldap-user", lambda: directory.add(conn, user_dn, f"adding {user_dn}", classes, attrs),
                 lambda: directory.delete(conn, user_dn, f"removing {user_dn}", gone_ok=True),
                 describe=user_says(number))
    ctx.step("ldap-group", lambda: directory.add(conn, group_dn, f"adding {group_dn}", ["top", "group", "posixGroup"],
                                                 {"cn": uid, "gidNumber": number, **group_attrs}),
             lambda: directory.delete(conn, group_dn, f"removing {group_dn}", gone_ok=True),
             describe=f"added {group_says}")
    return number


def read_forward(path: str) -> str | None:
    return homes.read_file(path)


def write_forward(home: str, addresses, number: int):
    homes.write_file(home, ".forward", "".join(f"{a}\n" for a in addresses) or None, number)


def restore(path: str, old: str | None, number: int):
    write_forward(os.path.dirname(path), (old or "").splitlines(), number)


def shells() -> set[str]:
    try:
        with open("/etc/shells") as f:
            return {line.strip() for line in f if line.strip().startswith("/")}
    except OSError:
        return set()
