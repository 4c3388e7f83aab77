"""Sending email outbox rows over SMTP, or capturing them for the dev mailbox.

One SMTP session carries a whole delivery batch: it opens with the batch's first email and the
outbox closes it when the batch ends (the sender's close hook), so a batch of 100 pays for one
connection, greeting, TLS handshake and login instead of 100. A relay that drops a reused
session (idle timeout, a per-session limit) gets one fresh session for that email.
"""

from __future__ import annotations

import contextlib
import smtplib
import ssl
import threading
from email.charset import QP, Charset
from email.header import Header
from email.message import Message
from email.policy import compat32
from email.utils import formataddr, formatdate, parseaddr
from functools import lru_cache
from urllib.parse import parse_qs, unquote, urlsplit

from flask import current_app
from sqlalchemy import bindparam, insert, select, update

from plutomi import config, secret_links
from plutomi.extensions import db
from plutomi.models import Applicant, Event, OutboxMessage, utcnow
from plutomi.services.events import Actor
from plutomi.services.fields import ascii_email
from plutomi.services.lookups import among
from plutomi.services.outbox import sender


@lru_cache(maxsize=8)
def _host(base_url: str) -> str:
    return urlsplit(base_url).hostname or "plutomi.localhost"


def message_id(message: OutboxMessage) -> str:
    # Stable across retries, so a receiving server can drop a duplicate.
    return f"<{message.public_id}@{_host(current_app.config['BASE_URL'])}>"


# The legacy (compat32) message API: it builds and serialises a message about three times
# faster than email.policy.default, whose header parsing was a quarter of an email's cost in
# the outbox worker. Non-ASCII is encoded explicitly: RFC 2047 for the subject and a display
# name, quoted-printable UTF-8 for the body.
_UTF8 = Charset("utf-8")
_UTF8.body_encoding = QP
# Header lines up to RFC 5322's 998 characters stay whole: folding a long unsubscribe link
# onto a second line is legal, but not every mail client unfolds it into a working link.
POLICY = compat32.clone(max_line_length=998)


def _text_header(value: str) -> str | Header:
    return value if value.isascii() else Header(value, "utf-8")


@lru_cache(maxsize=8)  # keyed by MAIL_FROM: parsed once, not for every email
def _address(value: str) -> str:
    name, address = parseaddr(value)
    return formataddr((name, address), charset="utf-8") if address else value


def build(message: OutboxMessage) -> Message:
    payload = message.payload
    mail = Message(policy=POLICY)
    mail["From"] = _address(current_app.config["MAIL_FROM"])
    mail["To"] = ascii_email(payload["to"])
    mail["Subject"] = _text_header(payload["subject"])
    mail["Date"] = formatdate(localtime=False)
    mail["Message-ID"] = message_id(message)
    if unsubscribe := payload.get("unsubscribe"):
        # RFC 2369 and RFC 8058: mail clients offer an unsubscribe button that POSTs
        # "List-Unsubscribe=One-Click" to the link, with no page in between.
        mail["List-Unsubscribe"] = f"<{unsubscribe}>"
        mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    mail["MIME-Version"] = "1.0"
    text = payload["text"]
    mail.set_payload(text, "us-ascii" if text.isascii() else _UTF8)
    return mail


def _starttls(query: str) -> bool:
    """?starttls=1 (or true, yes, on): anything else that names it is refused, as sending in
    plain text by a typo would be silent."""
    values = parse_qs(query, keep_blank_values=True).get("starttls")
    if not values:
        return False
    value = values[-1].strip().lower()
    if value in config.YES:
        return True
    if value in config.NO:
        return False
    raise ValueError(f"SMTP_URL's starttls must be 1 or 0, not {values[-1]!r}")


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
        if parts.scheme == "smtp" and _starttls(parts.query):
            client.starttls(context=ssl.create_default_context())
        if parts.username:
            client.login(unquote(parts.username), unquote(parts.password or ""))
    except BaseException:
        client.close()  # a refused login or TLS upgrade must not leak the socket on each retry
        raise
    return client


class _Session(threading.local):
    """This thread's open SMTP session and the SMTP_URL it was opened for: module state, per
    thread, so two threads delivering at once never interleave commands on one socket."""

    client: smtplib.SMTP | None = None
    url: str | None = None


