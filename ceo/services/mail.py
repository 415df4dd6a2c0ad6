"""Sending email from a helper (welcome messages, announcements) through the configured SMTP."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from email.utils import formataddr

from ..errors import ServiceUnavailable


def address(config, uid: str) -> str:
    return f"{uid}@{config.get('ceo', 'domain')}"


def send(ctx, *, to: tuple[str, str], subject: str, body: str, sender: tuple[str, str], **headers):
    """One plain-text message. `to` and `sender` are (display name, address)."""
    msg = EmailMessage()
    msg["From"] = formataddr(sender)
    msg["To"] = formataddr(to)
    msg["Subject"] = subject
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    host, port = ctx.config.get("smtp", "host", "localhost"), int(ctx.config.get("smtp", "port", "25"))
    try:
        with smtplib.SMTP(host, port, timeout=10) as smtp:
            smtp.send_message(msg)
    except (OSError, smtplib.SMTPException) as exc:
        raise ServiceUnavailable(f"SMTP at {host}:{port} did not take the message: {exc}") from None
