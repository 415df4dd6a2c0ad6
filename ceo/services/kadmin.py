"""The helper's kadmin connection: kadmind through python-kadmin-rs, as the admin principal
from its keytab. Failures come back as one line naming the service (no password is ever in
them: passwords go in as arguments and are never formatted into text)."""

from __future__ import annotations

from ..errors import AlreadyExists, NotFound, ServiceUnavailable

REQUIRES_PWCHANGE = 0x0200  # KRB5_KDB_REQUIRES_PWCHANGE: the temporary password must be changed


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


def exists(ctx, name: str) -> bool:
    return call(ctx, lambda: admin(ctx).principal_exists(name))


def add_with_temporary_password(ctx, name: str, password: str):
    """A new principal whose password must be changed at its first login."""
    from kadmin import NewPrincipalKey
    call(ctx, lambda: admin(ctx).add_principal(name, key=NewPrincipalKey.Password(password),
                                              attributes=REQUIRES_PWCHANGE))


def set_password(ctx, name: str, password: str):
    """A new password (a change clears the must-change flag: `require_change` sets it again)."""
    if call(ctx, lambda: admin(ctx).get_principal(name)) is None:
        raise NotFound(f"no principal {name}")
    call(ctx, lambda: admin(ctx).principal_change_password(name, password))


def require_change(ctx, name: str):
    princ = call(ctx, lambda: admin(ctx).get_principal(name))
    call(ctx, lambda: princ.modify(admin(ctx), attributes=princ.attributes | REQUIRES_PWCHANGE))


def delete(ctx, name: str):
    call(ctx, lambda: admin(ctx).delete_principal(name))
