"""Applying to an opening, and applicants' passwordless access to their own application.

An application is one transaction: the applicant in the first stage, their answers, the events,
a magic link and the confirmation email (an outbox row). The link's token is mailed; only its
hash is stored.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cache
from typing import Any, NamedTuple

from flask import current_app
from sqlalchemy import Select, bindparam, func, insert, null, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased, make_transient_to_detached
from werkzeug.datastructures import FileStorage

from plutomi import ranks
from plutomi.extensions import commit_keeping_loaded, db
from plutomi.models import (
    Answer,
    Applicant,
    ApplicantStatus,
    Event,
    MagicLink,
    Opening,
    OpeningState,
    Org,
    OutboxMessage,
    Question,
    QuestionType,
    Rule,
    Stage,
    utcnow,
)
from plutomi.models.base import is_public_id
from plutomi.services import answers, inserts, mail, moves, openings, rules
from plutomi.services.errors import Invalid, InvalidFields, NotFound
from plutomi.services.events import Actor, applicant_row, record_applicant
from plutomi.services.fields import clean_name, has_control_characters, normalize_email
from plutomi.services.lookups import inline
from plutomi.services.tokens import hash_token, new_token

_APPLICANTS = Applicant.__table__
_INSERT_APPLICANT = insert(_APPLICANTS).returning(_APPLICANTS.c.id)
_EVENTS = Event.__table__
_ANSWERS = Answer.__table__
_LINKS = MagicLink.__table__
_OUTBOX = OutboxMessage.__table__

NOT_TAKING = "This opening is not taking applications."
ALREADY_APPLIED = "You already applied; we emailed you a link to continue."
# A public form that sends email must not become a way to flood someone's inbox.
LINKS_PER_HOUR = 5
SEARCH_MAX = 100
BOARD_LIMIT = 200


class LinkExpired(Invalid):
    """A real link past its time; carries the opening, so the page can offer a new link."""

    def __init__(self, message: str, opening: Opening):
        super().__init__(message, "token")
        self.opening = opening


# --- the public job board ----------------------------------------------------------------


def org_by_slug(slug: str) -> Org | None:
    if has_control_characters(slug):
        return None
    return db.session.scalar(select(Org).where(Org.slug == slug.lower()))


class Applying(NamedTuple):
    """What applying to an opening reads first, in one statement (_applying())."""

    opening: Opening  # with its stages, their enabled rules kept (applying runs the first's)
    questions: list[Question]  # the first stage's live questions, in order
    rank: str  # a new applicant's place: after the last card of the first stage's column
    # The id a new applicant will have, taken from its sequence by the same statement
    # (PostgreSQL, when the caller is about to apply): apply() then writes the applicant's row
    # with the rest of the application, in one statement. None: the row goes in first.
    applicant_id: int | None = None


def _applying(query: Select) -> Select:
    """query, of (the last rank of the stage in each row's column, a reserved applicant id or
    NULL, ..., Opening), joined
    with the opening's stages, their enabled rules and the first stage's live questions
    (rules.joined_stages()): the first row is of the first stage."""
    first = aliased(Stage, name="first_stage")
    first_id = (
        select(first.id)
        .where(first.opening_id == Opening.id)
        .order_by(first.position, first.id)
        .limit(inline(1))
        .scalar_subquery()
    )
    return rules.joined_stages(query, Stage.id == first_id)


# The rank at the bottom of the active column of the stage of each row (only the first
# row's is used: one index step per row).
_LAST_RANK = moves.column_end(Stage.id, last=True).scalar_subquery()
# An uncorrelated subquery: PostgreSQL runs it once for the statement, not once a row.
_NEXT_ID = select(func.nextval(func.pg_get_serial_sequence("applicants", "id"))).scalar_subquery()


def _reserving(applying: bool) -> bool:
    """Whether the first read takes the new applicant's id: only on PostgreSQL (SQLite has no
    sequence: its applicant's row goes in first, to learn its id), and only for a submission,
    not for every view of the form."""
    return applying and db.engine.dialect.name == "postgresql"


# Built once each, as every application and opening page runs one: the org and the opening
# with all an application reads first, in one query.
@cache
def _org_and_opening(reserve: bool) -> Select:
    return _applying(
        select(_LAST_RANK, _NEXT_ID if reserve else null(), Org, Opening, Stage, Rule, Question)
        .join(Opening, Opening.org_id == Org.id)
        .where(Org.slug == bindparam("org_slug"), Opening.slug == bindparam("opening_slug"))
    )


# The same for the API: the org's opening by public id.
@cache
def _opening_of_org(reserve: bool) -> Select:
    return _applying(
        select(_LAST_RANK, _NEXT_ID if reserve else null(), Opening, Stage, Rule, Question).where(
            Opening.org_id == bindparam("org_id"), Opening.public_id == bindparam("public_id")
        )
    )


def _found(rows: list) -> Applying:
    opening, questions = rules.with_kept_stages(rows)
    return Applying(opening, questions, ranks.after(rows[0][0]), rows[0][1])


def org_and_opening(
    org_slug: str, opening_slug: str, *, applying: bool = False
) -> tuple[Org, Applying] | None:
    """An opening's page: its org and the opening by their slugs, with what applying reads.
    applying: a submission follows (Applying.applicant_id is reserved for it)."""
    if has_control_characters(org_slug) or has_control_characters(opening_slug):
        return None
    rows = db.session.execute(
        _org_and_opening(_reserving(applying)),
        {"org_slug": org_slug.lower(), "opening_slug": opening_slug},
    ).all()
    return (rows[0][2], _found(rows)) if rows else None


def opening_of_org(org_id: int, public_id: str, message: str) -> Applying:
    """The org's opening of that public id with what applying reads (an applicant's id
    reserved: the API reads it to create one); NotFound(message) when there is none (a
    malformed id never reaches the database)."""
    rows = []
    if is_public_id(public_id):
        rows = db.session.execute(
            _opening_of_org(_reserving(True)), {"org_id": org_id, "public_id": public_id}
        ).all()
    if not rows:
        raise NotFound(message)
    return _found(rows)


def is_taking_applications(opening: Opening) -> bool:
    return opening.state == OpeningState.PUBLISHED and opening.archived_at is None


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def published_openings(org: Org, search: str = "") -> list[Opening]:
    """The org's job board: published, not archived, newest first; a live query every time."""
    query = select(Opening).where(
        Opening.org_id == org.id,
        Opening.state == OpeningState.PUBLISHED,
        Opening.archived_at.is_(None),
    )
    search = " ".join(search.split())[:SEARCH_MAX]
    if search and not has_control_characters(search):
        query = query.where(func.lower(Opening.name).like(_like(search.lower()), escape="\\"))
    return list(
        db.session.scalars(
            query.order_by(Opening.created_at.desc(), Opening.id.desc()).limit(BOARD_LIMIT)
        )
    )


