"""Sending email outbox rows over SMTP, or capturing them for the dev mailbox."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from urllib.parse import unquote, urlsplit

from flask import current_app

from plutomi.models import OutboxMessage
from plutomi.services.outbox import sender


def build(message: OutboxMessage) -> EmailMessage:
    payload = message.payload
    mail = EmailMessage()
    mail["From"] = current_app.config["MAIL_FROM"]
    mail["To"] = payload["to"]
    mail["Subject"] = payload["subject"]
    mail["Date"] = formatdate(localtime=False)
    host = urlsplit(current_app.config["BASE_URL"]).hostname or "plutomi.localhost"
    # Stable across retries, so a receiving server can drop a duplicate.
    mail["Message-ID"] = f"<{message.public_id}@{host}>"
    mail.set_content(payload["text"])
    return mail


def _smtp(url: str) -> smtplib.SMTP:
    """smtp://user:pass@host:port (add ?starttls=1 to upgrade), or smtps:// for implicit TLS."""
    parts = urlsplit(url)
    timeout = 15
    if parts.scheme == "smtps":
        client: smtplib.SMTP = smtplib.SMTP_SSL(
            parts.hostname, parts.port or 465, timeout=timeout, context=ssl.create_default_context()
        )
    elif parts.scheme == "smtp":
        client = smtplib.SMTP(parts.hostname, parts.port or 25, timeout=timeout)
    else:
        raise ValueError(f"SMTP_URL must start with smtp:// or smtps://, not {parts.scheme}://")
    try:
        if parts.scheme == "smtp" and "starttls=1" in parts.query:
            client.starttls(context=ssl.create_default_context())
        if parts.username:
            client.login(unquote(parts.username), unquote(parts.password or ""))
    except BaseException:
        client.close()  # a refused login or TLS upgrade must not leak the socket on each retry
        raise
    return client


@sender("email")
def send(message: OutboxMessage) -> str:
    url = current_app.config.get("SMTP_URL")
    if not url:
        # No relay configured: the row itself is the captured mail, read on the dev mailbox.
        return "mailbox"
    mail = build(message)
    with _smtp(url) as client:
        client.send_message(mail)
    return "smtp"
