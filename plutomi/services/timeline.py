"""An applicant's timeline: their events, newest first, told as sentences a recruiter reads.

Pages are keyset-paginated on (created_at, id), never OFFSET: a page costs the same however far
back it is, and an event written while someone reads cannot shift a row from one page to the
next (no duplicates, no gaps). A page is at most three queries: its events, and the names of
the users and of the API keys among their actors (each only when there are some).

Each event type has a small describing function in DESCRIBE; a type without one reads as its
own name ("opening.published" -> "Opening published"). The sentences are plain text, escaped by
the templates like everything else: payloads hold names and reasons people typed.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select

from plutomi.extensions import db
from plutomi.models import ApiKey, Applicant, Event, Org, User
from plutomi.models.base import MAX_INT
from plutomi.services.errors import Invalid

PAGE_SIZE = 25

Payload = Mapping[str, Any]


@dataclass(frozen=True)
class Entry:
    type: str
    text: str
    actor: str
    at: datetime


@dataclass(frozen=True)
class Page:
    entries: list[Entry]
    # The cursor of the next (older) page; None on the last page.
    older: str | None


# --- cursors ---------------------------------------------------------------------------------
# Opaque to clients (so nobody builds on their shape), not secret: the query is scoped to the
# applicant, so a forged cursor can only skip around that applicant's own timeline.


def _cursor(event: Event) -> str:
    raw = f"{event.created_at.isoformat()}|{event.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, event_id = raw.partition("|")
        parsed = datetime.fromisoformat(at)
        if parsed.tzinfo is None:
            raise ValueError("naive")
        number = int(event_id)
        if not 0 < number <= MAX_INT:
            raise ValueError("out of range")
        return parsed, number
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise Invalid("That link to older events is not valid.", "before") from exc


# --- sentences -------------------------------------------------------------------------------


def _text(payload: Payload, key: str) -> str:
    """A payload value as one line of text ("" when missing): payloads are JSON of any shape."""
    value = payload.get(key)
    if value is None or isinstance(value, dict | list):
        return ""
    return " ".join(str(value).split())


def _with(sentence: str, detail: str, joiner: str = ": ") -> str:
    return f"{sentence}{joiner}{detail}" if detail else sentence


def _quoted(sentence: str, detail: str) -> str:
    return f"{sentence} “{detail}”" if detail else sentence


def _humanize(code: str) -> str:
    return code.replace("_", " ").replace(".", " ").strip()


MOVE_REASONS = {
    "stage_deleted": "its stage was deleted",
    "bulk": "bulk move",
    "rule": "automatic",
}


def _created(p: Payload) -> str:
    return _with("Applied", _text(p, "stage"), ", starting in ")


def _answered(p: Payload) -> str:
    # applicant.answered carries the question's key; a label, when an event has one, reads better.
    label = _text(p, "label") or _text(p, "question_label") or _text(p, "question")
    return _quoted("Answered", label) if label else "Answered a question"


def _stage_completed(p: Payload) -> str:
    stage = _text(p, "stage")
    return f"Answered every required question of {stage}" if stage else "Completed the stage"


def _moved(p: Payload) -> str:
    source, target = _text(p, "from_stage"), _text(p, "to_stage")
    if source and target:
        sentence = f"Moved from {source} to {target}"
    else:
        sentence = _with("Moved", target, " to ")
    reason = _text(p, "reason")
    if reason == "rule" and _text(p, "why"):
        sentence += f" ({_text(p, 'why')})"  # the actor column names the rule
    elif reason:
        sentence += f" ({MOVE_REASONS.get(reason, _humanize(reason))})"
    if _text(p, "bulk"):
        sentence += " (bulk move)"
    return sentence


def _email(p: Payload) -> str:
    subject = _text(p, "subject")
    if subject:
        return _quoted("Email sent:", subject)
    return _with("Email sent", _humanize(_text(p, "template")))


SKIP_REASONS = {
    "unsubscribed": "the applicant unsubscribed from non-essential email",
    "template_error": "the template could not be filled in",
}


def _email_skipped(p: Payload) -> str:
    sentence = _quoted("Email", _text(p, "template_name")) + " not sent"
    reason = _text(p, "reason")
    return _with(sentence, SKIP_REASONS.get(reason, _humanize(reason)))


def _webhook(p: Payload) -> str:
    sentence = _with("Webhook", _text(p, "event_type"), " ") + " delivered"
    return _with(sentence, _text(p, "url"), " to ")


def _webhook_failed(p: Payload) -> str:
    sentence = _with("Webhook", _text(p, "event_type"), " ")
    sentence = _with(sentence, _text(p, "url"), " to ") + " failed"
    return _with(sentence, _text(p, "error"), ": ")


def _chain_capped(p: Payload) -> str:
    limit = _text(p, "limit") or _text(p, "cap")
    stopped = "Automatic moves stopped"
    if limit:
        return f"{stopped} after {limit} in a row, the most a chain of rules may make"
    return f"{stopped}: a chain of rules reached its limit"


def _loop_stopped(p: Payload) -> str:
    limit, hours = _text(p, "limit"), _text(p, "hours")
    stopped = "Automatic moves stopped"
    if limit and hours:
        stopped += f" after {limit} in {hours} hours"
    return f"{stopped}: the rules may be sending this applicant round in a loop"


def _rule_fired(p: Payload) -> str:
    return _with("Rule fired", _text(p, "why"), ": ")


def _action_skipped(p: Payload) -> str:
    action = {"move": "move", "email": "email"}.get(_text(p, "action"), "action")
    return _with(f"The rule's {action} was skipped", _text(p, "reason"), ": ")


DESCRIBE: dict[str, Callable[[Payload], str]] = {
    "applicant.created": _created,
    "applicant.answered": _answered,
    "applicant.stage_completed": _stage_completed,
    "applicant.moved": _moved,
    "applicant.reordered": lambda p: _with("Moved within", _text(p, "stage"), " "),
    "applicant.rejected": lambda p: _with("Rejected", _text(p, "reason")),
    "applicant.restored": lambda p: "Restored to the active applicants",
    "applicant.withdrawn": lambda p: _with("Withdrew the application", _text(p, "reason")),
    "applicant.note_added": lambda p: "Added a note",
    "applicant.note_edited": lambda p: "Edited a note",
    "applicant.note_deleted": lambda p: "Deleted a note",
    "applicant.tagged": lambda p: _quoted("Tagged", _text(p, "tag")),
    "applicant.untagged": lambda p: _quoted("Removed the tag", _text(p, "tag")),
    "applicant.external_event": lambda p: _with("Outside event received", _text(p, "event_type")),
    "email.sent": _email,
    "applicant.emailed": _email,
    "applicant.email_skipped": _email_skipped,
    "applicant.unsubscribed": lambda p: "Unsubscribed from non-essential email",
    "webhook.delivered": _webhook,
    "webhook.failed": _webhook_failed,
    "rule.chain_capped": _chain_capped,
    "rule.loop_stopped": _loop_stopped,
    "rule.fired": _rule_fired,
    "rule.action_skipped": _action_skipped,
}


def describe(type: str, payload: Payload | None) -> str:
    payload = payload or {}
    describer = DESCRIBE.get(type)
    if describer is not None:
        return describer(payload)
    if payload.get("custom"):
        # An event type a rule emits for webhooks, such as driver.approved.
        return f"Webhook event {type} emitted"
    # "applicant.stage_entered" -> "Stage entered"; "opening.published" -> "Opening published"
    text = _humanize(type.removeprefix("applicant."))
    return text[:1].upper() + text[1:] if text else "Something happened"


def actor_label(
    event: Event, user_names: Mapping[int, str], key_names: Mapping[int, str] | None = None
) -> str:
    kind, payload = event.actor_type, event.payload or {}
    if kind == "user":
        return user_names.get(event.actor_id, "A deleted user")
    if kind == "applicant":
        return "the applicant"
    if kind == "rule":
        return _with("Rule", _text(payload, "rule_name"))
    if kind == "api_key":
        name = (key_names or {}).get(event.actor_id)
        return _quoted("API key", name) if name else "API key"
    return "System"


# --- pages -----------------------------------------------------------------------------------


def events(
    org: Org, applicant: Applicant, before: str | None = None, size: int = PAGE_SIZE
) -> tuple[list[Event], str | None]:
    """One page of the applicant's event rows, newest first, older than the cursor `before`;
    and the cursor of the next (older) page, None on the last. The API pages the same way."""
    query = select(Event).where(Event.org_id == org.id, Event.applicant_id == applicant.id)
    if before:
        at, event_id = parse_cursor(before)
        query = query.where(
            or_(Event.created_at < at, and_(Event.created_at == at, Event.id < event_id))
        )
    # One row more than shown tells whether an older page exists, without counting.
    rows = list(
        db.session.scalars(query.order_by(Event.created_at.desc(), Event.id.desc()).limit(size + 1))
    )
    more = len(rows) > size
    rows = rows[:size]
    return rows, _cursor(rows[-1]) if more else None


def _names(model, rows: list[Event], kind: str) -> dict[int, str]:
    ids = {e.actor_id for e in rows if e.actor_type == kind and e.actor_id is not None}
    if not ids:
        return {}
    return dict(db.session.execute(select(model.id, model.name).where(model.id.in_(ids))).all())


def page(org: Org, applicant: Applicant, before: str | None = None, size: int = PAGE_SIZE) -> Page:
    """One page of the applicant's events, newest first, older than the cursor `before`."""
    rows, older = events(org, applicant, before, size)
    names = _names(User, rows, "user")
    key_names = _names(ApiKey, rows, "api_key")
    return Page(
        entries=[
            Entry(
                e.type, describe(e.type, e.payload), actor_label(e, names, key_names), e.created_at
            )
            for e in rows
        ],
        older=older,
    )
