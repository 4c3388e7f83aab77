"""The rule editor of a stage: checking a rule as the form sends it, saving, ordering, and the
dry run that shows whom an unsaved rule would act on.

The engine that fires rules lives in plutomi.services.rules; both read conditions through
plutomi.services.conditions, so the editor's checks and dry run mean what the engine does.
Every write goes through openings' permission check (`editable`), finds each id inside the
opening (another org's ids are indistinguishable from unknown ones), records an event and
commits once.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select

from plutomi.extensions import db
from plutomi.models import (
    Answer,
    Applicant,
    ApplicantStatus,
    EmailTemplate,
    Membership,
    Opening,
    Org,
    Question,
    QuestionType,
    Rule,
    Stage,
    Trigger,
    utcnow,
)
from plutomi.services import conditions, email_templates, events, rules
from plutomi.services.conditions import Op
from plutomi.services.display import UNITS, delay_text, duration, in_unit
from plutomi.services.errors import Invalid, InvalidFields
from plutomi.services.fields import CONTROL_CHARACTER, clean_name, has_control_characters
from plutomi.services.lookups import by_public_id
from plutomi.services.openings import (
    editable,
    get_stage,
    moved_one_place,
    record_event,
    stages_of,
    write_positions,
)


@dataclass(frozen=True)
class TriggerWords:
    """A trigger in the editor's words: its label in the form, how a rule's sentence starts
    and, in a dry run, when the rule would act ({delay} and {event} are filled in)."""

    label: str
    when: str
    here: str


# In the order the form offers them. (The engine's own words, rules.WHY, are for timelines.)
TRIGGERS = {
    Trigger.STAGE_COMPLETED: TriggerWords(
        label="Stage completed (all required questions answered)",
        when="When an applicant completes this stage",
        here="It would act on these applicants when they complete the stage.",
    ),
    Trigger.ANSWERS_SUBMITTED: TriggerWords(
        label="Answers submitted",
        when="When an applicant submits answers",
        here="It would act on these applicants when they next submit answers.",
    ),
    Trigger.STAGE_ENTERED: TriggerWords(
        label="Stage entered",
        when="When an applicant enters this stage",
        here=(
            "It acts on applicants as they enter this stage; these are the applicants here now "
            "whose answers match."
        ),
    ),
    Trigger.TIME_IN_STAGE: TriggerWords(
        label="Time in stage reached",
        when="After {delay} in this stage",
        here="It acts when their time in the stage is reached.",
    ),
    Trigger.EXTERNAL_EVENT: TriggerWords(
        label="An outside event received",
        when="When the outside event {event} arrives",
        here="It would act on these applicants when a {event} event arrives for them.",
    ),
}
ACTION_LABELS = {
    "move": "Move to a stage",
    "email": "Send an email template",
    "webhook": "Emit a webhook event",
}
MAX_DELAY_DAYS = 3650
MAX_DELAY_MINUTES = MAX_DELAY_DAYS * UNITS["days"]
MAX_CONDITIONS = 20
MAX_ACTIONS = 10
VALUE_MAX = 300
MAX_ANY_OF = 200
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

# The dry run: applicants read per query, names shown, and how far it counts.
DRY_RUN_CHUNK = 1000
DRY_RUN_SHOWN = 50
DRY_RUN_CAP = 10_000


@dataclass
class ConditionInput:
    question: str = ""
    op: str = ""
    # One value, or several (any of; multiple choice equals) as a list or one per line.
    value: str | list[str] | None = None


@dataclass
class ActionInput:
    type: str = ""
    stage: str = ""
    template: str = ""
    event: str = ""


@dataclass
class RuleInput:
    """What the rule form sends; check() cleans and checks every part."""

    name: str = ""
    trigger: str = Trigger.STAGE_COMPLETED.value
    delay_amount: str | int | None = None
    delay_unit: str = "days"
    only_if_incomplete: bool = False
    event_type: str = ""
    match: str = "all"
    conditions: list[ConditionInput] = field(default_factory=list)
    actions: list[ActionInput] = field(default_factory=list)
    enabled: bool = True


@dataclass(frozen=True)
class CleanRule:
    """A checked rule, in the shapes the Rule row stores."""

    name: str
    trigger: str
    delay_minutes: int | None
    only_if_incomplete: bool
    event_type: str | None
    match: str
    conditions: list[dict[str, Any]]
    actions: list[dict[str, Any]]
    enabled: bool


# --- what the editor looks things up in --------------------------------------------------------


@dataclass(frozen=True)
class Lookups:
    """The opening's questions (archived ones too) and stages, and the org's email templates,
    by public id: read once per page to check rules and put them into words."""

    questions: dict[str, Question]
    # In the opening's order.
    stages: dict[str, Stage]
    # By name.
    templates: dict[str, EmailTemplate]


def lookups(opening: Opening) -> Lookups:
    org = db.session.get(Org, opening.org_id)
    return Lookups(
        questions=rules.questions_of(opening.id),
        stages={s.public_id: s for s in stages_of(opening)},
        templates={t.public_id: t for t in email_templates.list_for(org)},
    )


# --- checking ----------------------------------------------------------------------------------


def _delay(data: RuleInput, errors: dict[str, str]) -> int | None:
    unit = UNITS.get(str(data.delay_unit or ""))
    if unit is None:
        errors["delay_unit"] = "Choose minutes, hours or days."
        return None
    raw = str(data.delay_amount if data.delay_amount is not None else "").strip()
    if not raw:
        errors["delay_amount"] = "Say how long applicants wait in the stage, such as 30 days."
        return None
    if not raw.isdecimal() or len(raw) > 9:
        errors["delay_amount"] = "Enter a whole number, such as 30."
        return None
    minutes = int(raw) * unit
    if not 1 <= minutes <= MAX_DELAY_MINUTES:
        errors["delay_amount"] = f"Give a time between 1 minute and {MAX_DELAY_DAYS:,} days."
        return None
    return minutes


def _text(value: str) -> str:
    return " ".join(value.split())


def _items(value: str | list[str] | None) -> list[str]:
    """Every value given, from repeated fields or one per line, blanks and repeats dropped."""
    raw = value if isinstance(value, list) else [value or ""]
    items: list[str] = []
    for part in raw:
        for line in str(part).splitlines():
            line = _text(line)
            if line and line.casefold() not in {i.casefold() for i in items}:
                items.append(line)
    return items


def _one(value: str | list[str] | None) -> str | None:
    """A single value; None when several were sent for one."""
    if isinstance(value, list):
        given = [v for v in value if str(v).strip()]
        if len(given) > 1:
            return None
        value = given[0] if given else ""
    return _text(str(value or ""))


def _value_of_type(kind: QuestionType, question: Question, raw: str) -> Any:
    """One value in the form an answer of this type is stored in; Invalid when it cannot be."""
    if has_control_characters(raw):
        raise Invalid(CONTROL_CHARACTER)
    if len(raw) > VALUE_MAX:
        raise Invalid(f"Use at most {VALUE_MAX} characters.")
    if kind is QuestionType.NUMBER:
        try:
            number = float(raw.replace(" ", ""))
        except ValueError:
            raise Invalid("Enter a number, such as 42 or 3.5.") from None
        if not math.isfinite(number) or abs(number) > 1e15:
            raise Invalid("Enter a number, such as 42 or 3.5.")
        return int(number) if number.is_integer() else number
    if kind is QuestionType.DATE:
        message = "Enter a date as YYYY-MM-DD, such as 2025-03-31."
        if not DATE_RE.match(raw):
            raise Invalid(message)
        try:
            return date.fromisoformat(raw).isoformat()
        except ValueError:
            raise Invalid(message) from None
    if kind.has_options:
        if raw not in (question.options or []):
            raise Invalid("Choose one of the question's options.")
        return raw
    if kind is QuestionType.YES_NO:
        if raw.casefold() not in ("yes", "no"):
            raise Invalid("Choose yes or no.")
        return raw.casefold()
    return raw


def _condition_value(question: Question, op: str, value: str | list[str] | None) -> Any:
    kind = question.type_enum
    if conditions.takes_list(op, kind):
        items = _items(value)
        if not items:
            raise Invalid(
                "Choose at least one option."
                if kind.has_options or kind is QuestionType.YES_NO
                else "Give at least one value, one per line."
            )
        if len(items) > MAX_ANY_OF:
            raise Invalid(f"Give at most {MAX_ANY_OF} values.")
        return [_value_of_type(kind, question, item) for item in items]
    one = _one(value)
    if one is None:
        raise Invalid("Give one value only.")
    if not one:
        raise Invalid(
            "Choose a value."
            if kind.has_options or kind is QuestionType.YES_NO
            else "Give the value to compare with."
        )
    return _value_of_type(kind, question, one)


def _check_condition(
    i: int,
    condition: ConditionInput,
    found: Lookups,
    errors: dict[str, str],
) -> dict[str, Any] | None:
    prefix = f"conditions-{i}"
    public_id = (condition.question or "").strip()
    question = found.questions.get(public_id)
    if not public_id:
        errors[f"{prefix}-question"] = "Choose a question."
        return None
    if question is None:
        errors[f"{prefix}-question"] = "Choose a question of this opening."
        return None
    if question.archived_at is not None:
        errors[f"{prefix}-question"] = (
            "This question was removed from the form (it is archived): choose another, or "
            "remove the condition."
        )
        return None
    op = (condition.op or "").strip()
    allowed = conditions.operators(question.type_enum)
    if op not in allowed:
        labels = ", ".join(conditions.LABELS[o] for o in allowed)
        errors[f"{prefix}-op"] = f"For this question choose one of: {labels}."
        return None
    value = None
    if conditions.needs_value(op):
        try:
            value = _condition_value(question, op, condition.value)
        except Invalid as exc:
            errors[f"{prefix}-value"] = exc.message
            return None
    return {"question": question.public_id, "op": op, "value": value}


def _contradiction(question: Question, first: dict, second: dict) -> str | None:
    """Why two conditions on one question can never both hold (under "all"), or None.

    Decided by conditions.test itself: the only answer that meets `equals a` is a, and the
    only one that meets `empty` is a blank one."""
    ops = {first["op"], second["op"]}
    if Op.EMPTY in ops:
        other = second if first["op"] == Op.EMPTY else first
        if not conditions.test(question, other["op"], other["value"], None):
            return "An answer cannot be empty and meet this too."
        return None
    if first["op"] == second["op"] == Op.EQUALS:
        if not conditions.test(question, Op.EQUALS, second["value"], first["value"]):
            return "An answer cannot equal two different values."
        return None
    if ops == {Op.EQUALS, Op.NOT_EQUALS}:
        equals = first if first["op"] == Op.EQUALS else second
        other = second if equals is first else first
        if not conditions.test(question, Op.NOT_EQUALS, other["value"], equals["value"]):
            return "An answer cannot both be and not be the same value."
    return None


def _never_fires(
    cleaned: list[tuple[int, dict[str, Any]]],
    match: str,
    trigger: str,
    stage: Stage,
    found: Lookups,
    errors: dict[str, str],
) -> None:
    stages_by_id = {s.id: s for s in found.stages.values()}
    if trigger == Trigger.STAGE_ENTERED:
        for i, condition in cleaned:
            asked_in = stages_by_id.get(found.questions[condition["question"]].stage_id)
            if asked_in is not None and asked_in.position > stage.position:
                later = asked_in.name
                errors.setdefault(
                    f"conditions-{i}-question",
                    f"Applicants answer this question in a later stage ({later}), so it has no "
                    "answer yet when they enter this stage. Choose a question of this or an "
                    "earlier stage, or another trigger.",
                )
    if match != "all":
        return
    for n, (i, first) in enumerate(cleaned):
        for j, second in cleaned[n + 1 :]:
            if first["question"] != second["question"]:
                continue
            why = _contradiction(found.questions[first["question"]], first, second)
            if why:
                errors.setdefault(
                    f"conditions-{j}-{'value' if conditions.needs_value(second['op']) else 'op'}",
                    f"{why} With condition {i + 1} this rule can never fire: change one, "
                    "or match any condition instead of all.",
                )


def _check_action(
    i: int,
    action: ActionInput,
    stage: Stage,
    found: Lookups,
    errors: dict[str, str],
) -> dict[str, Any] | None:
    prefix = f"actions-{i}"
    kind = (action.type or "").strip()
    if kind == "move":
        public_id = (action.stage or "").strip()
        if not public_id:
            errors[f"{prefix}-stage"] = "Choose the stage to move applicants to."
            return None
        target = found.stages.get(public_id)
        # Unknown ids, deleted stages, other openings' and other orgs' stages get the same
        # answer.
        if target is None:
            errors[f"{prefix}-stage"] = (
                "That stage is not one of this opening's (it may have been deleted): choose "
                "another."
            )
            return None
        if target.id == stage.id:
            errors[f"{prefix}-stage"] = "A rule cannot move applicants into the stage they are in."
            return None
        return {"type": "move", "stage": target.public_id}
    if kind == "email":
        public_id = (action.template or "").strip()
        template = found.templates.get(public_id) if public_id else None
        if template is None:
            errors[f"{prefix}-template"] = (
                "Choose one of this org's email templates."
                if public_id
                else "Choose the email template to send."
            )
            return None
        return {"type": "email", "template": template.public_id}
    if kind == "webhook":
        event = (action.event or "").strip()
        problem = events.type_problem(event, custom=True)
        if problem:
            errors[f"{prefix}-event"] = problem
            return None
        return {"type": "webhook", "event": event}
    errors[f"{prefix}-type"] = "Choose move, email or webhook."
    return None


def check(
    opening: Opening, stage: Stage, data: RuleInput, found: Lookups | None = None
) -> CleanRule:
    """The rule cleaned and checked against this opening and stage; InvalidFields names every
    problem at once, by the form's field names (name, conditions-2-value, actions-0-stage)."""
    found = found or lookups(opening)
    errors: dict[str, str] = {}
    try:
        name = clean_name(data.name or "", "name", max_length=120)
    except Invalid as exc:
        errors["name"], name = exc.message, ""

    try:
        trigger = Trigger(data.trigger)
    except ValueError:
        errors["trigger"] = "Choose one of the triggers offered."
        trigger = None

    delay_minutes = _delay(data, errors) if trigger is Trigger.TIME_IN_STAGE else None
    if data.only_if_incomplete and trigger is not Trigger.TIME_IN_STAGE:
        errors["only_if_incomplete"] = (
            "Only a time rule can wait for the stage to be incomplete; untick this or choose "
            "“Time in stage reached”."
        )
    event_type = None
    if trigger is Trigger.EXTERNAL_EVENT:
        event_type = (data.event_type or "").strip()
        if problem := events.type_problem(event_type, custom=False):
            errors["event_type"] = problem

    match = data.match if data.match in ("all", "any") else None
    if match is None:
        errors["match"] = "Choose all or any."

    if len(data.conditions) > MAX_CONDITIONS:
        errors["conditions"] = f"Use at most {MAX_CONDITIONS} conditions."
    cleaned_conditions = []
    for i, condition in enumerate(data.conditions[:MAX_CONDITIONS]):
        if (cleaned := _check_condition(i, condition, found, errors)) is not None:
            cleaned_conditions.append((i, cleaned))
    if trigger is not None and match is not None:
        _never_fires(cleaned_conditions, match, trigger, stage, found, errors)

    if not data.actions:
        errors["actions"] = "Add at least one action: a rule without one does nothing."
    elif len(data.actions) > MAX_ACTIONS:
        errors["actions"] = f"Use at most {MAX_ACTIONS} actions."
    actions = []
    moves = 0
    for i, action in enumerate(data.actions[:MAX_ACTIONS]):
        cleaned = _check_action(i, action, stage, found, errors)
        if cleaned is None:
            continue
        if cleaned["type"] == "move":
            moves += 1
            if moves > 1:
                errors[f"actions-{i}-stage"] = (
                    "A rule moves applicants once: keep one move and remove the others."
                )
        actions.append(cleaned)

    if errors:
        raise InvalidFields(errors)
    return CleanRule(
        name=name,
        trigger=trigger.value,
        delay_minutes=delay_minutes,
        only_if_incomplete=bool(data.only_if_incomplete),
        event_type=event_type,
        match=match,
        conditions=[c for _, c in cleaned_conditions],
        actions=actions,
        enabled=bool(data.enabled),
    )


