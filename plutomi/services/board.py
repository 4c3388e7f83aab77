"""The stage board as recruiters read it: columns, cards, filters, pages and live changes.

Nothing here loads a whole stage. A column is its count (from the board index) and its first
page of cards; the next page is read by keyset on (rank, id), so the ten-thousandth card costs
what the first does. Every read is a fixed number of queries, whatever the number of stages
or cards: the cards of every column come in one UNION of per-stage LIMIT queries, and their
answers, tags and duplicate flags in one query each.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Text,
    and_,
    bindparam,
    cast,
    exists,
    func,
    or_,
    select,
    union_all,
)

from plutomi.extensions import db
from plutomi.models import (
    Answer,
    Applicant,
    ApplicantStatus,
    ApplicantTag,
    Event,
    Opening,
    Question,
    QuestionType,
    Rule,
    Stage,
    StageCount,
    utcnow,
)
from plutomi.models.base import MAX_INT, is_public_id
from plutomi.services import rules
from plutomi.services.cards import CARD_COLUMNS, Card, cards_of, dress, dressed
from plutomi.services.errors import Invalid, NotFound
from plutomi.services.fields import has_control_characters
from plutomi.services.lookups import inline
from plutomi.services.openings import CARD_ANSWERS, stages_of

PAGE = 50
# Live polling: more changes than this since the last poll and the board is simply redrawn.
LIVE_LIMIT = 200
# Events committed out of id order (a longer transaction took an earlier id) are caught by
# looking this far back on every poll; re-sending a card that did not change is harmless.
LIVE_LOOKBACK = timedelta(seconds=15)
FILTERABLE = (QuestionType.SINGLE_CHOICE, QuestionType.MULTI_CHOICE, QuestionType.YES_NO)
# "In stage" choices: (value, label, more-than days or None, less-than days or None).
TIME_CHOICES = [
    ("", "Any time", None, None),
    ("lt1", "Less than a day", None, 1),
    ("lt7", "Less than 7 days", None, 7),
    ("gt1", "More than a day", 1, None),
    ("gt3", "More than 3 days", 3, None),
    ("gt7", "More than 7 days", 7, None),
    ("gt14", "More than 14 days", 14, None),
    ("gt30", "More than 30 days", 30, None),
]
STATUS_CHOICES = [
    (ApplicantStatus.ACTIVE.value, "Active"),
    (ApplicantStatus.REJECTED.value, "Rejected"),
    (ApplicantStatus.WITHDRAWN.value, "Withdrawn"),
]


# --- filters -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnswerFilter:
    question: Question
    option: str

    @property
    def value(self) -> Any:
        if self.question.type == QuestionType.YES_NO:
            return self.option == "Yes"
        return self.option

    @property
    def arg(self) -> str:
        return f"{self.question.public_id}:{self.option}"


@dataclass(frozen=True)
class BoardFilter:
    """What the recruiter narrowed the board to; it lives in the URL, so a link reopens it."""

    q: str = ""
    time: str = ""
    tag: str = ""
    status: str = ApplicantStatus.ACTIVE.value
    answers: tuple[AnswerFilter, ...] = ()

    @property
    def is_set(self) -> bool:
        return self != BoardFilter()

    def args(self) -> list[tuple[str, str]]:
        """The filter as URL query arguments, in a stable order, defaults left out."""
        pairs = [("q", self.q), ("time", self.time), ("tag", self.tag)]
        if self.status != ApplicantStatus.ACTIVE:
            pairs.append(("status", self.status))
        pairs += [("answer", a.arg) for a in self.answers]
        return [(k, v) for k, v in pairs if v]

    def answer_for(self, question: Question) -> str:
        return next((a.option for a in self.answers if a.question.id == question.id), "")


def options_of(question: Question) -> list[str]:
    return ["Yes", "No"] if question.type == QuestionType.YES_NO else list(question.options)


def parse_filter(args: Mapping[str, Any], questions: Iterable[Question]) -> BoardFilter:
    """The filter from query arguments; Invalid (naming the field) for a value the board does
    not offer. `args` is request.args or any mapping with getlist()."""
    q = " ".join(str(args.get("q", "")).split())[:100]
    if has_control_characters(q):
        raise Invalid("Search with letters, digits and punctuation only.", "q")
    time = args.get("time", "") or ""
    if time not in {value for value, *_ in TIME_CHOICES}:
        raise Invalid("Choose a time in stage from the list.", "time")
    status = args.get("status", "") or ApplicantStatus.ACTIVE.value
    if status not in {value for value, _ in STATUS_CHOICES}:
        raise Invalid("Choose a status from the list.", "status")
    tag = " ".join(str(args.get("tag", "")).split()).lower()[:40]
    if has_control_characters(tag):
        raise Invalid("Choose a tag from the list.", "tag")
    by_id = {question.public_id: question for question in questions}
    answers = []
    getlist = getattr(args, "getlist", None)
    for raw in getlist("answer") if getlist else [args.get("answer", "")]:
        if not raw:
            continue
        question_id, _, option = str(raw).partition(":")
        question = by_id.get(question_id)
        if question is None or option not in options_of(question):
            raise Invalid("That answer filter is not offered on this board.", "answer")
        if all(a.question.id != question.id for a in answers):
            answers.append(AnswerFilter(question, option))
    return BoardFilter(q=q, time=time, tag=tag, status=status, answers=tuple(answers))


def _json_text(value: Any) -> str:
    # Answers are stored through SQLAlchemy's JSON type, which writes json.dumps() text.
    return json.dumps(value)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def conditions(f: BoardFilter, now: datetime | None = None) -> list:
    """The filter as WHERE clauses on applicants."""
    now = now or utcnow()
    clauses: list = [Applicant.status == f.status]
    if f.q:
        needle = f.q.lower()
        clauses.append(
            or_(
                func.lower(Applicant.name).contains(needle, autoescape=True),
                Applicant.email.contains(needle, autoescape=True),
            )
        )
    for value, _label, more_than, less_than in TIME_CHOICES:
        if value and value == f.time:
            if more_than is not None:
                clauses.append(Applicant.entered_stage_at <= now - timedelta(days=more_than))
            if less_than is not None:
                clauses.append(Applicant.entered_stage_at > now - timedelta(days=less_than))
    if f.tag:
        clauses.append(
            exists().where(ApplicantTag.applicant_id == Applicant.id, ApplicantTag.tag == f.tag)
        )
    for answer in f.answers:
        text = cast(Answer.value, Text)
        if answer.question.type == QuestionType.MULTI_CHOICE:
            # A list of strings: match the option as one JSON string element of it.
            match = text.like(f"%{_escape_like(_json_text(answer.option))}%", escape="\\")
        else:
            match = text == _json_text(answer.value)
        clauses.append(
            exists().where(
                Answer.applicant_id == Applicant.id,
                Answer.question_id == answer.question.id,
                match,
            )
        )
    return clauses


# --- columns -------------------------------------------------------------------------------


@dataclass
class Column:
    stage: Stage
    count: int
    cards: list[Card] = field(default_factory=list)

    @property
    def has_more(self) -> bool:
        return len(self.cards) < self.count


@dataclass
class Board:
    opening: Opening
    columns: list[Column]
    filter: BoardFilter
    card_questions: list[Question]
    filter_questions: list[Question]
    # The live poll's starting point; None on a redraw of some columns, which has no poll.
    cursor: int | None

    @property
    def stages(self) -> list[Stage]:
        return [column.stage for column in self.columns]


# The questions a board may use: those picked for cards and those it can filter on.
_ON_BOARD = or_(Question.show_on_card.is_(True), Question.type.in_(FILTERABLE))

# Built once, as the other statements every board and move runs: building one cost about what
# the database took to run it.
_BOARD_QUESTIONS = (
    select(Question)
    .join(Stage, Stage.id == Question.stage_id)
    .where(
        Question.opening_id == bindparam("opening_id"), Question.archived_at.is_(None), _ON_BOARD
    )
    .order_by(Stage.position, Question.position, Question.id)
)
_BOARD_OPENING = rules.joined_stages(
    select(Opening, Stage, Rule, Question).where(
        Opening.org_id == bindparam("org_id"), Opening.public_id == bindparam("public_id")
    ),
    _ON_BOARD,
)
_STAGE_COUNTS = select(StageCount.stage_id, StageCount.active).where(
    StageCount.stage_id.in_(bindparam("stage_ids", expanding=True))
)


def _picked(questions: Iterable[Question]) -> tuple[list[Question], list[Question]]:
    questions = list(questions)
    on_cards = [question for question in questions if question.show_on_card][:CARD_ANSWERS]
    return on_cards, [question for question in questions if question.type in FILTERABLE]


def board_questions(opening: Opening) -> tuple[list[Question], list[Question]]:
    """The questions picked for cards (at most three) and the choice questions the board can
    filter on, from one query."""
    return _picked(db.session.scalars(_BOARD_QUESTIONS, {"opening_id": opening.id}))


def board_opening(
    org_id: int, public_id: str
) -> tuple[Opening, tuple[list[Question], list[Question]]]:
    """The org's opening with its stages in order (their enabled rules kept for the
    transaction: a move runs those of the stage it enters) and its board_questions(), in one
    statement; NotFound when there is none."""
    rows = []
    if is_public_id(public_id):
        rows = db.session.execute(_BOARD_OPENING, {"org_id": org_id, "public_id": public_id}).all()
    if not rows:
        raise NotFound("No such opening.")
    opening, questions = rules.with_kept_stages(rows)
    return opening, _picked(questions)


def counts(stage_ids: list[int], f: BoardFilter) -> dict[int, int]:
    """Each stage's count under the filter. Unfiltered, the counters the database keeps (one
    row per stage, however many cards); filtered, one grouped query over the board index."""
    if not stage_ids:
        return {}
    if not f.is_set:
        found = dict(db.session.execute(_STAGE_COUNTS, {"stage_ids": stage_ids}).all())
        return {stage_id: found.get(stage_id, 0) for stage_id in stage_ids}
    return dict(
        db.session.execute(
            select(Applicant.stage_id, func.count())
            .where(Applicant.stage_id.in_(stage_ids), *conditions(f))
            .group_by(Applicant.stage_id)
        ).all()
    )


def _page_query(stage_id: int, f: BoardFilter, limit: int, after: tuple[str, int] | None = None):
    query = select(*CARD_COLUMNS).where(Applicant.stage_id == stage_id, *conditions(f))
    if after is not None:
        rank, id_ = after
        query = query.where(
            or_(Applicant.rank > rank, and_(Applicant.rank == rank, Applicant.id > id_))
        )
    # The LIMIT written in: a board's UNION ALL of pages is then planned once (lookups.inline).
    return query.order_by(Applicant.rank, Applicant.id).limit(inline(limit))


def first_pages(stage_ids: list[int], f: BoardFilter, limit: int = PAGE) -> dict[int, list[Card]]:
    """The first `limit` cards of every stage in one round trip: a UNION ALL of per-stage
    LIMIT queries, each an index range scan however big its stage is."""
    if not stage_ids:
        return {}
    parts = [select(_page_query(stage_id, f, limit).subquery()) for stage_id in stage_ids]
    query = parts[0] if len(parts) == 1 else union_all(*parts)
    grouped: dict[int, list[Card]] = {stage_id: [] for stage_id in stage_ids}
    for card in cards_of(db.session.execute(query)):
        grouped[card.stage_id].append(card)
    for cards in grouped.values():  # a UNION promises no order; each part was ranked
        cards.sort(key=lambda card: (card.rank, card.id))
    return grouped


def layout(stages: Iterable[Stage]) -> str:
    """A short key of the columns a board draws (stages, their names and order): a poll
    from a board drawn with other columns has it reload, as its cards have nowhere to go."""
    drawn = "\n".join(f"{stage.public_id} {stage.name}" for stage in stages)
    return hashlib.blake2b(drawn.encode(), digest_size=6).hexdigest()


def cursor(opening: Opening) -> int:
    """The newest event of the opening: live updates start after it."""
    return db.session.scalar(select(func.max(Event.id)).where(Event.opening_id == opening.id)) or 0


def board(
    opening: Opening,
    f: BoardFilter | None = None,
    limit: int = PAGE,
    questions: tuple[list[Question], list[Question]] | None = None,
    only: set[int] | None = None,
    stages: list[Stage] | None = None,
) -> Board:
    """Every column's count and first page, dressed; `questions` are board_questions() and
    `stages` stages_of() if the caller has read them already; `only` limits it to those
    stages."""
    f = f or BoardFilter()
    stages = [s for s in stages or stages_of(opening) if only is None or s.id in only]
    card_questions, filter_questions = questions or board_questions(opening)
    ids = [stage.id for stage in stages]
    stage_counts = counts(ids, f)
    pages = first_pages(ids, f, limit)
    every_card = dress(opening, [c for s in ids for c in pages[s]], card_questions)
    dressed: dict[int, list[Card]] = {stage_id: [] for stage_id in ids}
    for card in every_card:
        dressed[card.stage_id].append(card)
    columns = [Column(stage, stage_counts.get(stage.id, 0), dressed[stage.id]) for stage in stages]
    live = cursor(opening) if only is None else None
    return Board(opening, columns, f, card_questions, filter_questions, live)


def next_page(
    opening: Opening,
    stage: Stage,
    f: BoardFilter,
    after_rank: str,
    after_id: str,
    card_questions: list[Question],
    limit: int = PAGE,
) -> list[Card]:
    """The cards after (after_rank, the card after_id) in the stage: for loading on scroll."""
    id_ = db.session.scalar(
        select(Applicant.id).where(
            Applicant.org_id == opening.org_id, Applicant.public_id == after_id
        )
    )
    if id_ is None:
        raise Invalid("The last card on the page is unknown; reload the board.", "after")
    cards = cards_of(db.session.execute(_page_query(stage.id, f, limit, (after_rank, id_))))
    return dress(opening, cards, card_questions)


def moved_card(
    opening: Opening,
    applicant: Applicant,
    f: BoardFilter,
    card_questions: list[Question],
    dressing_row: Any = None,
) -> Card | None:
    """The card of an applicant just moved, if it matches the filter, dressed. Unfiltered it
    is drawn from the applicant as loaded (a move leaves it as its UPDATE wrote it), and
    dressed from `dressing_row` when the move read its dressing() columns."""
    if f.is_set:
        found = cards_by_id(opening, [applicant.id], f, card_questions)
        return found[0] if found else None
    card = Card(*(getattr(applicant, column.key) for column in CARD_COLUMNS))
    if dressing_row is not None:
        return dressed(card, dressing_row, card_questions)
    return dress(opening, [card], card_questions)[0]


def cards_by_id(
    opening: Opening, ids: list[int], f: BoardFilter, card_questions: list[Question]
) -> list[Card]:
    """These applicants' cards, if they match the filter, dressed."""
    cards = cards_of(
        db.session.execute(
            select(*CARD_COLUMNS).where(
                Applicant.org_id == opening.org_id, Applicant.id.in_(ids), *conditions(f)
            )
        )
    )
    return dress(opening, cards, card_questions)


