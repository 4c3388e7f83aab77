"""Openings of the current org: the list, the overview, and the editor of stages and questions.

Every write calls one function of plutomi.services.openings. An htmx request gets the section
it changed (partials start with "_"), re-rendered with any error next to its field and a 422;
a plain form post gets a redirect back to the page, or the whole page with the error.
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for

from plutomi import markdown, tenancy
from plutomi.forms import as_member, show_error
from plutomi.htmx import redirect_to
from plutomi.models import Opening, Role
from plutomi.openings import rule_form
from plutomi.openings.forms import CloneForm, NewOpeningForm, OpeningForm, QuestionForm, StageForm
from plutomi.services import applicants, openings, rule_editing
from plutomi.services.errors import InvalidFields, ServiceError
from plutomi.tenancy import current_membership, org_required

bp = Blueprint("openings", __name__)
bp.add_app_template_filter(markdown.render, "markdown")
bp.add_app_template_filter(markdown.excerpt, "excerpt")

RECRUITER = Role.RECRUITER


def _partial_wanted() -> bool:
    return bool(request.htmx) and not request.htmx.boosted


# --- the list ------------------------------------------------------------------------------


def _index_page(form: NewOpeningForm | None = None, status: int = 200):
    org = tenancy.current_org()
    show_archived = request.args.get("archived") == "1"
    rows = openings.summaries(org, archived=show_archived)
    current = rows if not show_archived else openings.summaries(org)
    return render_template(
        "openings/index.html",
        rows=rows,
        state_counts=openings.state_counts(current),
        archived_count=openings.archived_count(org),
        show_archived=show_archived,
        form=form or NewOpeningForm(formdata=None),
    ), status


@bp.get("/openings")
@org_required()
def index():
    return _index_page()


@bp.post("/openings")
@org_required(RECRUITER)
def create():
    form = NewOpeningForm()
    if form.validate_on_submit():
        opening, error = as_member(openings.create_opening, form.name.data)
        if error is None:
            flash(f"{opening.name} is ready as a draft. Add its stages.", "success")
            return redirect_to(url_for("openings.edit", opening_id=opening.public_id))
        show_error(form, error)
    return _index_page(form, 422)


# --- the overview --------------------------------------------------------------------------


@bp.get("/openings/<pid:opening_id>")
@org_required()
def show(opening_id: str):
    opening = tenancy.get_or_404(Opening, opening_id)
    return render_template(
        "openings/show.html",
        opening=opening,
        # Each stage with its count and first applicants (one windowed query for all stages).
        columns=applicants.overview(opening),
        questions=openings.questions_by_stage(opening),
        membership=current_membership(),
    )


# --- the editor ----------------------------------------------------------------------------


def _opening(opening_id: str) -> Opening:
    return tenancy.get_or_404(Opening, opening_id)


def _editor(opening: Opening, section: str | None = None, status: int = 200, **extra):
    """The editor page, or for htmx the one section (`opening` or `stages`) that changed."""
    context = {
        "opening": opening,
        "stages": openings.stages_of(opening),
        "questions": openings.questions_by_stage(opening),
        "counts": openings.stage_counts(opening),
        "rule_counts": rule_editing.counts(opening),
        "opening_form": extra.pop("opening_form", None) or OpeningForm(obj=opening, formdata=None),
        "clone_form": extra.pop("clone_form", None)
        or CloneForm(formdata=None, clone_name=f"{opening.name} (copy)"),
        "stage_form": extra.pop("stage_form", None) or StageForm(formdata=None),
        "stage_errors": {},
        "stages_error": None,
        "question_form": None,
        "question_for": None,
        **extra,
    }
    template = (
        f"openings/_{section}.html" if section and _partial_wanted() else "openings/edit.html"
    )
    return render_template(template, **context), status


def _done(opening: Opening, section: str, message: str | None = None, anchor: str = "", stage=None):
    """After a change: for htmx the section it changed, else a redirect back to its page. The
    `rules` section is the rules page of `stage`; the others are the editor's."""
    if message:
        flash(message, "success")
    if section == "rules":
        if _partial_wanted():
            return _rules_page(opening, stage)
        url = url_for("openings.rules", opening_id=opening.public_id, stage_id=stage.public_id)
    else:
        if _partial_wanted():
            return _editor(opening, section)
        url = url_for("openings.edit", opening_id=opening.public_id)
    return redirect(url + anchor)


