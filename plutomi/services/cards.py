"""A card of the stage board: the applicant's row as a card shows it, and its dressing (the
duplicate flag, the answers picked for cards and the tags), read for a page of cards in one
query, or for one moved card within the statement that moves it."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Integer,
    String,
    Text,
    bindparam,
    cast,
    exists,
    func,
    literal,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import aliased

from plutomi.extensions import db
from plutomi.models import Answer, Applicant, ApplicantTag, Opening, Question, QuestionType
from plutomi.services.display import duration, format_value
from plutomi.services.lookups import among_param


@dataclass(frozen=True)
class Card:
    id: int
    public_id: str
    name: str
    email: str
    status: str
    stage_id: int
    rank: str
    version: int
    entered_stage_at: datetime
    duplicate: bool = False
    answers: tuple[tuple[str, str], ...] = ()
    tags: tuple[str, ...] = ()

    @property
    def time_in_stage(self) -> str:
        return duration(self.entered_stage_at)


CARD_COLUMNS = (
    Applicant.id,
    Applicant.public_id,
    Applicant.name,
    Applicant.email,
    Applicant.status,
    Applicant.stage_id,
    Applicant.rank,
    Applicant.version,
    Applicant.entered_stage_at,
)


def cards_of(rows) -> list[Card]:
    return [Card(*row) for row in rows]


# Typed NULLs for the parts of dress()'s query that leave a column empty: PostgreSQL types each
# column of a UNION from its parts.
_NO_ID = cast(null(), Integer)
_NO_STRING = cast(null(), String)
_NO_TEXT = cast(null(), Text)
_ANSWER_TEXT = cast(Answer.value, Text)


@cache
def _dressing(dialect: str, with_answers: bool) -> CompoundSelect:
    """dress()'s query, built once per dialect and shape: building it for every page of cards
    (its parts, their cache key) cost as much as running it."""
    lower = func.lower(Applicant.name)
    parts = [
        select(
            literal("email").label("kind"),
            _NO_ID.label("applicant_id"),
            _NO_ID.label("question_id"),
            Applicant.email.label("text"),
            _NO_TEXT.label("value"),
        )
        .where(
            Applicant.org_id == bindparam("org_id"),
            among_param(Applicant.email, "emails", dialect),
            Applicant.opening_id != bindparam("opening_id"),
        )
        .distinct(),
        select(literal("name"), _NO_ID, _NO_ID, lower, _NO_TEXT)
        .where(
            Applicant.opening_id == bindparam("opening_id"),
            among_param(lower, "names", dialect, String()),
        )
        .group_by(lower)
        .having(func.count() > 1),
        select(literal("tag"), ApplicantTag.applicant_id, _NO_ID, ApplicantTag.tag, _NO_TEXT).where(
            ApplicantTag.org_id == bindparam("org_id"),
            among_param(ApplicantTag.applicant_id, "ids", dialect),
        ),
    ]
    if with_answers:
        parts.append(
            select(
                literal("answer"),
                Answer.applicant_id,
                Answer.question_id,
                _NO_STRING,
                _ANSWER_TEXT,
            ).where(
                among_param(Answer.applicant_id, "ids", dialect),
                among_param(Answer.question_id, "questions", dialect),
            )
        )
    return union_all(*parts).order_by("kind", "applicant_id", "text")


def _shown(type_: str, value: str | None) -> str:
    """An answer as a card shows it, from its value as JSON text."""
    if type_ == QuestionType.FILE:
        return "File uploaded"
    return format_value(type_, None if value is None else json.loads(value))


# Between the items of dressing()'s lists: tags refuse control characters, and JSON text
# escapes them, so it never occurs inside an item.
_SEP = "\x1f"


def dressing(moved: Any, dialect: str) -> list[ColumnElement]:
    """What dress() reads for one card, as three columns for a statement that reads the
    applicant `moved` (an entity or alias): whether it may be a duplicate, its tags in the
    database's order, and its answers to the questions of the parameter `card_questions` as
    "question id:JSON" items, each list in one string. A move reads them with the applicant
    (moves.move(dress=...)), which saves it dress()'s round trip; dressed() reads them."""
    other = aliased(Applicant, name="other")
    duplicate = or_(
        exists().where(
            other.org_id == moved.org_id,
            other.email == moved.email,
            other.opening_id != moved.opening_id,
        ),
        exists().where(
            other.opening_id == moved.opening_id,
            func.lower(other.name) == func.lower(moved.name),
            other.id != moved.id,
        ),
    )
    tags = func.aggregate_strings(ApplicantTag.tag, _SEP)
    if dialect == "postgresql":
        # SQLite (3.40 here) cannot order inside group_concat; dressed() sorts its tags, as its
        # BINARY collation would.
        tags = tags.aggregate_order_by(ApplicantTag.tag)
    answer = cast(Answer.question_id, String) + ":" + func.coalesce(_ANSWER_TEXT, "null")
    return [
        duplicate.label("card_duplicate"),
        select(tags)
        .where(ApplicantTag.org_id == moved.org_id, ApplicantTag.applicant_id == moved.id)
        .scalar_subquery()
        .label("card_tags"),
        select(func.aggregate_strings(answer, _SEP))
        .where(
            Answer.applicant_id == moved.id,
            among_param(Answer.question_id, "card_questions", dialect),
        )
        .scalar_subquery()
        .label("card_answers"),
    ]