def schema(opening: Opening) -> dict[str, Any]:
    """The public, read-only shape of an opening's application: stages and their questions
    (all questions in one query, not one per stage)."""
    questions = openings.questions_by_stage(opening)
    return {
        "opening": {
            "id": opening.public_id,
            "name": opening.name,
            "slug": opening.slug,
            "description": opening.description,
        },
        "stages": [
            {
                "id": stage.public_id,
                "name": stage.name,
                "position": stage.position,
                "questions": [
                    {
                        "id": question.public_id,
                        "key": question.key,
                        "type": question.type,
                        "label": question.label,
                        "help_text": question.help_text,
                        "required": question.required,
                        "options": list(question.options or []),
                        "min": question.min_value,
                        "max": question.max_value,
                    }
                    for question in questions.get(stage.id, [])
                ],
            }
            for stage in opening.stages
        ],
    }


# --- applying ------------------------------------------------------------------------------


def _find(opening: Opening, email: str) -> Applicant | None:
    return db.session.scalar(
        select(Applicant).where(Applicant.opening_id == opening.id, Applicant.email == email)
    )


def _link(applicant: Applicant) -> tuple[str, dict[str, Any]]:
    """A fresh magic link for the applicant: its token, and its row (which keeps the hash)."""
    token, token_hash = new_token()
    ttl: timedelta = current_app.config["APPLICANT_LINK_TTL"]
    row = {"applicant_id": applicant.id, "token_hash": token_hash, "expires_at": utcnow() + ttl}
    return token, row