def input_of(rule: Rule) -> RuleInput:
    """A saved rule as the form shows it; the delay in its largest whole unit."""
    amount, unit = None, "days"
    if rule.delay_minutes:
        n, unit = in_unit(rule.delay_minutes)
        amount = str(n)
    return RuleInput(
        name=rule.name,
        trigger=rule.trigger,
        delay_amount=amount,
        delay_unit=unit,
        only_if_incomplete=rule.only_if_incomplete,
        event_type=rule.event_type or "",
        match=rule.match,
        conditions=[
            ConditionInput(
                question=c.get("question", ""),
                op=c.get("op", ""),
                value=c.get("value")
                if isinstance(c.get("value"), list)
                else _shown(c.get("value")),
            )
            for c in rule.conditions or []
        ],
        actions=[
            ActionInput(
                type=a.get("type", ""),
                stage=a.get("stage", ""),
                template=a.get("template", ""),
                event=a.get("event", ""),
            )
            for a in rule.actions or []
        ],
        enabled=rule.enabled,
    )


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# --- in words --------------------------------------------------------------------------------


def _when(rule: Rule | CleanRule) -> str:
    words = TRIGGERS.get(rule.trigger)
    if words is None:
        return "Never (unknown trigger)"
    text = words.when.format(delay=delay_text(rule.delay_minutes or 0), event=rule.event_type)
    if rule.trigger == Trigger.TIME_IN_STAGE and rule.only_if_incomplete:
        text += " if the stage is still not completed"
    return text