Picks = dict[int, tuple[int, str, str]]
Picked = list[tuple[int, str, str]]


def _picks(card_questions: list[Question]) -> Picks:
    """Per question picked for cards, read once: its place on the card, label and type."""
    return {q.id: (i, q.label, q.type) for i, q in enumerate(card_questions)}


def _pick(picked: Picked, picks: Picks, question_id: int, value: str | None) -> None:
    place, label, type_ = picks[question_id]
    picked.append((place, label, _shown(type_, value)))


def _with(card: Card, duplicate: bool, picked: Picked, tags: list[str]) -> Card:
    return replace(
        card,
        duplicate=duplicate,
        answers=tuple((label, shown) for _, label, shown in sorted(picked)),
        tags=tuple(tags),
    )


def dressed(card: Card, row: Any, card_questions: list[Question]) -> Card:
    """The card dressed from the dressing() columns of `row`, as dress() would dress it."""
    picks = _picks(card_questions)
    picked: Picked = []
    for item in row.card_answers.split(_SEP) if row.card_answers else ():
        question_id, _, value = item.partition(":")
        _pick(picked, picks, int(question_id), value)
    tags = row.card_tags.split(_SEP) if row.card_tags else []
    if db.engine.dialect.name != "postgresql":
        tags.sort()
    return _with(card, bool(row.card_duplicate), picked, tags)


def dress(opening: Opening, cards: list[Card], card_questions: list[Question]) -> list[Card]:
    """Add the duplicate flag, the picked answers and the tags to a page of cards, read in one
    round trip: a UNION ALL of indexed parts, each row (kind, applicant, question, text, value).

    - "email": an email of the page that applied to another opening of the org, and "name":
      a name (any case) twice in this opening. Either makes the card a possible duplicate.
    - "answer": an answer to a question picked for cards, its value as JSON text.
    - "tag": a tag of a card, in the database's order (as the applicant page lists them)."""
    if not cards:
        return cards
    ids = [card.id for card in cards]
    picks = _picks(card_questions)
    rows = db.session.execute(
        _dressing(db.engine.dialect.name, bool(picks)),
        {
            "org_id": opening.org_id,
            "opening_id": opening.id,
            "emails": list({card.email for card in cards}),
            "names": list({card.name.lower() for card in cards}),
            "ids": ids,
            "questions": list(picks),
        },
    )
    emails: set[str] = set()
    names: set[str] = set()
    tags: dict[int, list[str]] = {}
    picked: dict[int, Picked] = {}
    for kind, applicant_id, question_id, text, value in rows:
        if kind == "tag":
            tags.setdefault(applicant_id, []).append(text)
        elif kind == "answer":
            _pick(picked.setdefault(applicant_id, []), picks, question_id, value)
        elif kind == "email":
            emails.add(text)
        else:
            names.add(text)
    return [
        _with(
            card,
            card.email in emails or card.name.lower() in names,
            picked.get(card.id, []),
            tags.get(card.id, []),
        )
        for card in cards
    ]