def _url(token: str) -> str:
    # Built from BASE_URL, not url_for(_external=True): workers that send email have no
    # request to build on.
    return f"{current_app.config['BASE_URL']}/portal/{token}"


def portal_url(applicant: Applicant) -> str:
    """A fresh magic link for the applicant, as the absolute URL an email carries (each one is
    a live credential), its row added to the session."""
    token, row = _link(applicant)
    db.session.add(MagicLink(**row))
    return _url(token)


def _mail_link(applicant: Applicant, template: str, *batches: inserts.Batch) -> None:
    """Mail the applicant a fresh link with the email `template`: the link's row and the
    email's outbox row, written with `batches` (a new application's rows) in one go."""
    token, link = _link(applicant)
    opening = applicant.opening
    email = mail.rendered_row(
        applicant.email,
        template,
        org_id=applicant.org_id,
        applicant=applicant,
        opening=opening,
        org=db.session.get(Org, opening.org_id),
        portal_url=_url(token),
        ttl_days=current_app.config["APPLICANT_LINK_TTL"].days,
    )
    inserts.rows([*batches, (_LINKS, [link]), (_OUTBOX, [email])])


def _recently_mailed(applicant: Applicant) -> bool:
    count = db.session.scalar(
        select(func.count())
        .select_from(MagicLink)
        .where(
            MagicLink.applicant_id == applicant.id,
            MagicLink.created_at > utcnow() - timedelta(hours=1),
        )
    )
    return count >= LINKS_PER_HOUR


def _resend(applicant: Applicant) -> None:
    """A fresh link for someone who applied already; quietly skipped past the hourly limit."""
    if not _recently_mailed(applicant):
        _mail_link(applicant, "application_link")
    db.session.commit()


def _applied_already(existing: Applicant, resend_link: bool) -> tuple[Applicant, bool]:
    if resend_link:
        _resend(existing)
    return existing, False


def _applicant_row(values: dict[str, Any]) -> dict[str, Any]:
    """A new applicant's row: every column given, defaults and NULLs too, so that none of the
    object made from it is left expired, to be loaded."""
    row = dict.fromkeys(c.key for c in _APPLICANTS.columns if not c.primary_key)
    return row | inserts.completed(_APPLICANTS, [values])[0]


def _as_loaded(row: dict[str, Any]) -> Applicant:
    """The applicant of a row written without the unit of work (the flush of one object costs
    more CPU than its row), given to the session as if it had been loaded."""
    applicant = Applicant(**row)
    make_transient_to_detached(applicant)
    db.session.add(applicant)
    return applicant


def _insert_applicant(**values: Any) -> Applicant:
    """A new applicant, inserted on the table at once, to learn its id."""
    row = _applicant_row(values)
    db.session.flush()  # what is pending goes in first, as with the ORM's own flush
    row["id"] = db.session.scalar(_INSERT_APPLICANT, row)
    return _as_loaded(row)


def _existing(
    opening: Opening, email: str, error: IntegrityError, refused: Applicant | None = None
) -> Applicant:
    """After an insert the unique index refused: the applicant this email is already (it applied
    to the opening before, or a submission racing this one did); else the error stands.
    refused: the new applicant, if it was given to the session as loaded: it leaves with the
    rollback."""
    if refused is not None:
        db.session.expunge(refused)
    db.session.rollback()
    existing = _find(opening, email)
    if existing is None:
        raise error
    return existing


