"""Openings, their stages and questions: reads for the pages, and every write of the editor."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from sqlalchemy import bindparam, func, select

from plutomi.extensions import db
from plutomi.models import (
    Answer,
    Applicant,
    ApplicantStatus,
    Membership,
    Opening,
    OpeningState,
    Org,
    Question,
    QuestionType,
    Role,
    Rule,
    Stage,
    utcnow,
)
from plutomi.ranks import between
from plutomi.services import moves, rules
from plutomi.services.errors import Invalid
from plutomi.services.events import Actor, record, record_applicant
from plutomi.services.fields import CONTROL_CHARACTER, clean_name, has_control_characters
from plutomi.services.lookups import by_public_id
from plutomi.services.orgs import require, slugify


@dataclass(frozen=True)
class OpeningSummary:
    opening: Opening
    applicants: int
    stages: int


def summaries(org: Org, archived: bool = False) -> list[OpeningSummary]:
    """The org's openings (archived ones, or the others) with their counts, in two grouped
    queries."""
    openings = list(
        db.session.scalars(
            select(Opening)
            .where(
                Opening.org_id == org.id,
                Opening.archived_at.is_not(None) if archived else Opening.archived_at.is_(None),
            )
            .order_by(Opening.created_at.desc())
        )
    )
    applicants = dict(
        db.session.execute(
            select(Applicant.opening_id, func.count())
            .where(Applicant.org_id == org.id)
            .group_by(Applicant.opening_id)
        ).all()
    )
    stages = dict(
        db.session.execute(
            select(Stage.opening_id, func.count())
            .where(Stage.org_id == org.id)
            .group_by(Stage.opening_id)
        ).all()
    )
    return [OpeningSummary(o, applicants.get(o.id, 0), stages.get(o.id, 0)) for o in openings]


def state_counts(summaries_: list[OpeningSummary]) -> dict[str, int]:
    counts = {state.value: 0 for state in OpeningState}
    for summary in summaries_:
        counts[summary.opening.state] += 1
    return counts


def stage_counts(opening: Opening) -> dict[int, int]:
    """Applicants per stage, counted by the database (a stage is never loaded whole)."""
    return dict(
        db.session.execute(
            select(Applicant.stage_id, func.count())
            .where(Applicant.opening_id == opening.id)
            .group_by(Applicant.stage_id)
        ).all()
    )


# --- the editor's writes -----------------------------------------------------------------
# Every function below checks the actor's role, finds each id inside the actor's org (and the
# opening it names), changes rows, records events and commits once.

OPENING_SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_OPTIONS = 200
TEXT_LIMIT = 100_000
# Answers shown on a board card, at most.
CARD_ANSWERS = 3


def _actor(actor: Membership) -> Actor:
    return Actor.user(actor.user)


def record_event(type: str, actor: Membership, opening: Opening, **payload) -> None:
    """An event about an opening (or its stages and questions), caused by a member."""
    record(type, actor=_actor(actor), org_id=actor.org_id, opening_id=opening.id, **payload)


def get_opening(actor: Membership, opening_id: str) -> Opening:
    scope = select(Opening).where(Opening.org_id == actor.org_id)
    return by_public_id(scope, Opening, opening_id, "No such opening.")


def get_stage(opening: Opening, stage_id: str) -> Stage:
    scope = select(Stage).where(Stage.org_id == opening.org_id, Stage.opening_id == opening.id)
    return by_public_id(scope, Stage, stage_id, "No such stage in this opening.")


def get_question(opening: Opening, question_id: str) -> Question:
    scope = select(Question).where(
        Question.org_id == opening.org_id,
        Question.opening_id == opening.id,
        Question.archived_at.is_(None),
    )
    return by_public_id(scope, Question, question_id, "No such question in this opening.")


def editable(actor: Membership, opening_id: str) -> Opening:
    require(actor, Role.RECRUITER)
    return get_opening(actor, opening_id)


def stages_of(opening: Opening) -> list[Stage]:
    return list(
        db.session.scalars(
            select(Stage).where(Stage.opening_id == opening.id).order_by(Stage.position, Stage.id)
        )
    )


def questions_by_stage(opening: Opening) -> dict[int, list[Question]]:
    """The live (not archived) questions of every stage, in order, in one query."""
    grouped: dict[int, list[Question]] = {}
    for question in db.session.scalars(
        select(Question)
        .where(Question.opening_id == opening.id, Question.archived_at.is_(None))
        .order_by(Question.stage_id, Question.position, Question.id)
    ):
        grouped.setdefault(question.stage_id, []).append(question)
    return grouped


# Built once: every application runs it.
_STAGE_QUESTIONS = (
    select(Question)
    .where(Question.stage_id == bindparam("stage_id"), Question.archived_at.is_(None))
    .order_by(Question.position, Question.id)
)


def stage_questions(stage: Stage) -> list[Question]:
    """The questions a stage asks now, in order (archived ones stay only for old answers)."""
    return list(db.session.scalars(_STAGE_QUESTIONS, {"stage_id": stage.id}))


def _has_answers(question: Question) -> bool:
    return (
        db.session.scalar(select(Answer.id).where(Answer.question_id == question.id).limit(1))
        is not None
    )


# --- openings ------------------------------------------------------------------------------


def _opening_slug_taken(org_id: int, slug: str, opening: Opening | None = None) -> bool:
    taken = db.session.scalar(
        select(Opening.id).where(Opening.org_id == org_id, Opening.slug == slug)
    )
    return taken is not None and (opening is None or taken != opening.id)


def check_opening_slug(org_id: int, slug: str, opening: Opening | None = None) -> str:
    slug = slug.strip().lower()
    if not OPENING_SLUG_RE.match(slug):
        raise Invalid(
            "Use 1 to 63 lower-case letters, digits and dashes; no dash first or last.", "slug"
        )
    if _opening_slug_taken(org_id, slug, opening):
        raise Invalid("Another opening of this org uses this slug already.", "slug")
    return slug


def _free_opening_slug(org_id: int, name: str) -> str:
    base = slugify(name)
    base = "opening" if base == "org" else base
    slug, n = base, 1
    while _opening_slug_taken(org_id, slug):
        n += 1
        slug = f"{base[: 63 - len(str(n)) - 1].rstrip('-')}-{n}"
    return slug


def _clean_description(text: str) -> str:
    text = text.replace("\r\n", "\n").strip()
    if len(text) > TEXT_LIMIT:
        raise Invalid(f"Use at most {TEXT_LIMIT:,} characters.", "description")
    if any(has_control_characters(line) for line in text.split("\n")):
        raise Invalid(CONTROL_CHARACTER, "description")
    return text


def create_opening(actor: Membership, name: str, slug: str | None = None) -> Opening:
    """A draft opening; its slug comes from the name unless one is given."""
    require(actor, Role.RECRUITER)
    name = clean_name(name, "name", max_length=200)
    slug = (
        check_opening_slug(actor.org_id, slug)
        if slug and slug.strip()
        else _free_opening_slug(actor.org_id, name)
    )
    opening = Opening(org_id=actor.org_id, name=name, slug=slug, state=OpeningState.DRAFT)
    db.session.add(opening)
    db.session.flush()
    record_event(
        "opening.created",
        actor,
        opening,
        name=name,
        slug=slug,
    )
    db.session.commit()
    return opening


def update_opening(
    actor: Membership, opening_id: str, name: str, slug: str, description: str
) -> Opening:
    opening = editable(actor, opening_id)
    opening.name = clean_name(name, "name", max_length=200)
    opening.slug = check_opening_slug(actor.org_id, slug, opening)
    opening.description = _clean_description(description)
    record_event(
        "opening.updated",
        actor,
        opening,
        name=opening.name,
        slug=opening.slug,
    )
    db.session.commit()
    return opening


def _set_state(actor: Membership, opening_id: str, allowed_from: set[str], to: str) -> Opening:
    opening = editable(actor, opening_id)
    if opening.state not in allowed_from:
        raise Invalid(f"A {opening.state} opening cannot become {to}.", "state")
    if to == OpeningState.PUBLISHED and not db.session.scalar(
        select(Stage.id).where(Stage.opening_id == opening.id).limit(1)
    ):
        raise Invalid("Add a stage before publishing: applicants start in the first.", "state")
    previous, opening.state = opening.state, to
    record_event(
        f"opening.{to}",
        actor,
        opening,
        previous_state=previous,
    )
    db.session.commit()
    return opening


def publish(actor: Membership, opening_id: str) -> Opening:
    return _set_state(actor, opening_id, {OpeningState.DRAFT}, OpeningState.PUBLISHED)


def close(actor: Membership, opening_id: str) -> Opening:
    return _set_state(actor, opening_id, {OpeningState.PUBLISHED}, OpeningState.CLOSED)


def reopen(actor: Membership, opening_id: str) -> Opening:
    return _set_state(actor, opening_id, {OpeningState.CLOSED}, OpeningState.PUBLISHED)


def archive(actor: Membership, opening_id: str) -> Opening:
    opening = editable(actor, opening_id)
    if opening.archived_at is None:
        opening.archived_at = utcnow()
        record_event("opening.archived", actor, opening)
    db.session.commit()
    return opening


def unarchive(actor: Membership, opening_id: str) -> Opening:
    opening = editable(actor, opening_id)
    if opening.archived_at is not None:
        opening.archived_at = None
        record_event("opening.unarchived", actor, opening)
    db.session.commit()
    return opening


def clone(actor: Membership, opening_id: str, name: str) -> Opening:
    """A draft copy with the same stages, live questions (same keys) and rules, and no
    applicants. The copy's stages and questions get new public ids, so its rules are remapped
    to them; a rule's reference to an archived question (not copied) stays as it was, so the
    condition still never matches."""
    source = editable(actor, opening_id)
    name = clean_name(name, "name", max_length=200)
    copy = Opening(
        org_id=actor.org_id,
        name=name,
        slug=_free_opening_slug(actor.org_id, name),
        description=source.description,
        state=OpeningState.DRAFT,
    )
    db.session.add(copy)
    db.session.flush()
    questions = questions_by_stage(source)
    stage_pairs: list[tuple[Stage, Stage]] = []
    copied: list[tuple[Question, Question]] = []
    for stage in stages_of(source):
        new_stage = Stage(
            org_id=actor.org_id, opening_id=copy.id, name=stage.name, position=stage.position
        )
        db.session.add(new_stage)
        db.session.flush()
        stage_pairs.append((stage, new_stage))
        for q in questions.get(stage.id, []):
            new_question = Question(
                org_id=actor.org_id,
                opening_id=copy.id,
                stage_id=new_stage.id,
                key=q.key,
                type=q.type,
                label=q.label,
                help_text=q.help_text,
                required=q.required,
                show_on_card=q.show_on_card,
                options=list(q.options or []),
                min_value=q.min_value,
                max_value=q.max_value,
                position=q.position,
            )
            db.session.add(new_question)
            copied.append((q, new_question))
    db.session.flush()  # the new questions' public ids, for the rules
    _clone_rules(source, copy, stage_pairs, copied)
    record_event(
        "opening.cloned",
        actor,
        copy,
        source_opening=source.public_id,
        name=name,
    )
    db.session.commit()
    return copy


def _clone_rules(
    source: Opening,
    copy: Opening,
    stage_pairs: list[tuple[Stage, Stage]],
    copied: list[tuple[Question, Question]],
) -> None:
    """Copy every rule of source's stages onto the copy's, naming the copy's stages and
    questions; email templates belong to the org, so their ids stay."""
    new_stage_ids = {old.id: new.id for old, new in stage_pairs}
    stage_ids = {old.public_id: new.public_id for old, new in stage_pairs}
    question_ids = {old.public_id: new.public_id for old, new in copied}
    for rule in db.session.scalars(
        select(Rule).where(Rule.opening_id == source.id).order_by(Rule.stage_id, Rule.position)
    ):
        db.session.add(
            Rule(
                org_id=copy.org_id,
                opening_id=copy.id,
                stage_id=new_stage_ids[rule.stage_id],
                position=rule.position,
                name=rule.name,
                trigger=rule.trigger,
                delay_minutes=rule.delay_minutes,
                only_if_incomplete=rule.only_if_incomplete,
                event_type=rule.event_type,
                match=rule.match,
                conditions=[
                    {**c, "question": question_ids.get(c.get("question"), c.get("question"))}
                    for c in rule.conditions or []
                ],
                actions=[
                    {**a, "stage": stage_ids.get(a.get("stage"), a.get("stage"))}
                    if a.get("type") == "move"
                    else dict(a)
                    for a in rule.actions or []
                ],
                enabled=rule.enabled,
            )
        )


# --- stages --------------------------------------------------------------------------------


def _stage_name(opening: Opening, name: str, stage: Stage | None = None) -> str:
    name = clean_name(name, "name", max_length=120)
    same = db.session.scalar(
        select(Stage.id).where(
            Stage.opening_id == opening.id, func.lower(Stage.name) == name.lower()
        )
    )
    if same is not None and (stage is None or same != stage.id):
        raise Invalid("This opening has a stage of that name already.", "name")
    return name


def add_stage(actor: Membership, opening_id: str, name: str) -> Stage:
    opening = editable(actor, opening_id)
    name = _stage_name(opening, name)
    last = db.session.scalar(select(func.max(Stage.position)).where(Stage.opening_id == opening.id))
    stage = Stage(
        org_id=actor.org_id,
        opening_id=opening.id,
        name=name,
        position=0 if last is None else last + 1,
    )
    db.session.add(stage)
    db.session.flush()
    record_event(
        "stage.added",
        actor,
        opening,
        stage=stage.public_id,
        name=name,
    )
    db.session.commit()
    return stage


def rename_stage(actor: Membership, opening_id: str, stage_id: str, name: str) -> Stage:
    opening = editable(actor, opening_id)
    stage = get_stage(opening, stage_id)
    previous, stage.name = stage.name, _stage_name(opening, name, stage)
    record_event(
        "stage.renamed",
        actor,
        opening,
        stage=stage.public_id,
        name=stage.name,
        previous_name=previous,
    )
    db.session.commit()
    return stage


def write_positions(rows: list, ordered_ids: list[str]) -> None:
    """Give rows the positions 0..n-1 in the order of ordered_ids, which must name each once."""
    by_id = {row.public_id: row for row in rows}
    if len(ordered_ids) != len(by_id) or set(ordered_ids) != set(by_id):
        raise Invalid("The list changed meanwhile. Reload the page and try again.", "order")
    for position, public_id in enumerate(ordered_ids):
        row = by_id[public_id]
        if row.position != position:
            row.position = position


def moved_one_place(ids: list[str], public_id: str, direction: str) -> list[str]:
    """ids with public_id moved one place up or down (unchanged at either end)."""
    if direction not in ("up", "down"):
        raise Invalid("Move up or down.", "direction")
    i = ids.index(public_id)
    j = i - 1 if direction == "up" else i + 1
    if 0 <= j < len(ids):
        ids[i], ids[j] = ids[j], ids[i]
    return ids


def reorder_stages(actor: Membership, opening_id: str, stage_ids: list[str]) -> list[Stage]:
    opening = editable(actor, opening_id)
    stages = stages_of(opening)
    write_positions(stages, stage_ids)
    record_event(
        "stage.reordered",
        actor,
        opening,
        order=stage_ids,
    )
    db.session.commit()
    return stages_of(opening)


def move_stage(actor: Membership, opening_id: str, stage_id: str, direction: str) -> list[Stage]:
    """The keyboard and no-JS way to reorder: one place up or down."""
    opening = editable(actor, opening_id)
    stage = get_stage(opening, stage_id)
    ids = [s.public_id for s in stages_of(opening)]
    return reorder_stages(actor, opening_id, moved_one_place(ids, stage.public_id, direction))


def _move_applicants(
    actor: Membership, opening: Opening, source: Stage, target: Stage
) -> list[Applicant]:
    """Every applicant of source to the end of target, each move an applicant.moved event.
    Returns the active ones, whose entry rules the caller runs once source is gone."""
    last = moves.last_rank(target.id)
    moved = []
    now = utcnow()
    for applicant in db.session.scalars(
        select(Applicant).where(Applicant.stage_id == source.id).order_by(Applicant.rank)
    ):
        last = between(last, None)
        applicant.stage_id = target.id
        applicant.rank = last
        applicant.entered_stage_at = now
        applicant.version += 1
        applicant.stage_completed_at = None
        applicant.stage_entry += 1
        record_applicant(
            "applicant.moved",
            applicant,
            actor=_actor(actor),
            **moves.stage_fields(source, target),
            reason="stage_deleted",
        )
        if applicant.status == ApplicantStatus.ACTIVE:
            moved.append(applicant)
    return moved


def applicant_count(stage: Stage) -> int:
    return db.session.scalar(
        select(func.count()).select_from(Applicant).where(Applicant.stage_id == stage.id)
    )


def delete_stage(
    actor: Membership, opening_id: str, stage_id: str, move_to: str | None = None
) -> int:
    """Delete a stage; its applicants go to the stage move_to names. Questions with answers
    are kept, archived, on that stage (or the nearest one) so no answer is lost.
    Returns how many applicants moved."""
    opening = editable(actor, opening_id)
    stage = get_stage(opening, stage_id)
    others = [s for s in stages_of(opening) if s.id != stage.id]
    if not others and opening.state == OpeningState.PUBLISHED:
        raise Invalid("A published opening needs at least one stage.", "stage")
    target = None
    if move_to:
        target = get_stage(opening, move_to)
        if target.id == stage.id:
            raise Invalid("Choose another stage for its applicants.", "move_to")
    count = applicant_count(stage)
    if count and target is None:
        raise Invalid(
            f"{count} applicant{'s' if count != 1 else ''} are in this stage: "
            "choose the stage they move to.",
            "move_to",
        )
    moved = _move_applicants(actor, opening, stage, target) if count else []
    keeper = target or (
        max(
            (s for s in others if s.position <= stage.position),
            key=lambda s: s.position,
            default=None,
        )
        or (others[0] if others else None)
    )
    for question in db.session.scalars(select(Question).where(Question.stage_id == stage.id)):
        if _has_answers(question):
            if keeper is None:
                raise Invalid(
                    "Questions of this stage have answers; add another stage to keep them.",
                    "stage",
                )
            question.stage_id = keeper.id
            question.archived_at = question.archived_at or utcnow()
        else:
            db.session.delete(question)
    db.session.flush()
    record_event(
        "stage.deleted",
        actor,
        opening,
        stage=stage.public_id,
        name=stage.name,
        applicants_moved=count,
        moved_to=target.name if target else None,
    )
    db.session.delete(stage)
    db.session.flush()
    for applicant in moved:
        # Rules fire however an applicant enters a stage, this way too; only now, so a rule
        # moving them back into the deleted stage finds it gone and is skipped.
        rules.entered(applicant, target, entry=applicant.stage_entry)
    db.session.commit()
    return count


# --- questions -----------------------------------------------------------------------------


@dataclass
class QuestionInput:
    """What the question form sends; the service cleans and checks every part."""

    label: str
    type: str = QuestionType.SHORT_TEXT.value
    key: str = ""
    required: bool = False
    show_on_card: bool = False
    help_text: str = ""
    options: list[str] = field(default_factory=list)
    min_value: float | None = None
    max_value: float | None = None


def key_from_label(label: str) -> str:
    key = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")[:64].strip("_")
    if not key or not key[0].isalpha():
        key = f"q_{key}"[:64].strip("_")
    return key


def _key_taken(opening: Opening, key: str, question: Question | None = None) -> Question | None:
    other = db.session.scalar(
        select(Question).where(Question.opening_id == opening.id, Question.key == key)
    )
    return other if other is not None and (question is None or other.id != question.id) else None


def _check_key(opening: Opening, data: QuestionInput, question: Question | None) -> str:
    explicit = data.key.strip().lower()
    if not explicit:
        if question is not None:
            return question.key
        base = key_from_label(data.label)
        key, n = base, 1
        while _key_taken(opening, key):
            n += 1
            key = f"{base[: 64 - len(str(n)) - 1]}_{n}"
        return key
    if not KEY_RE.match(explicit):
        raise Invalid(
            "Use up to 64 lower-case letters, digits and underscores, starting with a letter.",
            "key",
        )
    if other := _key_taken(opening, explicit, question):
        where = " (an archived one)" if other.archived_at else ""
        raise Invalid(f"Another question of this opening{where} uses this key.", "key")
    return explicit


def _clean_options(kind: QuestionType, options: list[str]) -> list[str]:
    if not kind.has_options:
        return []
    cleaned = [" ".join(o.split()) for o in options]
    cleaned = [o for o in cleaned if o]
    if len(cleaned) < 2:
        raise Invalid("Give at least 2 options, one per line.", "options")
    if len(cleaned) > MAX_OPTIONS:
        raise Invalid(f"Give at most {MAX_OPTIONS} options.", "options")
    seen: set[str] = set()
    for option in cleaned:
        if has_control_characters(option):
            raise Invalid(CONTROL_CHARACTER, "options")
        if len(option) > 200:
            raise Invalid("Keep each option to at most 200 characters.", "options")
        if option.casefold() in seen:
            raise Invalid(f"“{option}” is listed twice.", "options")
        seen.add(option.casefold())
    return cleaned


def _clean_range(kind: QuestionType, low: float | None, high: float | None) -> tuple:
    if kind not in (QuestionType.NUMBER, QuestionType.SHORT_TEXT, QuestionType.LONG_TEXT):
        return None, None
    for value, name in ((low, "min_value"), (high, "max_value")):
        if value is None:
            continue
        if not math.isfinite(value) or abs(value) > 1e15:
            raise Invalid("Enter a number.", name)
        if kind != QuestionType.NUMBER and (value < 0 or value != int(value)):
            raise Invalid("A length is a whole number of 0 or more.", name)
    if low is not None and high is not None and low > high:
        raise Invalid("The minimum is greater than the maximum.", "min_value")
    return low, high


def _apply(question: Question, opening: Opening, data: QuestionInput) -> None:
    try:
        kind = QuestionType(data.type)
    except ValueError:
        raise Invalid("Choose one of the types offered.", "type") from None
    label = clean_name(data.label, "label", max_length=300)
    help_text = _clean_description(data.help_text)
    if len(help_text) > 2000:
        raise Invalid("Use at most 2,000 characters.", "help_text")
    existing = question if question.id is not None else None
    key = _check_key(opening, QuestionInput(**{**data.__dict__, "label": label}), existing)
    options = _clean_options(kind, data.options)
    low, high = _clean_range(kind, data.min_value, data.max_value)
    if existing is not None and _has_answers(existing):
        if key != question.key:
            raise Invalid("This question has answers, so its key cannot change.", "key")
        if kind != question.type_enum:
            raise Invalid(
                "This question has answers, so its type cannot change. Add a new question.",
                "type",
            )
    if data.show_on_card and not question.show_on_card:
        shown = db.session.scalar(
            select(func.count())
            .select_from(Question)
            .where(
                Question.opening_id == opening.id,
                Question.show_on_card.is_(True),
                Question.archived_at.is_(None),
            )
        )
        if shown >= CARD_ANSWERS:
            raise Invalid(
                f"At most {CARD_ANSWERS} questions show on the board's cards; "
                "untick another first.",
                "show_on_card",
            )
    question.show_on_card = data.show_on_card
    question.label, question.key, question.type = label, key, kind.value
    question.help_text, question.required, question.options = help_text, data.required, options
    question.min_value, question.max_value = low, high


def add_question(
    actor: Membership, opening_id: str, stage_id: str, data: QuestionInput
) -> Question:
    opening = editable(actor, opening_id)
    stage = get_stage(opening, stage_id)
    last = db.session.scalar(
        select(func.max(Question.position)).where(Question.stage_id == stage.id)
    )
    question = Question(
        org_id=actor.org_id,
        opening_id=opening.id,
        stage_id=stage.id,
        position=0 if last is None else last + 1,
    )
    with db.session.no_autoflush:
        _apply(question, opening, data)
    db.session.add(question)
    db.session.flush()
    record_event(
        "question.added",
        actor,
        opening,
        stage=stage.public_id,
        question=question.public_id,
        key=question.key,
    )
    db.session.commit()
    return question


def update_question(
    actor: Membership, opening_id: str, question_id: str, data: QuestionInput
) -> Question:
    opening = editable(actor, opening_id)
    question = get_question(opening, question_id)
    with db.session.no_autoflush:
        _apply(question, opening, data)
    record_event(
        "question.updated",
        actor,
        opening,
        question=question.public_id,
        key=question.key,
    )
    db.session.commit()
    return question


def delete_question(actor: Membership, opening_id: str, question_id: str) -> bool:
    """Delete a question, or archive it when it has answers. True when it was archived."""
    opening = editable(actor, opening_id)
    question = get_question(opening, question_id)
    archived = _has_answers(question)
    record_event(
        "question.archived" if archived else "question.deleted",
        actor,
        opening,
        question=question.public_id,
        key=question.key,
    )
    if archived:
        question.archived_at = utcnow()
    else:
        db.session.delete(question)
    db.session.commit()
    return archived


def reorder_questions(
    actor: Membership, opening_id: str, stage_id: str, question_ids: list[str]
) -> list[Question]:
    opening = editable(actor, opening_id)
    stage = get_stage(opening, stage_id)
    questions = stage_questions(stage)
    write_positions(questions, question_ids)
    record_event(
        "question.reordered",
        actor,
        opening,
        stage=stage.public_id,
        order=question_ids,
    )
    db.session.commit()
    return stage_questions(stage)


def move_question(
    actor: Membership, opening_id: str, question_id: str, direction: str
) -> list[Question]:
    opening = editable(actor, opening_id)
    question = get_question(opening, question_id)
    stage = question.stage
    ids = [q.public_id for q in stage_questions(stage)]
    return reorder_questions(
        actor, opening_id, stage.public_id, moved_one_place(ids, question.public_id, direction)
    )


def archived_count(org: Org) -> int:
    return db.session.scalar(
        select(func.count())
        .select_from(Opening)
        .where(Opening.org_id == org.id, Opening.archived_at.is_not(None))
    )