@bp.route("/openings/<pid:opening_id>/edit", methods=["GET", "POST"])
@org_required(RECRUITER)
def edit(opening_id: str):
    opening = _opening(opening_id)
    if request.method == "GET":
        return _editor(opening)
    form = OpeningForm()
    if form.validate_on_submit():
        _, error = as_member(
            openings.update_opening,
            opening.public_id,
            form.name.data,
            form.slug.data,
            form.description.data or "",
        )
        if error is None:
            return _done(opening, "opening", "Opening saved.")
        show_error(form, error)
    return _editor(opening, "opening", 422, opening_form=form)


def _state_action(opening_id: str, action, message: str):
    opening = _opening(opening_id)
    _, error = as_member(action, opening.public_id)
    if error is not None:
        form = OpeningForm(obj=opening, formdata=None)
        form.form_errors.append(error.message)
        return _editor(opening, "opening", 422, opening_form=form)
    return _done(opening, "opening", message)


@bp.post("/openings/<pid:opening_id>/publish")
@org_required(RECRUITER)
def publish(opening_id: str):
    return _state_action(opening_id, openings.publish, "Published: the opening takes applicants.")


@bp.post("/openings/<pid:opening_id>/close")
@org_required(RECRUITER)
def close(opening_id: str):
    return _state_action(opening_id, openings.close, "Closed: no new applicants.")


@bp.post("/openings/<pid:opening_id>/reopen")
@org_required(RECRUITER)
def reopen(opening_id: str):
    return _state_action(opening_id, openings.reopen, "Reopened: the opening takes applicants.")


@bp.post("/openings/<pid:opening_id>/archive")
@org_required(RECRUITER)
def archive(opening_id: str):
    return _state_action(opening_id, openings.archive, "Archived: hidden from the list.")


@bp.post("/openings/<pid:opening_id>/unarchive")
@org_required(RECRUITER)
def unarchive(opening_id: str):
    return _state_action(opening_id, openings.unarchive, "Back in the list.")


@bp.post("/openings/<pid:opening_id>/clone")
@org_required(RECRUITER)
def clone(opening_id: str):
    opening = _opening(opening_id)
    form = CloneForm()
    if form.validate_on_submit():
        copy, error = as_member(openings.clone, opening.public_id, form.clone_name.data)
        if error is None:
            flash(f"{copy.name} is a draft copy of {opening.name}.", "success")
            return redirect_to(url_for("openings.edit", opening_id=copy.public_id))
        error.field = "clone_name" if error.field == "name" else error.field
        show_error(form, error)
    return _editor(opening, "opening", 422, clone_form=form)


# --- stages --------------------------------------------------------------------------------


def _order(name: str) -> list[str]:
    """The new order: repeated fields (forms, tests) or one comma-separated `order` (the drag)."""
    if "order" in request.form:
        return [part for part in request.form["order"].split(",") if part]
    return request.form.getlist(name)


# The fields a stage's own forms show next to themselves: the rename's name, the delete's
# move_to (and its "stage" refusals). Anything else, such as a stale order or a bad
# direction, is about the list and shows above it, not in the delete panel.
_STAGE_FORM_FIELDS = {"name", "move_to", "stage"}


def _stage_failed(opening: Opening, stage_id: str, error: ServiceError):
    if error.field in _STAGE_FORM_FIELDS:
        return _editor(opening, "stages", 422, stage_errors={stage_id: error})
    return _editor(opening, "stages", 422, stages_error=error.message)


@bp.post("/openings/<pid:opening_id>/stages")
@org_required(RECRUITER)
def add_stage(opening_id: str):
    opening = _opening(opening_id)
    form = StageForm()
    if form.validate_on_submit():
        stage, error = as_member(openings.add_stage, opening.public_id, form.stage_name.data)
        if error is None:
            return _done(
                opening, "stages", f"Stage {stage.name} added.", f"#stage-{stage.public_id}"
            )
        error.field = "stage_name" if error.field == "name" else error.field
        show_error(form, error)
    return _editor(opening, "stages", 422, stage_form=form)


