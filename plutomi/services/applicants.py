"""Applicants as recruiters read them: one applicant's profile, and the first applicants of each
stage for an opening's overview.

Reads only, so far; the writes of the applicant page (notes, tags, moves) will live here too.
Every read costs a fixed number of queries, however many answers, files or applicants there are:
the answers come in one query joined with their questions, the files in another, and the
overview's applicants of every stage in one windowed query.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from plutomi.extensions import db
from plutomi.models import (
    Answer,
    Applicant,
    ApplicantStatus,
    Event,
    Opening,
    Org,
    Question,
    QuestionType,
    Stage,
    Upload,
)
from plutomi.services.display import duration, format_value
from plutomi.services.openings import stage_counts, stages_of

OVERVIEW_LIMIT = 20


# --- one applicant -------------------------------------------------------------------------


@dataclass(frozen=True)
class AnswerView:
    label: str
    key: str
    type: str
    value: Any
    text: str
    # The question was removed from the stage after this answer was given.
    removed: bool
    # File questions: the upload the answer names (None if it is gone).
    upload: Upload | None = None

    @property
    def is_file(self) -> bool:
        return self.type == QuestionType.FILE

    @property
    def multiline(self) -> bool:
        return self.type == QuestionType.LONG_TEXT


@dataclass(frozen=True)
class StageAnswers:
    stage: Stage
    answers: list[AnswerView]
    current: bool


@dataclass(frozen=True)
class FileView:
    upload: Upload
    question_label: str | None
    # Replaced by a later upload to the same question: kept, but no longer the answer.
    superseded: bool


@dataclass(frozen=True)
class Withdrawal:
    at: datetime
    reason: str | None


@dataclass(frozen=True)
class Profile:
    applicant: Applicant
    opening: Opening
    stage: Stage
    stage_position: int  # 1-based, among the opening's stages
    stage_count: int
    time_in_stage: str
    stage_completed: bool
    stages: list[StageAnswers]
    files: list[FileView]
    answer_count: int
    withdrawal: Withdrawal | None = None
    # Every stage of the opening, in order: where the applicant can be moved.
    all_stages: list[Stage] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.applicant.status

    @property
    def is_withdrawn(self) -> bool:
        return self.applicant.status == ApplicantStatus.WITHDRAWN


def _withdrawal(applicant: Applicant) -> Withdrawal | None:
    if applicant.status != ApplicantStatus.WITHDRAWN:
        return None
    event = db.session.scalar(
        select(Event)
        .where(
            Event.org_id == applicant.org_id,
            Event.applicant_id == applicant.id,
            Event.type == "applicant.withdrawn",
        )
        .order_by(Event.created_at.desc(), Event.id.desc())
        .limit(1)
    )
    if event is None:
        return None
    return Withdrawal(event.created_at, (event.payload or {}).get("reason"))


def profile(org: Org, applicant: Applicant, now: datetime | None = None) -> Profile:
    """What the applicant gave, grouped by stage in stage order, with their files.

    Four queries (stages, answers with their questions, uploads, and for a withdrawn applicant
    the withdrawal), whatever the number of answers."""
    if applicant.org_id != org.id:  # the caller looked it up in the org; a guard, not a path
        raise ValueError("applicant of another org")
    stages = list(
        db.session.scalars(
            select(Stage)
            .where(Stage.org_id == org.id, Stage.opening_id == applicant.opening_id)
            .order_by(Stage.position, Stage.id)
        )
    )
    opening = db.session.get(Opening, applicant.opening_id)
    rows = db.session.execute(
        select(Answer.value, Question)
        .join(Question, Answer.question_id == Question.id)
        .where(Answer.org_id == org.id, Answer.applicant_id == applicant.id)
        .order_by(Question.position, Question.id)
    ).all()
    uploads = list(
        db.session.scalars(
            select(Upload)
            .where(Upload.org_id == org.id, Upload.applicant_id == applicant.id)
            .order_by(Upload.id)
        )
    )
    by_public_id = {u.public_id: u for u in uploads}
    questions: dict[int, Question] = {}

    grouped: dict[int, list[AnswerView]] = {}
    answered_files: set[str] = set()
    for value, question in rows:
        questions[question.id] = question
        upload = None
        if question.type == QuestionType.FILE:
            upload = by_public_id.get(value) if isinstance(value, str) else None
            if upload is not None:
                answered_files.add(upload.public_id)
            text = upload.original_name if upload else "File no longer available"
        else:
            text = format_value(question.type, value)
        grouped.setdefault(question.stage_id, []).append(
            AnswerView(
                label=question.label,
                key=question.key,
                type=question.type,
                value=value,
                text=text,
                removed=question.archived_at is not None,
                upload=upload,
            )
        )

    current = next((s for s in stages if s.id == applicant.stage_id), None)
    if current is None:  # pragma: no cover - a stage always belongs to its opening
        current = db.session.get(Stage, applicant.stage_id)
    sections = [
        StageAnswers(stage, grouped.get(stage.id, []), stage.id == applicant.stage_id)
        for stage in stages
        if stage.id in grouped or stage.id == applicant.stage_id
    ]
    files = [
        FileView(
            upload,
            questions[upload.question_id].label if upload.question_id in questions else None,
            upload.public_id not in answered_files,
        )
        for upload in uploads
    ]
    return Profile(
        applicant=applicant,
        opening=opening,
        stage=current,
        stage_position=next((i for i, s in enumerate(stages, 1) if s.id == current.id), 1),
        stage_count=len(stages),
        time_in_stage=duration(applicant.entered_stage_at, now),
        stage_completed=applicant.stage_completed_at is not None,
        stages=sections,
        files=files,
        withdrawal=_withdrawal(applicant),
        answer_count=len(rows),
        all_stages=stages,
    )


# --- an opening's overview -----------------------------------------------------------------


@dataclass(frozen=True)
class ApplicantRow:
    public_id: str
    name: str
    status: str
    entered_stage_at: datetime

    @property
    def time_in_stage(self) -> str:
        return duration(self.entered_stage_at)


@dataclass(frozen=True)
class StageColumn:
    stage: Stage
    count: int
    applicants: list[ApplicantRow]

    @property
    def more(self) -> int:
        return max(0, self.count - len(self.applicants))


def first_by_stage(opening: Opening, limit: int = OVERVIEW_LIMIT) -> dict[int, list[ApplicantRow]]:
    """The first `limit` applicants of every stage of the opening, by rank, in one query: each
    stage's rows are numbered by a window function and only the first ones are returned, so no
    stage is ever loaded whole."""
    number = (
        func.row_number()
        .over(partition_by=Applicant.stage_id, order_by=(Applicant.rank, Applicant.id))
        .label("n")
    )
    ranked = (
        select(
            Applicant.public_id,
            Applicant.name,
            Applicant.status,
            Applicant.entered_stage_at,
            Applicant.stage_id,
            number,
        )
        .where(Applicant.org_id == opening.org_id, Applicant.opening_id == opening.id)
        .subquery()
    )
    grouped: dict[int, list[ApplicantRow]] = {}
    for row in db.session.execute(
        select(ranked).where(ranked.c.n <= limit).order_by(ranked.c.stage_id, ranked.c.n)
    ):
        grouped.setdefault(row.stage_id, []).append(
            ApplicantRow(row.public_id, row.name, row.status, row.entered_stage_at)
        )
    return grouped


def overview(opening: Opening, limit: int = OVERVIEW_LIMIT) -> list[StageColumn]:
    """The opening's stages in order, each with its count and first applicants: three queries."""
    counts = stage_counts(opening)
    first = first_by_stage(opening, limit)
    return [
        StageColumn(stage, counts.get(stage.id, 0), first.get(stage.id, []))
        for stage in stages_of(opening)
    ]