def action_text(action: dict[str, Any], found: Lookups) -> str:
    kind = action.get("type")
    if kind == "move":
        target = found.stages.get(action.get("stage", ""))
        return f"move to {target.name}" if target else "move to a deleted stage"
    if kind == "email":
        template = found.templates.get(action.get("template", ""))
        return f"send the email “{template.name}”" if template else "send a deleted email"
    if kind == "webhook":
        return f"emit webhook event {action.get('event', '')}"
    return "do nothing"


def _joined(parts: list[str], word: str) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return f"{', '.join(parts[:-1])} {word} {parts[-1]}"


def sentence(rule: Rule | CleanRule, found: Lookups) -> str:
    """A rule in one sentence: "When an applicant completes this stage, if “Licence” is Car,
    move to Final Review and send the email “Welcome”."."""
    text = _when(rule)
    if rule.conditions:
        described = [conditions.describe(c, found.questions) for c in rule.conditions]
        text += ", if " + _joined(described, "and" if rule.match == "all" else "or")
    actions = [action_text(a, found) for a in rule.actions or []]
    return f"{text}, {_joined(actions, 'and') or 'do nothing'}."


# --- reading and writing rules -----------------------------------------------------------------


def rules_of(stage: Stage) -> list[Rule]:
    return list(
        db.session.scalars(
            select(Rule).where(Rule.stage_id == stage.id).order_by(Rule.position, Rule.id)
        )
    )