def _raw(raw_answers: dict[str, Any], question) -> Any:
    """An answer by the question's form field (q_<public id>) or, for API callers, its key."""
    field = answers.field_name(question)
    if field in raw_answers:
        return raw_answers[field]
    return raw_answers.get(question.key)


def apply(
    opening: Opening,
    name: str,
    email: str,
    raw_answers: dict[str, str | list | FileStorage],
    questions: list[Question] | None = None,
    *,
    actor: Actor | None = None,
    source: str = "application_form",
    resend_link: bool = True,
    known_errors: dict[str, str] | None = None,
    commit: bool = True,
    rank: str | None = None,
    applicant_id: int | None = None,
    files_later: bool = False,
) -> tuple[Applicant, bool]:
    """A new applicant in the first stage, with every answer of that stage checked.

    Returns (applicant, True); or (the earlier applicant, False) when this email applied to
    this opening already: then a fresh link is mailed (unless resend_link is False: nothing is
    written then, nor committed) and nothing else changes. Every bad field is reported at once
    with InvalidFields, and nothing is written. questions: the first stage's questions, when the
    caller has loaded them already. actor and source: who made the application and through
    what (an API key, "api"); by default the applicant, through the hosted form. known_errors:
    problems the caller found already (an API body's unknown keys), reported with these.
    commit: False leaves a new applicant's transaction open for the caller to commit (the API
    commits its stored answer with it). rank: the new applicant's, when the caller read the
    first column's last rank (Applying.rank). applicant_id: the new applicant's, when the
    caller reserved one (Applying.applicant_id): its row then goes in with the answers,
    events, link and email, in one statement. files_later: the file questions are left for
    the applicant's portal (an API client sends no files); a required one leaves the first
    stage incomplete until they upload it."""
    if not is_taking_applications(opening) or not opening.stages:
        raise Invalid(NOT_TAKING)
    errors: dict[str, str] = dict(known_errors or {})
    try:
        name = clean_name(name or "", "name", max_length=200)
    except Invalid as exc:
        errors["name"] = exc.message
    try:
        email = normalize_email(email or "")
    except Invalid as exc:
        errors["email"] = exc.message

    stage = opening.stages[0]
    answered = []
    complete = True
    for question in questions if questions is not None else openings.stage_questions(stage):
        if files_later and question.type_enum is QuestionType.FILE:
            complete = complete and not question.required
            continue
        try:
            answered.append((question, answers.clean(question, _raw(raw_answers, question))))
        except Invalid as exc:
            errors[exc.field or answers.field_name(question)] = exc.message
    if errors:
        # Someone who applied already hears that, whatever they typed this time.
        if "email" not in errors and (existing := _find(opening, email)) is not None:
            return _applied_already(existing, resend_link)
        raise InvalidFields(errors)

    now = utcnow()
    values = {
        "org_id": opening.org_id,
        "opening_id": opening.id,
        "stage_id": stage.id,
        "name": name,
        "email": email,
        "rank": rank or ranks.after(moves.last_rank(stage.id)),
        "entered_stage_at": now,
        # Every required question of the first stage was checked above: it is complete,
        # unless a required file is left for the portal.
        "stage_completed_at": now if complete else None,
    }
    # With an id reserved, the applicant's row goes in with the rest, in one statement; files
    # need it written first, as an upload's row refers to it.
    pending = applicant_id is not None and not any(
        question.type == QuestionType.FILE for question, _ in answered
    )
    if applicant_id is not None:
        values["id"] = applicant_id  # reserved, it is the id whichever way the row goes in
    if pending:
        row = _applicant_row(values)
        applicant = _as_loaded(row)
    else:
        try:
            applicant = _insert_applicant(**values)
        except IntegrityError as exc:
            # The unique index says whether this email applied to the opening already: that
            # spares every new application a look for it first.
            return _applied_already(_existing(opening, email, exc), resend_link)

    # The rest goes in as rows, in one statement on PostgreSQL: nothing reads them back here,
    # except the rules, from the database, once they are written.
    who = actor or Actor.applicant(applicant)
    events = [
        applicant_row("applicant.created", applicant, actor=who, stage=stage.name, source=source)
    ]
    written = []
    # Files last, as their answers have always come (clean() checked them already: storing
    # one refuses nothing).
    answered.sort(key=lambda pair: pair[0].type == QuestionType.FILE)
    for question, value in answered:
        value = answers.stored(applicant, question, value)
        if value is not None:
            written.append(answers.row(applicant, question, value))
            events.append(
                applicant_row("applicant.answered", applicant, actor=who, question=question.key)
            )
    if complete:
        events.append(
            applicant_row("applicant.stage_completed", applicant, actor=who, stage=stage.name)
        )
    batches = [(_APPLICANTS, [row])] if pending else []
    try:
        _mail_link(
            applicant, "application_received", *batches, (_EVENTS, events), (_ANSWERS, written)
        )
    except IntegrityError as exc:
        if not pending:
            raise
        return _applied_already(_existing(opening, email, exc, applicant), resend_link)
    rules.created(applicant, stage, answered=bool(answered), completed=complete)
    # What the session holds is what was written (a rule's move sets what it wrote), so the
    # caller reads the new applicant without loading it again.
    if commit:
        commit_keeping_loaded()
    return applicant, True


