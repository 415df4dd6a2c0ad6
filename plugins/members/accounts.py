"""What the members steps share: LDAP lookups of accounts, number allocation, name rules,
~/.forward through the homes service."""

from __future__ import annotations

import os
import time

from ceo import policy
from ceo.errors import BadInput, NotFound, ServiceUnavailable
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


def free_number(ctx) -> int:
    """The first number in the member range used by no account or group (LDAP or local), no
    deleted account (tombstone) and no sudo rule."""
    import grp
    import pwd
    low = int(ctx.config.get("members", "uid_min", "20001"))
    high = int(ctx.config.get("members", "uid_max", "29999"))
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
