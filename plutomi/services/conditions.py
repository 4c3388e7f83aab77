"""Conditions of rules on applicants' answers: what each operator means for each question type.

One condition is {"question": <question public id>, "op": <operator>, "value": ...}. Values
are compared with the answer as stored (see answers.clean): text case-insensitively, numbers
as numbers, dates as ISO strings, yes/no as booleans, multiple choice as a set of options.
The engine, the rule editor's checks and its dry run all go through `matches`.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from plutomi.models import Question, QuestionType


class Op(StrEnum):
    EQUALS = "equals"
    NOT_EQUALS = "not_equals"
    CONTAINS = "contains"
    GREATER = "greater"
    LESS = "less"
    EMPTY = "empty"
    NOT_EMPTY = "not_empty"
    ANY_OF = "any_of"


LABELS = {
    Op.EQUALS: "is",
    Op.NOT_EQUALS: "is not",
    Op.CONTAINS: "contains",
    Op.GREATER: "is greater than",
    Op.LESS: "is less than",
    Op.EMPTY: "is empty",
    Op.NOT_EMPTY: "is not empty",
    Op.ANY_OF: "is any of",
}

_TEXT = {QuestionType.SHORT_TEXT, QuestionType.LONG_TEXT, QuestionType.EMAIL, QuestionType.PHONE}
_ORDERED = {QuestionType.NUMBER, QuestionType.DATE}
_CHOICE = {QuestionType.SINGLE_CHOICE, QuestionType.MULTI_CHOICE}


def operators(kind: QuestionType) -> list[Op]:
    """The operators that make sense for a question type, in the editor's order."""
    ops = [Op.EMPTY, Op.NOT_EMPTY]
    if kind is QuestionType.FILE:
        return ops
    if kind is QuestionType.YES_NO:
        return [Op.EQUALS, *ops]
    if kind is QuestionType.MULTI_CHOICE:
        return [Op.CONTAINS, Op.ANY_OF, Op.EQUALS, Op.NOT_EQUALS, *ops]
    if kind is QuestionType.SINGLE_CHOICE:
        return [Op.EQUALS, Op.NOT_EQUALS, Op.ANY_OF, *ops]
    if kind in _ORDERED:
        return [Op.EQUALS, Op.NOT_EQUALS, Op.GREATER, Op.LESS, *ops]
    return [Op.EQUALS, Op.NOT_EQUALS, Op.CONTAINS, Op.ANY_OF, *ops]


def needs_value(op: str) -> bool:
    return op not in (Op.EMPTY, Op.NOT_EMPTY)


def takes_list(op: str, kind: QuestionType) -> bool:
    """Whether the operator's value is several values: any of, and a multiple choice
    question's exact set of options (equals, not equals)."""
    return op == Op.ANY_OF or (
        kind is QuestionType.MULTI_CHOICE and op in (Op.EQUALS, Op.NOT_EQUALS)
    )


def _blank(answer: Any) -> bool:
    return answer is None or answer == "" or answer == []


def _fold(value: Any) -> Any:
    return value.casefold().strip() if isinstance(value, str) else value


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, list | tuple) else [value]


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _comparable(kind: QuestionType, value: Any) -> Any:
    if kind is QuestionType.NUMBER:
        return _number(value)
    if kind is QuestionType.YES_NO:
        if isinstance(value, str):
            return {"yes": True, "no": False}.get(value.casefold())
        return value
    return _fold(value)


def test(question: Question, op: str, value: Any, answer: Any) -> bool:
    """Whether one answer meets one condition. A missing answer meets only `empty` (and
    `not_equals`, since nothing is not the value)."""
    kind = question.type_enum
    if op == Op.EMPTY:
        return _blank(answer)
    if op == Op.NOT_EMPTY:
        return not _blank(answer)
    if _blank(answer):
        return op == Op.NOT_EQUALS
    if kind is QuestionType.MULTI_CHOICE:
        chosen = {_fold(item) for item in _as_list(answer)}
        wanted = {_fold(item) for item in _as_list(value)}
        if op == Op.CONTAINS:
            return wanted <= chosen
        if op == Op.ANY_OF:
            return bool(wanted & chosen)
        if op == Op.EQUALS:
            return wanted == chosen
        if op == Op.NOT_EQUALS:
            return wanted != chosen
        return False
    if op == Op.ANY_OF:
        return _comparable(kind, answer) in {_comparable(kind, item) for item in _as_list(value)}
    mine, theirs = _comparable(kind, answer), _comparable(kind, value)
    if op == Op.EQUALS:
        return mine == theirs
    if op == Op.NOT_EQUALS:
        return mine != theirs
    if op == Op.CONTAINS:
        return isinstance(mine, str) and isinstance(theirs, str) and theirs in mine
    if mine is None or theirs is None:
        return False
    try:
        if op == Op.GREATER:
            return mine > theirs
        if op == Op.LESS:
            return mine < theirs
    except TypeError:
        return False
    return False


def matches(
    conditions: list[dict[str, Any]],
    match: str,
    answers: Mapping[int, Any],
    questions: Mapping[str, Question],
) -> bool:
    """Whether an applicant's answers (question id → stored value) meet a rule's conditions.

    questions maps public ids to the opening's questions; a condition on a question that is
    gone, or archived (off the form), never matches, so a rule never fires on an answer
    nobody can give any more ("is empty" would otherwise hold for every new applicant)."""
    if not conditions:
        return True
    results = []
    for condition in conditions:
        question = questions.get(condition.get("question", ""))
        if question is None or question.archived_at is not None:
            results.append(False)
            continue
        answer = answers.get(question.id)
        results.append(test(question, condition.get("op", ""), condition.get("value"), answer))
    return any(results) if match == "any" else all(results)


def describe(condition: dict[str, Any], questions: Mapping[str, Question]) -> str:
    """A condition as a sentence for the editor, the dry run and the timeline."""
    question = questions.get(condition.get("question", ""))
    if question is None:
        label = "a deleted question"
    elif question.archived_at is not None:
        label = f"“{question.label}” (removed from the form: never true)"
    else:
        label = f"“{question.label}”"
    op = condition.get("op", "")
    text = f"{label} {LABELS.get(op, op)}"
    if needs_value(op):
        value = condition.get("value")
        shown = ", ".join(str(v) for v in _as_list(value)) if value is not None else ""
        text += f" {shown}"
    return text


__all__ = [
    "LABELS",
    "Op",
    "describe",
    "matches",
    "needs_value",
    "operators",
    "takes_list",
    "test",
]