def request_link(opening: Opening, email: str) -> None:
    """Mail a fresh link when this email applied to the opening; the caller answers the same
    either way, so the form does not tell who applied."""
    email = normalize_email(email or "")
    applicant = _find(opening, email)
    if applicant is not None:
        _resend(applicant)


def request_links(email: str) -> None:
    """Mail a fresh link for each application of this email (the portal's signed-out page)."""
    email = normalize_email(email or "")
    for applicant in db.session.scalars(
        select(Applicant).where(Applicant.email == email).order_by(Applicant.id.desc()).limit(20)
    ):
        if not _recently_mailed(applicant):
            _mail_link(applicant, "application_link")
    db.session.commit()


def find_link(token: str) -> MagicLink:
    """The magic link of this token, unused as yet, or a clear message why it cannot be used."""
    link = None
    if token and len(token) <= 200 and not has_control_characters(token):
        link = db.session.scalar(select(MagicLink).where(MagicLink.token_hash == hash_token(token)))
    if link is None:
        raise Invalid(
            "This link is not valid. Check that you copied the whole link from the email, or "
            "ask for a new one.",
            "token",
        )
    if link.expires_at <= utcnow():
        raise LinkExpired(
            "This link has expired. Ask for a new one and we will email it to you.",
            link.applicant.opening,
        )
    return link


def open_link(token: str) -> Applicant:
    """The applicant a magic link opens (find_link), the link marked as used."""
    link = find_link(token)
    link.last_used_at = utcnow()
    applicant = link.applicant
    db.session.commit()
    return applicant


def withdraw(applicant: Applicant, reason: str | None = None) -> Applicant:
    """The applicant takes their application back; the recruiters see why, when they said."""
    if applicant.status != ApplicantStatus.ACTIVE:
        raise Invalid(f"This application is {applicant.status} already.", "withdraw")
    payload: dict[str, Any] = {}
    reason = (reason or "").strip()
    if reason:
        if has_control_characters(reason.replace("\n", "").replace("\r", "")):
            raise Invalid("This contains an invisible control character.", "reason")
        if len(reason) > 1000:
            raise Invalid("Use at most 1000 characters.", "reason")
        payload["reason"] = reason
    applicant.status = ApplicantStatus.WITHDRAWN
    applicant.version += 1
    record_applicant("applicant.withdrawn", applicant, actor=Actor.applicant(applicant), **payload)
    db.session.commit()
    return applicant
