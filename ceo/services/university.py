"""The university's directory (UW's LDAP): read anonymously, as the university offers it.

`[directory] uri, base` in ceo.ini; without that section ceo works without it. The only code
that talks to it; the connection is kept for the helper's session (one bind for a batch).
People are `uid`, `cn`, `givenName`, `sn`, and `ou` holding the program (e.g.
"MAT/Mathematics Computer Science").
"""

from __future__ import annotations

from ..errors import CeoError, ServiceUnavailable
from .directory import Guarded, escape
from .ldap3_lean import ldap3 as _ldap3

TIMEOUT = 5  # seconds: the desk waits on it while adding a member
ATTRS = ["uid", "cn", "givenName", "sn", "ou"]


def configured(config) -> bool:
    return bool(config.get("directory", "uri") and config.get("directory", "base"))


def skipped_programs(config) -> set[str]:
    """Values of `ou` that are placeholders, not programs (the old ceo skipped these two)."""
    return set(config.getlist("directory", "skip_programs", "orphaned expired"))


def _open(config, on_broken):
    ldap3 = _ldap3()
    from ldap3.core.exceptions import LDAPException
    uri = config.get("directory", "uri")
    where = f"the university directory at {uri}"
    try:
        server = ldap3.Server(uri, connect_timeout=TIMEOUT, get_info=ldap3.NONE)
        conn = ldap3.Connection(server, auto_bind=True, receive_timeout=TIMEOUT, raise_exceptions=False,
                                read_only=True)  # anonymous: no user, no password
    except LDAPException as exc:
        raise ServiceUnavailable(f"{where} is not answering: {type(exc).__name__}") from None
    return Guarded(conn, where, on_broken)


def _connection(ctx):
    if not configured(ctx.config):
        raise CeoError("no university directory is configured ([directory] uri and base in ceo.ini)")
    # A broken connection is dropped, and reopened on next use.
    return ctx.service("university", lambda: _open(ctx.config, lambda: ctx.forget("university")))


def _person(entry: dict) -> dict:
    def first(attr):
        values = entry.get(attr) or [None]
        return str(values[0]) if values[0] is not None else None
    return {"uid": first("uid"), "cn": first("cn"), "given_name": first("givenName"), "sn": first("sn"),
            "program": first("ou")}


def person(ctx, uid: str) -> dict | None:
    """What the directory holds about uid: {uid, cn, given_name, sn, program}, or None."""
    found = _connection(ctx).entries(ctx.config.get("directory", "base"), f"(uid={escape(uid)})", ATTRS)
    return _person(found[0]) if found else None


def programs(ctx) -> dict[str, str]:
    """{uid: program} for everyone the directory gives a program: one paged search."""
    entries = _connection(ctx).entries(ctx.config.get("directory", "base"), "(&(uid=*)(ou=*))", ["uid", "ou"])
    return {str(e["uid"][0]): str(e["ou"][0]) for e in entries}