def select_all(stage: Stage, f: BoardFilter) -> list[int]:
    """The ids of every applicant of the stage under the filter, in board order, for a bulk
    action on a whole filtered stage: one integer a row, read once when it is asked for."""
    return list(
        db.session.scalars(
            select(Applicant.id)
            .where(Applicant.stage_id == stage.id, *conditions(f))
            .order_by(Applicant.rank, Applicant.id)
        )
    )


# --- live changes --------------------------------------------------------------------------


@dataclass
class Changes:
    cursor: int
    cards: list[Card]
    # Cards to take off the board: they no longer match the filter (or are gone).
    removed: list[str]
    counts: dict[int, int]
    # Too much changed at once: the client redraws the board instead.
    redraw: bool = False


def changes(opening: Opening, since: int, f: BoardFilter, card_questions: list[Question]):
    """What changed on the board since event `since`: None when nothing did."""
    # A cursor from a hand-made URL stays within what the database's integers hold.
    since = min(max(since, 0), MAX_INT)
    now = utcnow()
    rows = db.session.execute(
        select(Event.id, Event.applicant_id, Event.created_at)
        .where(
            Event.opening_id == opening.id,
            Event.id > since - LIVE_LIMIT,
            Event.applicant_id.is_not(None),
        )
        .order_by(Event.id)
        .limit(inline(2 * LIVE_LIMIT + 1))
    ).all()
    fresh = [r for r in rows if r.id > since or r.created_at > now - LIVE_LOOKBACK]
    if not any(r.id > since for r in fresh):
        return None
    newest = max(r.id for r in rows)
    ids = {r.applicant_id for r in fresh}
    stage_ids = [stage.id for stage in opening.stages]
    if len(ids) > LIVE_LIMIT or len(rows) > 2 * LIVE_LIMIT:
        return Changes(newest, [], [], counts(stage_ids, f), redraw=True)
    matching = cards_by_id(opening, list(ids), f, card_questions)
    gone = db.session.scalars(
        select(Applicant.public_id).where(Applicant.id.in_(ids - {card.id for card in matching}))
    )
    return Changes(newest, matching, list(gone), counts(stage_ids, f))
