"""The API's JSON: checking request bodies by hand, and the shapes of what it answers.

Every check names the field it is about ("answers.phone", "data") and says what would be
accepted. The limits here are the ones openapi.py publishes, so the document stays true.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from plutomi.models import Applicant, Event, Opening, Question, QuestionType
from plutomi.services import answers, applications, events
from plutomi.services.errors import Invalid, InvalidFields, ServiceError

MAX_BODY = 64 * 1024
DATA_MAX = 16 * 1024
NAME_MAX = 200
EMAIL_MAX = 254
EVENTS_PAGE = 25
EVENTS_PAGE_MAX = 100
FILE_ANSWER = (
    "This is a file question: files cannot be sent through the API. The applicant uploads "
    "it from their portal."
)


class ApiError(ServiceError):
    """An error of the API itself (a body that is not JSON, a missing key): any status."""

    def __init__(
        self,
        status: int,
        message: str,
        field: str | None = None,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
    ):
        super().__init__(message, field, code=code, details=details)
        self.status = status


# --- reading a body ---------------------------------------------------------------------------


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse(raw: bytes) -> dict[str, Any]:
    """The JSON object a request body holds, or a 400 that says what is wrong with it."""
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_no_constants)
    except UnicodeDecodeError:
        raise ApiError(400, "The body is not UTF-8.", code="malformed_json") from None
    except (ValueError, RecursionError) as exc:
        detail = f": {exc}" if isinstance(exc, json.JSONDecodeError) else "."
        raise ApiError(400, f"The body is not valid JSON{detail}", code="malformed_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "The body must be a JSON object ({...}).", code="not_an_object")
    try:
        # A lone surrogate escape (\ud800) parses, but is no character any database can keep.
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(
            400,
            "The body holds an escape (\\ud800 to \\udfff) that is not a character.",
            code="malformed_json",
        ) from None
    return body


def _fields(body: dict[str, Any], allowed: set[str], required: set[str]) -> dict[str, str]:
    errors = {name: "This field is required." for name in sorted(required) if name not in body}
    for name in body:
        if name not in allowed:
            errors[name] = (
                f"This field is not part of the request; use {', '.join(sorted(allowed))}."
            )
    return errors


def _string(body: dict[str, Any], name: str, errors: dict[str, str]) -> str:
    value = body.get(name)
    if name in body and not isinstance(value, str):
        errors[name] = "Give a string."
        return ""
    return value or ""


def raw_answer(value: Any, field: str) -> str | list[str] | None:
    """A JSON answer as the form would have sent it: strings, or a list of strings for a
    multiple choice; numbers and booleans read as they are written; null leaves it blank."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    raise Invalid("Give a string, a number, true or false, a list of strings, or null.", field)


def answer_values(
    given: dict[str, Any], questions: list[Question], where: str
) -> tuple[list[tuple[Question, str | list[str] | None]], dict[str, str]]:
    """The answers object ({question key: value}) matched to the questions that may be
    answered, and an error for each unknown key, file question or value of the wrong type."""
    by_key = {q.key: q for q in questions}
    errors: dict[str, str] = {}
    values = []
    for key, value in given.items():
        field = f"answers.{key}"
        question = by_key.get(key)
        if question is None:
            errors[field] = f"No question has this key in {where}."
        elif question.type_enum is QuestionType.FILE:
            errors[field] = FILE_ANSWER
        else:
            try:
                values.append((question, raw_answer(value, field)))
            except Invalid as exc:
                errors[field] = exc.message
    return values, errors


def answer_errors(exc: InvalidFields, questions: list[Question]) -> InvalidFields:
    """A service's errors (by form field, q_<public id>) named as the API names them."""
    names = {answers.field_name(q): f"answers.{q.key}" for q in questions}
    files = {answers.field_name(q) for q in questions if q.type_enum is QuestionType.FILE}
    return InvalidFields(
        {
            names.get(field, field): FILE_ANSWER if field in files else message
            for field, message in exc.errors.items()
        }
    )


