"""Applicants' answers: checking one answer by its question's type, saving it, and noticing
when a stage's required questions are all answered."""

from __future__ import annotations

import math
import re
from datetime import date
from typing import Any

from sqlalchemy import Select, bindparam, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import contains_eager
from werkzeug.datastructures import FileStorage

from plutomi.extensions import db
from plutomi.models import Answer, Applicant, ApplicantStatus, Question, QuestionType, Stage, utcnow
from plutomi.services import rules, uploads
from plutomi.services.errors import Conflict, Invalid, InvalidFields, NotFound
from plutomi.services.events import Actor, record_applicant
from plutomi.services.fields import CONTROL_CHARACTER, has_control_characters, normalize_email

# Text answers without a maximum of their own still get one: a form is not a file store.
SHORT_TEXT_MAX = 300
LONG_TEXT_MAX = 10_000
PHONE_RE = re.compile(r"^\+?[0-9 ()\-]+$")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
YES_NO = {"yes": True, "no": False}

Raw = str | list[str] | FileStorage | None


def field_name(question: Question) -> str:
    """The form field of a question: its public id, so renaming its key breaks no form."""
    return f"q_{question.public_id}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _is_blank(raw: Raw) -> bool:
    if raw is None:
        return True
    if isinstance(raw, FileStorage):
        return not raw.filename
    if isinstance(raw, list):
        return not any(str(item).strip() for item in raw)
    return not raw.strip()


def _single(raw: Raw, field: str) -> str:
    if isinstance(raw, list):
        if len(raw) != 1:
            raise Invalid("Give one answer only.", field)
        raw = raw[0]
    if not isinstance(raw, str):
        raise Invalid("Type your answer here rather than attaching a file.", field)
    return raw.strip()


def _text(question: Question, value: str, field: str, *, multiline: bool) -> str:
    if multiline:
        value = value.replace("\r\n", "\n")
        checked = value.replace("\n", "").replace("\t", "")
    else:
        value = " ".join(value.split())
        checked = value
    if has_control_characters(checked):
        raise Invalid(CONTROL_CHARACTER, field)
    low = int(question.min_value) if question.min_value is not None else None
    high = int(question.max_value) if question.max_value is not None else None
    high = min(high, LONG_TEXT_MAX) if high is not None else None
    cap = high if high is not None else (LONG_TEXT_MAX if multiline else SHORT_TEXT_MAX)
    if low is not None and len(value) < low:
        raise Invalid(f"Use at least {low} characters (this has {len(value)}).", field)
    if len(value) > cap:
        raise Invalid(f"Use at most {cap} characters (this has {len(value)}).", field)
    return value


def _phone(value: str, field: str) -> str:
    value = " ".join(value.split())
    digits = sum(char.isdigit() for char in value)
    if not PHONE_RE.match(value) or not 7 <= digits <= 15:
        raise Invalid(
            "Enter a phone number of 7 to 15 digits; spaces, dashes, brackets and a leading +"
            " are fine.",
            field,
        )
    return value


def _range_message(question: Question) -> str:
    low, high = question.min_value, question.max_value
    if low is not None and high is not None:
        return f"Enter a number between {_number(low)} and {_number(high)}."
    if low is not None:
        return f"Enter a number of at least {_number(low)}."
    if high is not None:
        return f"Enter a number of at most {_number(high)}."
    return "Enter a number, such as 42 or 3.5."


def _number_value(question: Question, value: str, field: str) -> int | float:
    try:
        number = float(value.replace(" ", ""))
    except ValueError:
        raise Invalid(_range_message(question), field) from None
    if not math.isfinite(number):
        raise Invalid(_range_message(question), field)
    if (question.min_value is not None and number < question.min_value) or (
        question.max_value is not None and number > question.max_value
    ):
        raise Invalid(_range_message(question), field)
    return int(number) if number.is_integer() and abs(number) < 2**53 else number


def _date(value: str, field: str) -> str:
    message = "Enter a date as YYYY-MM-DD, such as 2025-03-31."
    if not DATE_RE.match(value):
        raise Invalid(message, field)
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise Invalid(message, field) from None


def _multi(question: Question, raw: Raw, field: str) -> list[str]:
    items = raw if isinstance(raw, list) else [raw]
    chosen = {item.strip() for item in items if isinstance(item, str) and item.strip()}
    if any(not isinstance(item, str) for item in items) or not chosen <= set(question.options):
        raise Invalid("Choose only from the options offered.", field)
    return [option for option in question.options if option in chosen]  # in the options' order