def counts(opening: Opening) -> dict[int, int]:
    """Rules per stage id, for the editor's "Rules (2)" links."""
    return dict(
        db.session.execute(
            select(Rule.stage_id, func.count())
            .where(Rule.opening_id == opening.id)
            .group_by(Rule.stage_id)
        ).all()
    )


def get_rule(opening: Opening, rule_id: str) -> Rule:
    scope = select(Rule).where(Rule.org_id == opening.org_id, Rule.opening_id == opening.id)
    return by_public_id(scope, Rule, rule_id, "No such rule in this opening.")


def _apply(rule: Rule, clean: CleanRule) -> None:
    rule.name, rule.trigger = clean.name, clean.trigger
    rule.delay_minutes, rule.only_if_incomplete = clean.delay_minutes, clean.only_if_incomplete
    rule.event_type, rule.match = clean.event_type, clean.match
    rule.conditions, rule.actions = clean.conditions, clean.actions
    rule.enabled = clean.enabled
    rule.updated_at = utcnow()


def create(
    actor: Membership,
    opening_id: str,
    stage_id: str,
    data: RuleInput,
    found: Lookups | None = None,
) -> Rule:
    opening = editable(actor, opening_id)
    stage = get_stage(opening, stage_id)
    clean = check(opening, stage, data, found)
    last = db.session.scalar(select(func.max(Rule.position)).where(Rule.stage_id == stage.id))
    rule = Rule(
        org_id=actor.org_id,
        opening_id=opening.id,
        stage_id=stage.id,
        position=0 if last is None else last + 1,
    )
    _apply(rule, clean)
    db.session.add(rule)
    db.session.flush()
    rules.schedule(rule)
    record_event(
        "rule.created",
        actor,
        opening,
        rule=rule.public_id,
        stage=stage.public_id,
        name=rule.name,
        trigger=rule.trigger,
    )
    db.session.commit()
    return rule