def new_applicant(body: dict[str, Any]) -> tuple[str, str, Any]:
    """(name, email, answers) of POST /openings/{id}/applicants; the service checks the rest."""
    errors = _fields(body, {"name", "email", "answers"}, {"name", "email"})
    name = _string(body, "name", errors)
    email = _string(body, "email", errors)
    given = body.get("answers", {})
    if given is None:
        given = {}
    if not isinstance(given, dict):
        errors["answers"] = "Give an object of {question key: answer}."
    if errors:
        raise InvalidFields(errors)
    return name, email, given


def move(body: dict[str, Any]) -> tuple[str, int | None]:
    errors = _fields(body, {"stage_id", "version"}, {"stage_id"})
    stage_id = _string(body, "stage_id", errors)
    version = body.get("version")
    if version is not None and (
        not isinstance(version, int) or isinstance(version, bool) or version < 1
    ):
        errors["version"] = "Give the applicant's version, a whole number of 1 or more."
        version = None
    if errors:
        raise InvalidFields(errors)
    return stage_id, version


def given_answers(body: dict[str, Any]) -> dict[str, Any]:
    errors = _fields(body, {"answers"}, {"answers"})
    given = body.get("answers")
    if "answers" in body and (not isinstance(given, dict) or not given):
        errors["answers"] = "Give an object of {question key: answer}, with at least one answer."
    if errors:
        raise InvalidFields(errors)
    return given


def external_event(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    errors = _fields(body, {"type", "data"}, {"type"})
    kind = _string(body, "type", errors)
    # The names a rule's "outside event" trigger accepts (events.type_problem), so every
    # rule can be reached.
    if "type" not in errors and (problem := events.type_problem(kind, custom=False)):
        errors["type"] = problem
    data = body.get("data", {})
    if data is None:
        data = {}
    if not isinstance(data, dict):
        errors["data"] = "Give an object, or leave data out."
    elif len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()) > DATA_MAX:
        errors["data"] = f"Keep data under {DATA_MAX // 1024} KB of JSON."
    if errors:
        raise InvalidFields(errors)
    return kind, data


def events_query(args) -> tuple[int, str | None]:
    """?limit= and ?cursor= of the events list."""
    raw_limit = args.get("limit")
    limit = EVENTS_PAGE
    if raw_limit is not None:
        try:
            limit = int(raw_limit)
        except ValueError:
            limit = 0
        if not 1 <= limit <= EVENTS_PAGE_MAX:
            raise Invalid(f"Give a limit from 1 to {EVENTS_PAGE_MAX}.", "limit")
    cursor = args.get("cursor") or None
    if cursor is not None and len(cursor) > 200:
        raise Invalid("This cursor is not one we gave out.", "cursor")
    return limit, cursor


# --- what the API answers ---------------------------------------------------------------------


def when(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def opening(row: Opening) -> dict[str, Any]:
    return {
        "id": row.public_id,
        "name": row.name,
        "slug": row.slug,
        "state": row.state,
        "created_at": when(row.created_at),
    }


def opening_detail(row: Opening) -> dict[str, Any]:
    """The opening with its stages in order and each stage's questions: the public
    schema.json's shapes (applications.schema), for any state the opening is in."""
    shape = applications.schema(row)
    return {
        **opening(row),
        "description": row.description,
        "archived": row.archived_at is not None,
        "stages": shape["stages"],
    }


def applicant(row: Applicant, given: dict[str, Any] | None = None) -> dict[str, Any]:
    """An applicant as the API shows it; given: their answers by key, when the caller knows
    them already (it just wrote them), else read."""
    return {
        "id": row.public_id,
        "name": row.name,
        "email": row.email,
        "status": row.status,
        "version": row.version,
        "opening": {"id": row.opening.public_id, "name": row.opening.name},
        "stage": {"id": row.stage.public_id, "name": row.stage.name},
        "entered_stage_at": when(row.entered_stage_at),
        "stage_completed_at": when(row.stage_completed_at),
        "created_at": when(row.created_at),
        "answers": answers.values_by_key(row.id) if given is None else given,
    }


def event(row: Event) -> dict[str, Any]:
    return {
        "type": row.type,
        "actor": {"type": row.actor_type},
        "payload": row.payload or {},
        "created_at": when(row.created_at),
    }