def _required_message(kind: QuestionType) -> str:
    return {
        QuestionType.FILE: "Choose a file to upload.",
        QuestionType.SINGLE_CHOICE: "Choose one of the options offered.",
        QuestionType.MULTI_CHOICE: "Choose at least one option.",
        QuestionType.YES_NO: "Answer yes or no.",
    }.get(kind, "This question needs an answer.")


def clean(question: Question, raw: Raw) -> Any:
    """The value to store for raw, or None when left blank (allowed unless required).

    A file question's file is read and checked here, and returned as an uploads.CheckedFile:
    storing it needs the applicant (see stored())."""
    field = field_name(question)
    kind = question.type_enum
    if _is_blank(raw):
        if question.required:
            raise Invalid(_required_message(kind), field)
        return None
    if kind is QuestionType.FILE:
        if not isinstance(raw, FileStorage):
            raise Invalid("Choose a file to upload.", field)
        return uploads.check(question, raw)
    if kind is QuestionType.MULTI_CHOICE:
        return _multi(question, raw, field)
    value = _single(raw, field)
    if kind is QuestionType.SHORT_TEXT:
        return _text(question, value, field, multiline=False)
    if kind is QuestionType.LONG_TEXT:
        return _text(question, value, field, multiline=True)
    if kind is QuestionType.EMAIL:
        return normalize_email(value, field)
    if kind is QuestionType.PHONE:
        return _phone(value, field)
    if kind is QuestionType.NUMBER:
        return _number_value(question, value, field)
    if kind is QuestionType.DATE:
        return _date(value, field)
    if kind is QuestionType.SINGLE_CHOICE:
        if value not in question.options:
            raise Invalid("Choose one of the options offered.", field)
        return value
    if kind is QuestionType.YES_NO:
        if value.lower() not in YES_NO:
            raise Invalid("Answer yes or no.", field)
        return YES_NO[value.lower()]
    raise Invalid("This question cannot be answered here.", field)  # pragma: no cover


def _asked_now(applicant: Applicant, question: Question) -> bool:
    """Whether the question is one the applicant's current stage asks."""
    return (
        question.opening_id == applicant.opening_id
        and question.stage_id == applicant.stage_id
        and question.archived_at is None
    )


def _check_can_answer(applicant: Applicant, question: Question) -> None:
    if applicant.status != ApplicantStatus.ACTIVE:
        raise Invalid(
            f"This application is {applicant.status}; its answers can no longer change.",
            field_name(question),
        )
    if not _asked_now(applicant, question):
        raise NotFound("This question is not part of your application now.")


def _upsert(applicant: Applicant, question: Question, value: Any) -> Answer:
    answer = db.session.scalar(
        select(Answer).where(Answer.applicant_id == applicant.id, Answer.question_id == question.id)
    )
    if answer is None:
        answer = Answer(
            org_id=applicant.org_id, applicant_id=applicant.id, question_id=question.id, value=value
        )
        db.session.add(answer)
    else:
        answer.value = value
        answer.updated_at = utcnow()
    return answer


def stored(applicant: Applicant, question: Question, value: Any) -> Any:
    """What an answer that clean() accepted keeps: a file goes to the upload store, and its
    upload's public id is kept."""
    if isinstance(value, uploads.CheckedFile):
        return uploads.store(applicant, question, value).public_id
    return value


def row(applicant: Applicant, question: Question, value: Any) -> dict[str, Any]:
    """A new answer's columns (a new application's, inserted without the ORM)."""
    return {
        "org_id": applicant.org_id,
        "applicant_id": applicant.id,
        "question_id": question.id,
        "value": value,
    }


def write(
    applicant: Applicant, question: Question, value: Any, *, actor: Actor | None = None
) -> Answer | None:
    """Store a value that clean() accepted, in the caller's transaction; None clears it.
    actor: who answered (an API key); the applicant themselves when not given."""
    value = stored(applicant, question, value)
    if value is None:
        answer = db.session.scalar(
            select(Answer).where(
                Answer.applicant_id == applicant.id, Answer.question_id == question.id
            )
        )
        if answer is not None:
            db.session.delete(answer)
        return None
    answer = _upsert(applicant, question, value)
    record_applicant(
        "applicant.answered",
        applicant,
        actor=actor or Actor.applicant(applicant),
        question=question.key,
    )
    return answer