@bp.post("/openings/<pid:opening_id>/stages/order")
@org_required(RECRUITER)
def reorder_stages(opening_id: str):
    opening = _opening(opening_id)
    _, error = as_member(openings.reorder_stages, opening.public_id, _order("stage"))
    if error is not None:
        return _editor(opening, "stages", 422, stages_error=error.message)
    return _done(opening, "stages")


@bp.post("/openings/<pid:opening_id>/stages/<pid:stage_id>/move")
@org_required(RECRUITER)
def move_stage(opening_id: str, stage_id: str):
    opening = _opening(opening_id)
    direction = request.form.get("direction", "")
    _, error = as_member(openings.move_stage, opening.public_id, stage_id, direction)
    if error is not None:
        return _stage_failed(opening, stage_id, error)
    return _done(opening, "stages", anchor=f"#stage-{stage_id}")


@bp.post("/openings/<pid:opening_id>/stages/<pid:stage_id>/rename")
@org_required(RECRUITER)
def rename_stage(opening_id: str, stage_id: str):
    opening = _opening(opening_id)
    _, error = as_member(
        openings.rename_stage, opening.public_id, stage_id, request.form.get("name", "")
    )
    if error is not None:
        return _stage_failed(opening, stage_id, error)
    return _done(opening, "stages", "Stage renamed.", f"#stage-{stage_id}")


@bp.post("/openings/<pid:opening_id>/stages/<pid:stage_id>/delete")
@org_required(RECRUITER)
def delete_stage(opening_id: str, stage_id: str):
    opening = _opening(opening_id)
    move_to = request.form.get("move_to") or None
    moved, error = as_member(openings.delete_stage, opening.public_id, stage_id, move_to)
    if error is not None:
        return _stage_failed(opening, stage_id, error)
    message = "Stage deleted." + (
        f" {moved} applicant{'s' if moved != 1 else ''} moved." if moved else ""
    )
    return _done(opening, "stages", message, "#stages")


# --- questions -----------------------------------------------------------------------------


def _question_form_page(opening: Opening, form: QuestionForm, target: tuple, status: int = 200):
    return _editor(opening, "stages", status, question_form=form, question_for=target)


@bp.route("/openings/<pid:opening_id>/stages/<pid:stage_id>/questions", methods=["GET", "POST"])
@org_required(RECRUITER)
def add_question(opening_id: str, stage_id: str):
    opening = _opening(opening_id)
    stage, _ = as_member(lambda _m: openings.get_stage(opening, stage_id))
    if request.method == "GET":
        return _question_form_page(opening, QuestionForm(formdata=None), ("new", stage.public_id))
    form = QuestionForm()
    if form.validate_on_submit():
        _, error = as_member(
            openings.add_question, opening.public_id, stage.public_id, form.to_input()
        )
        if error is None:
            return _done(
                opening, "stages", f"Question added to {stage.name}.", f"#stage-{stage.public_id}"
            )
        show_error(form, error)
    return _question_form_page(opening, form, ("new", stage.public_id), 422)


@bp.route("/openings/<pid:opening_id>/questions/<pid:question_id>/edit", methods=["GET", "POST"])
@org_required(RECRUITER)
def edit_question(opening_id: str, question_id: str):
    opening = _opening(opening_id)
    question, _ = as_member(lambda _m: openings.get_question(opening, question_id))
    if request.method == "GET":
        form = QuestionForm(formdata=None)
        form.fill(question)
        return _question_form_page(opening, form, ("edit", question.public_id))
    form = QuestionForm()
    if form.validate_on_submit():
        _, error = as_member(
            openings.update_question, opening.public_id, question_id, form.to_input()
        )
        if error is None:
            return _done(opening, "stages", "Question saved.", f"#question-{question_id}")
        show_error(form, error)
    return _question_form_page(opening, form, ("edit", question.public_id), 422)


@bp.post("/openings/<pid:opening_id>/questions/<pid:question_id>/delete")
@org_required(RECRUITER)
def delete_question(opening_id: str, question_id: str):
    opening = _opening(opening_id)
    archived, _ = as_member(openings.delete_question, opening.public_id, question_id)
    message = "Question archived: it keeps its answers." if archived else "Question deleted."
    return _done(opening, "stages", message)