def update(
    actor: Membership,
    opening_id: str,
    rule_id: str,
    data: RuleInput,
    found: Lookups | None = None,
) -> Rule:
    """Save a rule's new form. Its pending timers are set again from the new form (a changed
    delay moves them); the engine still checks the rule as it is when a timer comes due."""
    opening = editable(actor, opening_id)
    rule = get_rule(opening, rule_id)
    clean = check(opening, rule.stage, data, found)
    _apply(rule, clean)
    db.session.flush()
    rules.schedule(rule)
    record_event(
        "rule.updated",
        actor,
        opening,
        rule=rule.public_id,
        stage=rule.stage.public_id,
        name=rule.name,
        trigger=rule.trigger,
    )
    db.session.commit()
    return rule


def delete(actor: Membership, opening_id: str, rule_id: str) -> Rule:
    opening = editable(actor, opening_id)
    rule = get_rule(opening, rule_id)
    record_event(
        "rule.deleted",
        actor,
        opening,
        rule=rule.public_id,
        stage=rule.stage.public_id,
        name=rule.name,
    )
    # Its waiting timers go with it: timers.rule_id cascades on delete.
    db.session.delete(rule)
    db.session.commit()
    return rule


def _save_order(
    actor: Membership, opening: Opening, stage: Stage, stage_rules: list[Rule], order: list[str]
) -> list[Rule]:
    write_positions(stage_rules, order)
    record_event("rule.reordered", actor, opening, stage=stage.public_id, order=order)
    db.session.commit()
    return rules_of(stage)


