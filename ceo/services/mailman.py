"""Mailman 3, through its REST API (mailmanclient): lists, memberships, and its failures as
one line that names the host and the service."""

from __future__ import annotations

import re

from ..errors import NotFound, ServiceUnavailable

REST_TIMEOUT = 10  # seconds: a Mailman that hangs is reported, not waited on


def member_address(ctx, uid: str) -> str:
    """The address a member's uid stands for on the lists."""
    return f"{uid}@{ctx.config.get('mailman', 'member_domain') or ctx.config.get('ceo', 'domain')}"


def url(ctx) -> str:
    return ctx.config.get("mailman", "url", "http://localhost:8001/3.1")


def client(ctx):
    """The session's REST client (opened once, reused by every request)."""
    def open_client():
        from mailmanclient import Client
        return Client(url(ctx), ctx.config.get("mailman", "user", ""), ctx.config.get("mailman", "password", ""),
                      request_hooks=[lambda params: {**params, "timeout": REST_TIMEOUT}])
    return ctx.service("mailman", open_client)


def version(ctx) -> str:
    """Mailman's version, as its REST API reports it with ceo's credentials (a doctor check)."""
    return call(ctx, lambda: client(ctx).system).get("mailman_version", "Mailman ?")


def _sent(cause) -> bool:
    """Whether the request had reached Mailman when it failed (requests' exception, which
    mailmanclient's wraps): then it may have been done. Not if the connection was never made."""
    from requests.exceptions import ConnectionError, ConnectTimeout, ReadTimeout
    from urllib3.exceptions import NewConnectionError
    if isinstance(cause, ReadTimeout):
        return True
    if isinstance(cause, ConnectTimeout):
        return False
    if isinstance(cause, ConnectionError):  # refused, unreachable, unresolved; or reset, aborted
        inner = cause.args[0] if cause.args else None
        return not isinstance(getattr(inner, "reason", inner), NewConnectionError)
    return True  # not known: as if sent, so that its undo is tried


def call(ctx, fn, missing: Exception | None = None):
    """Mailman's failures, as one line that names the host and the service; `missing` is
    raised instead when Mailman answers 404 (no such list, no such member)."""
    from urllib.error import HTTPError
    from mailmanclient import MailmanConnectionError
    try:
        return fn()
    except MailmanConnectionError as exc:
        # Its text nests the reprs of the errors under it: say only the system's reason.
        found = re.search(r"\[Errno -?\d+\] [^'\"\\)]+", str(exc))
        reason = found.group(0).strip() if found else "no answer"
        err = ServiceUnavailable(f"Mailman's REST API on {ctx.host} is not answering ({url(ctx)}): {reason}")
        err.maybe_done = _sent(exc.__context__)
        raise err from None
    except HTTPError as exc:
        if exc.code == 404 and missing is not None:
            raise missing from None
        if exc.code in (401, 403):
            raise ServiceUnavailable(f"Mailman's REST API on {ctx.host} refused ceo's credentials") from None
        raise ServiceUnavailable(f"Mailman's REST API on {ctx.host} answered {exc.code} {exc.reason}") from None


def get_list(ctx, name: str):
    fqdn = f"{name}@{ctx.config.get('mailman', 'list_domain') or ctx.config.get('ceo', 'domain')}"
    return call(ctx, lambda: client(ctx).get_list(fqdn), missing=NotFound(f"no list {name!r} (see `ceo lists list`)"))


class _NotMember(Exception):
    pass


def is_member(ctx, mlist, address: str) -> bool:
    try:
        call(ctx, lambda: mlist.get_member(address), missing=_NotMember())
        return True
    except (ValueError, _NotMember):  # mailmanclient says ValueError when its search finds none
        return False


def subscribe(ctx, mlist, address: str, name: str | None, welcome=True):
    """Pre-verified, pre-confirmed and pre-approved: ceo has checked who may, so no
    confirmation mail round trip."""
    call(ctx, lambda: mlist.subscribe(address, name, pre_verified=True, pre_confirmed=True,
                                      pre_approved=True, send_welcome_message=welcome))


def unsubscribe(ctx, mlist, address: str):
    call(ctx, lambda: mlist.unsubscribe(address, pre_confirmed=True, pre_approved=True))


# Roles that are privileges on a list: whoever gets the address next would hold them.
PRIVILEGED = ("owner", "moderator")


# The addresses Mailman 3 answers for each list besides the list's own (LIST-owner@, ...).
LIST_SUFFIXES = ("bounces", "confirm", "join", "leave", "owner", "request", "subscribe", "unsubscribe")


def list_address_named(ctx, name: str) -> str | None:
    """The list whose posting or service address `name@domain` would be (None if no list's)."""
    lists = call(ctx, lambda: [m.list_name for m in client(ctx).lists])
    for mlist in lists:
        if name == mlist or (name.startswith(mlist + "-") and name[len(mlist) + 1:] in LIST_SUFFIXES):
            return mlist
    return None


def roles_of(ctx, address: str) -> list[tuple[object, str]]:
    """(list, role) for every list on which `address` is an owner or a moderator."""
    from urllib.error import HTTPError
    c = client(ctx)

    def find(role):
        try:
            return c.find_lists(address, role=role, count=1000)
        except HTTPError as exc:
            if exc.code == 404:  # Mailman's answer for an address on no list in that role
                return []
            raise
    return [(mlist, role) for role in PRIVILEGED for mlist in call(ctx, lambda r=role: find(r))]


def add_role(ctx, mlist, role: str, address: str):
    call(ctx, lambda: mlist.add_role(role, address))


def remove_role(ctx, mlist, role: str, address: str):
    call(ctx, lambda: mlist.remove_role(role, address))