_session = _Session()
# The message was refused, not the session: smtplib reset it (RSET) and it stays usable.
_REFUSED = (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError)
_DISCONNECTED = (smtplib.SMTPServerDisconnected, ConnectionError)


def close(polite: bool = True) -> None:
    """End this thread's session: politely (QUIT) when the outbox calls it after each batch;
    with polite=False, forget it without a QUIT (it is broken, or its state is unknown)."""
    client, _session.client, _session.url = _session.client, None, None
    if client is None:
        return
    if not polite:
        with contextlib.suppress(OSError):
            client.close()
        return
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()


def _open(url: str) -> smtplib.SMTP:
    if _session.client is not None:
        close(polite=False)  # opened for another SMTP_URL (another app in this process)
    client = _smtp(url)
    _session.client, _session.url = client, url
    return client


def _send_smtp(url: str, mail: Message) -> None:
    reused = _session.client is not None and _session.url == url
    client = _session.client if reused else _open(url)
    try:
        client.send_message(mail)
    except _REFUSED:
        raise
    except _DISCONNECTED:
        close(polite=False)
        if not reused:
            raise
        # The relay ended a session we kept open (idle timeout, messages per session): one
        # fresh session for this email. A failure there is the email's, retried by the outbox.
        try:
            _open(url).send_message(mail)
        except BaseException:
            close(polite=False)
            raise
    except BaseException:
        close(polite=False)
        raise


def without_secrets(payload: dict) -> dict | None:
    """The payload with its links' secrets taken out, or None when it holds none."""
    changed = dict(payload)
    for field in ("text", "unsubscribe"):
        if isinstance(payload.get(field), str):
            changed[field] = secret_links.hidden(payload[field], "(removed once sent)")
    return changed if changed != payload else None


_FORGET = (
    update(OutboxMessage.__table__)
    .where(OutboxMessage.__table__.c.id == bindparam("row_id"))
    .values(payload=bindparam("kept"))
)


def _forget_secrets(messages: list[OutboxMessage]) -> None:
    """Sent emails keep no live link: a copy of the database (a backup, a replica) must not
    open an applicant's application or reset a password. The dev mailbox, whose rows are the
    only copy of its mail, keeps them."""
    if not current_app.config.get("SMTP_URL"):
        return
    kept = [
        {"row_id": m.id, "kept": payload}
        for m in messages
        if (payload := without_secrets(m.payload)) is not None
    ]
    if kept:
        db.session.execute(_FORGET, kept)


def _record_sent(messages: list[OutboxMessage]) -> None:
    """Each sent email's applicant.emailed on its applicant's timeline, in the outbox's
    transaction (not committed here): the outbox commits the events with the rows marked done,
    and rolls them back if the claim was lost. Their links' secrets go (_forget_secrets)."""
    _forget_secrets(messages)
    wanted = {m.payload["applicant_id"] for m in messages if m.payload.get("applicant_id")}
    if not wanted:
        return
    # The applicants' org and opening, and a KEY SHARE lock that keeps them from being deleted
    # until the commit: an event naming a deleted applicant would fail the commit, and the
    # rows would be sent again and again. A deleted applicant's email gets no event.
    places = {
        id_: (org_id, opening_id)
        for id_, org_id, opening_id in db.session.execute(
            select(Applicant.id, Applicant.org_id, Applicant.opening_id)
            .where(among(Applicant.id, wanted))
            .with_for_update(key_share=True)
        )
    }
    now = utcnow()
    events = []
    for message in messages:
        payload = message.payload
        place = places.get(payload.get("applicant_id"))
        if place is None:
            continue
        details = {"why": payload["why"]} if payload.get("why") else {}
        events.append(
            {
                "org_id": place[0],
                "opening_id": place[1],
                "applicant_id": payload["applicant_id"],
                "type": "applicant.emailed",
                "actor_type": Actor.system().type,
                "actor_id": None,
                "payload": {
                    "subject": payload["subject"],
                    "to": payload["to"],
                    "template": payload.get("template"),
                    "message_id": message_id(message),
                    **details,
                },
                "created_at": now,
            }
        )
    if events:
        db.session.execute(insert(Event.__table__), events)


@sender("email", close=close, record=_record_sent)
def send(message: OutboxMessage) -> str:
    url = current_app.config.get("SMTP_URL")
    if not url:
        # No relay configured: the row itself is the captured mail, read on the dev mailbox.
        return "mailbox"
    _send_smtp(url, build(message))
    return "smtp"