def reorder(actor: Membership, opening_id: str, stage_id: str, rule_ids: list[str]) -> list[Rule]:
    opening = editable(actor, opening_id)
    stage = get_stage(opening, stage_id)
    return _save_order(actor, opening, stage, rules_of(stage), rule_ids)


def move(actor: Membership, opening_id: str, rule_id: str, direction: str) -> list[Rule]:
    """The keyboard and no-JS way to reorder: one place up or down."""
    opening = editable(actor, opening_id)
    rule = get_rule(opening, rule_id)
    stage_rules = rules_of(rule.stage)
    order = moved_one_place([r.public_id for r in stage_rules], rule.public_id, direction)
    return _save_order(actor, opening, rule.stage, stage_rules, order)


# --- the dry run -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DryRunRow:
    name: str
    public_id: str
    time_in_stage: str
    # When the rule would act on them: "now" for a time already reached, else a sentence.
    due: str
    due_now: bool


@dataclass(frozen=True)
class DryRun:
    count: int
    capped: bool
    rows: list[DryRunRow]
    actions: list[str]
    when: str
    sentence: str

    @property
    def count_text(self) -> str:
        return f"{DRY_RUN_CAP:,}+" if self.capped else f"{self.count:,}"

    @property
    def more(self) -> int:
        return max(0, self.count - len(self.rows))


