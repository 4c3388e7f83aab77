"""The rule form: rows of conditions and actions as indexed fields (conditions-0-question,
conditions-0-op, conditions-0-value, actions-0-type, actions-0-stage, ...), read by hand.

WTForms' FieldList would need a subform per row whose inputs change with the row's question
and action type; plain indexed fields keep that in the templates, where it is visible, and the
service (plutomi.services.rule_editing) checks everything and names errors by the same field
names. Rows are always re-rendered numbered 0..n-1, so an error's index is its row's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from werkzeug.datastructures import MultiDict

from plutomi.models import EmailTemplate, Question, QuestionType, Stage, Trigger
from plutomi.services import conditions
from plutomi.services.conditions import Op
from plutomi.services.rule_editing import (
    ACTION_LABELS,
    TRIGGERS,
    ActionInput,
    ConditionInput,
    Lookups,
    RuleInput,
)

# More rows than the service accepts, so its "at most" message shows instead of rows vanishing.
ROW_LIMIT = 30
_ROW = re.compile(r"^(conditions|actions)-(\d{1,3})-[a-z]+$")
# Buttons that change the form instead of saving it (each works without JavaScript).
EDITS = ("add_condition", "add_action", "remove_condition", "remove_action", "refresh")


def _indexes(form: MultiDict, kind: str) -> list[int]:
    found = {
        int(match.group(2))
        for key in form
        if (match := _ROW.match(key)) is not None and match.group(1) == kind
    }
    return sorted(found)[:ROW_LIMIT]


def _value(form: MultiDict, name: str) -> str | list[str] | None:
    values = form.getlist(name)
    if not values:
        return None
    return values if len(values) > 1 else values[0]


def condition_at(form: MultiDict, i: int) -> ConditionInput:
    return ConditionInput(
        question=form.get(f"conditions-{i}-question", ""),
        op=form.get(f"conditions-{i}-op", ""),
        value=_value(form, f"conditions-{i}-value"),
    )


def action_at(form: MultiDict, i: int) -> ActionInput:
    return ActionInput(
        type=form.get(f"actions-{i}-type", ""),
        stage=form.get(f"actions-{i}-stage", ""),
        template=form.get(f"actions-{i}-template", ""),
        event=form.get(f"actions-{i}-event", ""),
    )


def _index(raw: str | None) -> int | None:
    return int(raw) if raw and raw.isdecimal() and len(raw) <= 3 else None


def command(form: MultiDict) -> str | None:
    """Which button sent the form: one of EDITS, "dry_run", or None for Save."""
    for name in (*EDITS, "dry_run"):
        if name in form:
            return name
    return None


def parse(form: MultiDict) -> RuleInput:
    """The rule as the form sends it, with any add / remove button applied."""
    drop_condition = _index(form.get("remove_condition"))
    drop_action = _index(form.get("remove_action"))
    data = RuleInput(
        name=form.get("name", ""),
        trigger=form.get("trigger", ""),
        delay_amount=form.get("delay_amount", ""),
        delay_unit=form.get("delay_unit", "days"),
        only_if_incomplete=bool(form.get("only_if_incomplete")),
        event_type=form.get("event_type", ""),
        match=form.get("match", "all"),
        conditions=[
            condition_at(form, i) for i in _indexes(form, "conditions") if i != drop_condition
        ],
        actions=[action_at(form, i) for i in _indexes(form, "actions") if i != drop_action],
        enabled=bool(form.get("enabled")),
    )
    if "add_condition" in form:
        data.conditions.append(ConditionInput())
    if "add_action" in form:
        data.actions.append(ActionInput(type="move"))
    return data


def row_index(args: MultiDict) -> int:
    """The index an htmx row request names; 0 when it names none that could be a row."""
    index = _index(args.get("index"))
    return index if index is not None and index < ROW_LIMIT else 0


# --- what the templates render ------------------------------------------------------------


@dataclass(frozen=True)
class ConditionRow:
    index: int
    question: Question | None
    question_id: str
    op: str
    ops: list[tuple[str, str]]
    # none, text, number, date, select, checkboxes or lines (one value per line)
    widget: str
    options: list[str]
    # The value as the inputs show it: a string, or the chosen options.
    text: str
    chosen: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class ActionRow:
    index: int
    type: str
    stage: str
    template: str
    event: str


def _widget(question: Question | None, op: str) -> str:
    if not conditions.needs_value(op):
        return "none"
    if question is None:
        return "text"
    kind = question.type_enum
    several = conditions.takes_list(op, kind)
    if kind.has_options:
        return "checkboxes" if several else "select"
    if kind is QuestionType.YES_NO:
        return "select"
    if several:
        return "lines"
    return {QuestionType.NUMBER: "number", QuestionType.DATE: "date"}.get(kind, "text")


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    return str(value)


def condition_row(index: int, condition: ConditionInput, found: Lookups) -> ConditionRow:
    question = found.questions.get(condition.question or "")
    allowed = conditions.operators(question.type_enum) if question is not None else list(Op)
    # A question changed under an operator it does not take: start from its first one.
    op = condition.op if condition.op in allowed else allowed[0].value
    options: list[str] = []
    if question is not None:
        if question.type_enum.has_options:
            options = list(question.options or [])
        elif question.type_enum is QuestionType.YES_NO:
            options = ["yes", "no"]
    values = condition.value if isinstance(condition.value, list) else [condition.value]
    return ConditionRow(
        index=index,
        question=question,
        question_id=condition.question or "",
        op=op,
        ops=[(o.value, conditions.LABELS[o]) for o in allowed],
        widget=_widget(question, op),
        options=options,
        text=_as_text(condition.value),
        chosen={str(v) for v in values if v is not None},
    )


def action_row(index: int, action: ActionInput) -> ActionRow:
    kind = action.type if action.type in ACTION_LABELS else "move"
    return ActionRow(index, kind, action.stage, action.template, action.event)


@dataclass(frozen=True)
class ActionChoices:
    """What an action row offers: the stages to move to, the org's email templates, and the
    action types."""

    stages: list[Stage]
    templates: list[EmailTemplate]
    types: list[tuple[str, str]]


def action_choices(found: Lookups, stage: Stage) -> ActionChoices:
    return ActionChoices(
        # The stage itself is no target: a rule cannot move applicants where they are.
        stages=[s for s in found.stages.values() if s.id != stage.id],
        templates=list(found.templates.values()),
        types=list(ACTION_LABELS.items()),
    )


@dataclass(frozen=True)
class FormView:
    """Everything the rule form's templates need besides the opening and stage."""

    data: RuleInput
    errors: dict[str, str]
    conditions: list[ConditionRow]
    actions: list[ActionRow]
    questions: list[tuple[str, list[Question]]]
    choices: ActionChoices
    triggers: list[tuple[str, str]]


def question_groups(found: Lookups) -> list[tuple[str, list[Question]]]:
    """The live questions grouped by stage name, in stage order, for an <optgroup> each."""
    asked: dict[int, list[Question]] = {}
    for question in sorted(found.questions.values(), key=lambda q: (q.position, q.id)):
        if question.archived_at is None:
            asked.setdefault(question.stage_id, []).append(question)
    return [(s.name, asked[s.id]) for s in found.stages.values() if s.id in asked]


def view(data: RuleInput, found: Lookups, stage: Stage, errors: dict[str, str]) -> FormView:
    return FormView(
        data=data,
        errors=errors,
        conditions=[condition_row(i, c, found) for i, c in enumerate(data.conditions)],
        actions=[action_row(i, a) for i, a in enumerate(data.actions)],
        questions=question_groups(found),
        choices=action_choices(found, stage),
        triggers=[(t.value, words.label) for t, words in TRIGGERS.items()],
    )


def blank() -> RuleInput:
    """A new rule's form: enabled, on stage completion, one move action to fill in."""
    return RuleInput(trigger=Trigger.STAGE_COMPLETED.value, actions=[ActionInput(type="move")])
