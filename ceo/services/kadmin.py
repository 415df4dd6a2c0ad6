"""The helper's kadmin connection: kadmind through python-kadmin-rs, as the admin principal
from its keytab. Failures come back as one line naming the service (no password is ever in
them: passwords go in as arguments and are never formatted into text)."""

from __future__ import annotations

from ..errors import AlreadyExists, ServiceUnavailable


def admin_principal(config) -> str:
    who = config.get("kerberos", "admin_principal")
    return who if "@" in who else f"{who}@{config.realm}"


def admin(ctx):
    """The session's kadmin handle (opened once, reused by every request)."""
    def open_admin():
        import kadmin
        return call(ctx, lambda: kadmin.KAdmin.with_keytab(
            kadmin.KAdm5Variant.MitClient, client_name=admin_principal(ctx.config),
            keytab=ctx.config.get("kerberos", "admin_keytab")))
    return ctx.service("kadmin", open_admin)


def call(ctx, fn):
    try:
        return fn()
    except Exception as exc:
        if "KAdmin" not in type(exc).__name__ and not type(exc).__module__.startswith(("kadmin", "exceptions")):
            raise
        text = str(exc).splitlines()[0].replace("KAdmin error: ", "") if str(exc) else type(exc).__name__
        ctx.forget("kadmin")  # kadmind may have restarted: reconnect on next use
        if "already exists" in text:
            raise AlreadyExists(text) from None
        raise ServiceUnavailable(f"kadmind for {ctx.config.realm} failed: {text}") from None