def _due(clean: CleanRule, entered: datetime, completed: datetime | None, now: datetime):
    if clean.trigger == Trigger.TIME_IN_STAGE:
        at = entered + timedelta(minutes=clean.delay_minutes or 0)
        if at <= now:
            return "time reached: at the next sweep", True
        return f"in {duration(now, at)} ({at:%Y-%m-%d %H:%M} UTC)", False
    if clean.trigger == Trigger.STAGE_COMPLETED and completed is not None:
        # The trigger has passed for them; it comes again only if they re-enter the stage.
        return "completed the stage already: only if they enter it again", False
    return "", False


def dry_run(
    actor: Membership,
    opening_id: str,
    stage_id: str,
    data: RuleInput,
    found: Lookups | None = None,
) -> DryRun:
    """Whom the (unsaved) rule would act on among the active applicants now in the stage.

    Applicants are read DRY_RUN_CHUNK at a time by keyset on (rank, id), the board's index,
    with the answers of each chunk in one query; names stop at DRY_RUN_SHOWN and counting at
    DRY_RUN_CAP, so a stage of 100,000 applicants costs a bounded number of queries."""
    opening = editable(actor, opening_id)
    stage = get_stage(opening, stage_id)
    found = found or lookups(opening)
    clean = check(opening, stage, data, found)
    question_ids = [found.questions[c["question"]].id for c in clean.conditions]
    scope = select(
        Applicant.id,
        Applicant.public_id,
        Applicant.name,
        Applicant.rank,
        Applicant.entered_stage_at,
        Applicant.stage_completed_at,
    ).where(Applicant.stage_id == stage.id, Applicant.status == ApplicantStatus.ACTIVE)
    if clean.only_if_incomplete:
        scope = scope.where(Applicant.stage_completed_at.is_(None))
    now = utcnow()
    count, rows, after = 0, [], None
    while count <= DRY_RUN_CAP:
        query = scope
        if after is not None:
            rank, id_ = after
            query = query.where(
                or_(Applicant.rank > rank, and_(Applicant.rank == rank, Applicant.id > id_))
            )
        chunk = db.session.execute(
            query.order_by(Applicant.rank, Applicant.id).limit(DRY_RUN_CHUNK)
        ).all()
        if not chunk:
            break
        after = (chunk[-1].rank, chunk[-1].id)
        answers: dict[int, dict[int, Any]] = {}
        if question_ids:
            for applicant_id, question_id, value in db.session.execute(
                select(Answer.applicant_id, Answer.question_id, Answer.value).where(
                    Answer.applicant_id.in_([r.id for r in chunk]),
                    Answer.question_id.in_(question_ids),
                )
            ):
                answers.setdefault(applicant_id, {})[question_id] = value
        for row in chunk:
            if not conditions.matches(
                clean.conditions, clean.match, answers.get(row.id, {}), found.questions
            ):
                continue
            count += 1
            if count > DRY_RUN_CAP:
                break
            if len(rows) < DRY_RUN_SHOWN:
                due, due_now = _due(clean, row.entered_stage_at, row.stage_completed_at, now)
                rows.append(
                    DryRunRow(
                        name=row.name,
                        public_id=row.public_id,
                        time_in_stage=duration(row.entered_stage_at, now),
                        due=due,
                        due_now=due_now,
                    )
                )
        if len(chunk) < DRY_RUN_CHUNK:
            break
    capped = count > DRY_RUN_CAP
    return DryRun(
        count=min(count, DRY_RUN_CAP),
        capped=capped,
        rows=rows,
        actions=[action_text(a, found) for a in clean.actions],
        when=TRIGGERS[clean.trigger].here.format(event=clean.event_type),
        sentence=sentence(clean, found),
    )