@bp.post("/openings/<pid:opening_id>/questions/<pid:question_id>/move")
@org_required(RECRUITER)
def move_question(opening_id: str, question_id: str):
    opening = _opening(opening_id)
    direction = request.form.get("direction", "")
    _, error = as_member(openings.move_question, opening.public_id, question_id, direction)
    if error is not None:
        return _editor(opening, "stages", 422, stages_error=error.message)
    return _done(opening, "stages", anchor=f"#question-{question_id}")


@bp.post("/openings/<pid:opening_id>/stages/<pid:stage_id>/questions/order")
@org_required(RECRUITER)
def reorder_questions(opening_id: str, stage_id: str):
    opening = _opening(opening_id)
    ids = _order("question")
    _, error = as_member(openings.reorder_questions, opening.public_id, stage_id, ids)
    if error is not None:
        return _stage_failed(opening, stage_id, error)
    return _done(opening, "stages")


# --- rules of a stage ----------------------------------------------------------------------
# The stage's rules in order, and the rule form: rows of conditions and actions that htmx adds
# and re-renders one at a time, while the same buttons post the whole form without JavaScript.


def _rules_stage(opening_id: str, stage_id: str):
    opening = _opening(opening_id)
    stage, _ = as_member(lambda _m: openings.get_stage(opening, stage_id))
    return opening, stage


def _rule_of(opening: Opening, rule_id: str):
    rule, _ = as_member(lambda _m: rule_editing.get_rule(opening, rule_id))
    return rule


def _rules_page(opening: Opening, stage, status: int = 200, error: str | None = None):
    found = rule_editing.lookups(opening)
    rules = [(rule, rule_editing.sentence(rule, found)) for rule in rule_editing.rules_of(stage)]
    template = "rules/_list.html" if _partial_wanted() else "rules/index.html"
    context = {"opening": opening, "stage": stage, "rules": rules, "rules_error": error}
    return render_template(template, **context), status


def _rule_form_page(
    opening: Opening, stage, data, rule=None, status: int = 200, found=None, **extra
):
    """The rule form as a page, or for htmx the form alone (dry run result included); found
    is the lookups the rule was just checked against, if it was."""
    found = found or rule_editing.lookups(opening)
    form = rule_form.view(data, found, stage, extra.pop("errors", {}))
    template = "rules/_form.html" if _partial_wanted() else "rules/form.html"
    context = {"opening": opening, "stage": stage, "rule": rule, "form": form, "dry": None}
    return render_template(template, **{**context, **extra}), status


def _rule_posted(opening: Opening, stage, rule=None):
    """A post of the rule form: a row added or removed, a dry run, or Save."""
    data = rule_form.parse(request.form)
    command = rule_form.command(request.form)
    if command in rule_form.EDITS:
        return _rule_form_page(opening, stage, data, rule)
    # The services check the rule against these lookups, and a refused rule comes back with
    # them. Not through as_member: its rollback would expire every row they hold, for the page
    # to load one by one; a refusal comes before any write. 403 and 404 reach the error pages.
    found = rule_editing.lookups(opening)
    member = current_membership()
    try:
        if command == "dry_run":
            dry = rule_editing.dry_run(member, opening.public_id, stage.public_id, data, found)
            return _rule_form_page(opening, stage, data, rule, found=found, dry=dry)
        if rule is None:
            saved = rule_editing.create(member, opening.public_id, stage.public_id, data, found)
        else:
            saved = rule_editing.update(member, opening.public_id, rule.public_id, data, found)
    except InvalidFields as error:
        return _rule_form_page(opening, stage, data, rule, 422, found, errors=error.errors)
    flash(f"Rule “{saved.name}” saved.", "success")
    url = url_for("openings.rules", opening_id=opening.public_id, stage_id=stage.public_id)
    return redirect_to(f"{url}#rule-{saved.public_id}")


@bp.get("/openings/<pid:opening_id>/stages/<pid:stage_id>/rules")
@org_required(RECRUITER)
def rules(opening_id: str, stage_id: str):
    return _rules_page(*_rules_stage(opening_id, stage_id))


@bp.route("/openings/<pid:opening_id>/stages/<pid:stage_id>/rules/new", methods=["GET", "POST"])
@org_required(RECRUITER)
def new_rule(opening_id: str, stage_id: str):
    opening, stage = _rules_stage(opening_id, stage_id)
    if request.method == "GET":
        return _rule_form_page(opening, stage, rule_form.blank())
    return _rule_posted(opening, stage)


