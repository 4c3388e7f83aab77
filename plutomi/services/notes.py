"""Recruiters' notes on an applicant: plain text, kept with their author.

Rules: viewers read, recruiters and up write; only a note's author edits it (a note speaks in
its author's name, so nobody else may change its words); the author, an admin or an owner may
delete it. Every write records an event naming the note, never its body: the event log feeds
webhooks and analytics, and a note is internal.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from plutomi.extensions import db
from plutomi.models import Applicant, Membership, Note, Role, User, new_public_id, utcnow
from plutomi.services.errors import Forbidden, Invalid, NotFound
from plutomi.services.events import Actor, record_applicant
from plutomi.services.fields import CONTROL_CHARACTER, has_control_characters
from plutomi.services.lookups import by_public_id
from plutomi.services.orgs import require

MAX_LENGTH = 5000
# Line breaks and tabs are part of a note's layout; every other control character is refused.
_LAYOUT = str.maketrans("", "", "\n\t")


@dataclass(frozen=True)
class NoteView:
    note: Note
    # None when the author's account is gone (the note stays, its author_id is cleared).
    author_name: str | None
    can_edit: bool
    can_delete: bool

    @property
    def edited(self) -> bool:
        return self.note.updated_at is not None


def clean_body(body: str | None, field: str = "body") -> str:
    """The note as stored: Windows line ends made plain, outer blank space dropped."""
    text = (body or "").replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        raise Invalid("Write the note first.", field)
    if len(text) > MAX_LENGTH:
        raise Invalid(f"Use at most {MAX_LENGTH:,} characters ({len(text):,} now).", field)
    if has_control_characters(text.translate(_LAYOUT)):
        raise Invalid(CONTROL_CHARACTER, field)
    return text


def _check_applicant(actor: Membership, applicant: Applicant) -> None:
    # Callers look the applicant up in the actor's org; this keeps a slip from crossing orgs.
    if applicant.org_id != actor.org_id:
        raise NotFound("No such applicant.")


def _may_edit(actor: Membership, note: Note) -> bool:
    return actor.can(Role.RECRUITER) and note.author_id == actor.user_id


def _may_delete(actor: Membership, note: Note) -> bool:
    return actor.can(Role.RECRUITER) and (note.author_id == actor.user_id or actor.can(Role.ADMIN))


def for_applicant(actor: Membership, applicant: Applicant) -> list[NoteView]:
    """The applicant's notes, newest first, with their authors' names: one query."""
    _check_applicant(actor, applicant)
    rows = db.session.execute(
        select(Note, User.name)
        .outerjoin(User, User.id == Note.author_id)
        .where(Note.org_id == actor.org_id, Note.applicant_id == applicant.id)
        .order_by(Note.created_at.desc(), Note.id.desc())
    ).all()
    return [
        NoteView(note, name, _may_edit(actor, note), _may_delete(actor, note))
        for note, name in rows
    ]


def get(actor: Membership, applicant: Applicant, note_id: str) -> Note:
    """A note of this applicant in the actor's org, or NotFound (another org's note included)."""
    _check_applicant(actor, applicant)
    scope = select(Note).where(Note.org_id == actor.org_id, Note.applicant_id == applicant.id)
    return by_public_id(scope, Note, note_id, "No such note on this applicant.")


def editable(actor: Membership, applicant: Applicant, note_id: str) -> Note:
    """The note, when the actor may edit it: Forbidden for anyone but its author."""
    require(actor, Role.RECRUITER)
    note = get(actor, applicant, note_id)
    if not _may_edit(actor, note):
        raise Forbidden("Only the author of a note can edit it.")
    return note


def add(actor: Membership, applicant: Applicant, body: str) -> Note:
    require(actor, Role.RECRUITER)
    _check_applicant(actor, applicant)
    note = Note(
        # Set here, not at flush: the event below names it.
        public_id=new_public_id(),
        org_id=applicant.org_id,
        applicant_id=applicant.id,
        author_id=actor.user_id,
        body=clean_body(body),
    )
    db.session.add(note)
    record_applicant(
        "applicant.note_added", applicant, actor=Actor.user(actor.user), note=note.public_id
    )
    db.session.commit()
    return note


def edit(actor: Membership, applicant: Applicant, note_id: str, body: str) -> Note:
    note = editable(actor, applicant, note_id)
    text = clean_body(body)
    if text == note.body:  # saving without a change is not an edit
        return note
    note.body = text
    note.updated_at = utcnow()
    record_applicant(
        "applicant.note_edited", applicant, actor=Actor.user(actor.user), note=note.public_id
    )
    db.session.commit()
    return note


def delete(actor: Membership, applicant: Applicant, note_id: str) -> None:
    require(actor, Role.RECRUITER)
    note = get(actor, applicant, note_id)
    if not _may_delete(actor, note):
        raise Forbidden("Only the note's author, an admin or an owner can delete it.")
    record_applicant(
        "applicant.note_deleted", applicant, actor=Actor.user(actor.user), note=note.public_id
    )
    db.session.delete(note)
    db.session.commit()