def save(
    applicant: Applicant, question: Question, raw: Raw, *, commit: bool = True
) -> Answer | None:
    """Check and store one answer (a blank optional answer clears it), mark the stage
    completed when that was its last required question, and run the stage's rules."""
    _check_can_answer(applicant, question)
    value = clean(question, raw)
    try:
        answer = write(applicant, question, value)
        db.session.flush()
    except IntegrityError:
        # The same question saved twice at once (a double click): the other save made the row,
        # so this one updates it. (A file's upload row went with the rollback: not retried.)
        if not commit or isinstance(value, uploads.CheckedFile):
            raise
        db.session.rollback()
        answer = write(applicant, question, value)
    rules.answered(applicant, completed=complete_stage_if_done(applicant))
    if commit:
        db.session.commit()
    return answer


def save_many(
    applicant: Applicant,
    given: list[tuple[Question, Raw]],
    *,
    actor: Actor,
    known_errors: dict[str, str] | None = None,
) -> list[Answer | None]:
    """Check and store several answers of the applicant's current stage at once (an API
    client answering for them): every bad answer is reported together (InvalidFields by
    field_name, with known_errors, problems the caller found already) and then nothing is
    written. The stage is completed when these were its last required answers, and the
    stage's answer rules run once, for the whole batch. One transaction, committed here."""
    if applicant.status != ApplicantStatus.ACTIVE:
        raise Conflict(
            f"This application is {applicant.status}; its answers can no longer change.",
            code="not_active",
        )
    errors: dict[str, str] = dict(known_errors or {})
    values: list[tuple[Question, Any]] = []
    for question, raw in given:
        field = field_name(question)
        if not _asked_now(applicant, question):
            errors[field] = "This question is not asked in the applicant's current stage."
            continue
        try:
            values.append((question, clean(question, raw)))
        except Invalid as exc:
            errors[exc.field or field] = exc.message
    if errors:
        raise InvalidFields(errors)
    try:
        saved = [write(applicant, question, value, actor=actor) for question, value in values]
        db.session.flush()
    except IntegrityError:
        # Another request saved one of these questions' first answer at the same moment.
        db.session.rollback()
        raise Conflict(
            "Another request answered these questions at the same moment; send them again."
        ) from None
    rules.answered(applicant, completed=complete_stage_if_done(applicant, actor=actor))
    db.session.commit()
    return saved


def missing_required(applicant: Applicant, stage: Stage) -> list[Question]:
    """The stage's required questions (not archived) that the applicant has not answered."""
    answered = exists().where(
        Answer.applicant_id == applicant.id, Answer.question_id == Question.id
    )
    return list(
        db.session.scalars(
            select(Question)
            .where(
                Question.stage_id == stage.id,
                Question.required.is_(True),
                Question.archived_at.is_(None),
                ~answered,
            )
            .order_by(Question.position, Question.id)
        )
    )


def complete_stage_if_done(applicant: Applicant, *, actor: Actor | None = None) -> bool:
    """Set stage_completed_at and write applicant.stage_completed, once per stage entry."""
    if applicant.stage_completed_at is not None or applicant.status != ApplicantStatus.ACTIVE:
        return False
    stage = db.session.get(Stage, applicant.stage_id)
    if missing_required(applicant, stage):
        return False
    applicant.stage_completed_at = utcnow()
    record_applicant(
        "applicant.stage_completed",
        applicant,
        actor=actor or Actor.applicant(applicant),
        stage=stage.name,
    )
    return True


def _in_order(query: Select) -> Select:
    """query (of answers and their questions) narrowed to the answers of the applicant
    `applicant_id`, in stage and question order."""
    return (
        query.join(Question, Answer.question_id == Question.id)
        .join(Stage, Question.stage_id == Stage.id)
        .where(Answer.applicant_id == bindparam("applicant_id"))
        .order_by(Stage.position, Question.position, Question.id)
    )


# Built once: every API answer about an applicant and every portal page runs one of them.
_VALUES_BY_KEY = _in_order(select(Question.key, Answer.value).select_from(Answer))
_ANSWERED = _in_order(select(Answer).options(contains_eager(Answer.question)))


def values_by_key(applicant_id: int) -> dict[str, Any]:
    """Every answer of the applicant as {question key: value}, in stage and question order:
    one query of two columns, for callers that need no Answer or Question objects."""
    return dict(db.session.execute(_VALUES_BY_KEY, {"applicant_id": applicant_id}).all())


def answered(applicant: Applicant) -> list[Answer]:
    """Every answer of the applicant, in stage and question order, each with its question
    loaded by the same query (the portal shows each answer's label: no query per answer)."""
    return list(db.session.scalars(_ANSWERED, {"applicant_id": applicant.id}))