@bp.route("/openings/<pid:opening_id>/rules/<pid:rule_id>/edit", methods=["GET", "POST"])
@org_required(RECRUITER)
def edit_rule(opening_id: str, rule_id: str):
    opening = _opening(opening_id)
    rule = _rule_of(opening, rule_id)
    if request.method == "GET":
        return _rule_form_page(opening, rule.stage, rule_editing.input_of(rule), rule)
    return _rule_posted(opening, rule.stage, rule)


@bp.post("/openings/<pid:opening_id>/rules/<pid:rule_id>/delete")
@org_required(RECRUITER)
def delete_rule(opening_id: str, rule_id: str):
    opening = _opening(opening_id)
    rule = _rule_of(opening, rule_id)
    stage = rule.stage
    as_member(rule_editing.delete, opening.public_id, rule.public_id)
    return _done(opening, "rules", f"Rule “{rule.name}” deleted.", stage=stage)


@bp.post("/openings/<pid:opening_id>/stages/<pid:stage_id>/rules/order")
@org_required(RECRUITER)
def reorder_rules(opening_id: str, stage_id: str):
    opening, stage = _rules_stage(opening_id, stage_id)
    _, error = as_member(rule_editing.reorder, opening.public_id, stage.public_id, _order("rule"))
    if error is not None:
        return _rules_page(opening, stage, 422, error.message)
    return _done(opening, "rules", stage=stage)


@bp.post("/openings/<pid:opening_id>/rules/<pid:rule_id>/move")
@org_required(RECRUITER)
def move_rule(opening_id: str, rule_id: str):
    opening = _opening(opening_id)
    rule = _rule_of(opening, rule_id)
    direction = request.form.get("direction", "")
    _, error = as_member(rule_editing.move, opening.public_id, rule.public_id, direction)
    if error is not None:
        return _rules_page(opening, rule.stage, 422, error.message)
    return _done(opening, "rules", anchor=f"#rule-{rule.public_id}", stage=rule.stage)


# The rows htmx asks for: a blank condition or action row (with the next "add" button), and a
# row's inputs for the question, operator or action type just chosen in it.


def _rule_row(opening_id: str, stage_id: str, kind: str, template: str):
    """One row ("condition" or "action") for the index asked, its fields as the query string
    gives them (a blank row's come empty), with no errors."""
    opening, stage = _rules_stage(opening_id, stage_id)
    index = rule_form.row_index(request.args)
    found = rule_editing.lookups(opening)
    if kind == "condition":
        condition = rule_form.condition_at(request.args, index)
        parts = {
            "row": rule_form.condition_row(index, condition, found),
            "questions": rule_form.question_groups(found),
        }
    else:
        parts = {
            "action": rule_form.action_row(index, rule_form.action_at(request.args, index)),
            "choices": rule_form.action_choices(found, stage),
        }
    return render_template(template, opening=opening, stage=stage, errors={}, **parts)


@bp.get("/openings/<pid:opening_id>/stages/<pid:stage_id>/rules/condition-row")
@org_required(RECRUITER)
def rule_condition_row(opening_id: str, stage_id: str):
    return _rule_row(opening_id, stage_id, "condition", "rules/_new_condition.html")


@bp.get("/openings/<pid:opening_id>/stages/<pid:stage_id>/rules/condition-fields")
@org_required(RECRUITER)
def rule_condition_fields(opening_id: str, stage_id: str):
    return _rule_row(opening_id, stage_id, "condition", "rules/_condition_fields.html")


@bp.get("/openings/<pid:opening_id>/stages/<pid:stage_id>/rules/action-row")
@org_required(RECRUITER)
def rule_action_row(opening_id: str, stage_id: str):
    return _rule_row(opening_id, stage_id, "action", "rules/_new_action.html")


@bp.get("/openings/<pid:opening_id>/stages/<pid:stage_id>/rules/action-fields")
@org_required(RECRUITER)
def rule_action_fields(opening_id: str, stage_id: str):
    return _rule_row(opening_id, stage_id, "action", "rules/_action_fields.html")
