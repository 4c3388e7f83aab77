"""The stage board of an opening: columns of cards, drag-and-drop moves, filters, bulk actions
and live updates; and the move, reject and restore actions of the applicant page.

Views read through plutomi.services.board and write through plutomi.services.moves and
plutomi.services.bulk. A move answers with the swapped card and the new counts of both
columns as out-of-band swaps; a refused move answers with the columns it touched, redrawn
from the server, and says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from flask import (
    Blueprint,
    abort,
    flash,
    g,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)

from plutomi import tenancy
from plutomi.extensions import commit_keeping_loaded, db
from plutomi.htmx import trigger
from plutomi.models import Applicant, BulkAction, Opening, Role, Stage
from plutomi.models.base import PUBLIC_ID_LENGTH, is_public_id
from plutomi.services import board as boards
from plutomi.services import bulk, moves
from plutomi.services.errors import Invalid, NotFound, ServiceError, Throttled
from plutomi.tenancy import current_membership, org_required

bp = Blueprint("board", __name__)
T = TypeVar("T")


@bp.app_template_global()
def board_layout(stages: list[Stage]) -> str:
    return boards.layout(stages)


@bp.app_template_global()
def board_args(f: boards.BoardFilter | None) -> dict[str, str | list[str]]:
    """The filter as url_for() arguments (answer filters repeat)."""
    args: dict[str, str | list[str]] = {}
    for key, value in f.args() if f else []:
        if key == "answer":
            args.setdefault("answer", []).append(value)  # type: ignore[union-attr]
        else:
            args[key] = value
    return args


@dataclass(frozen=True)
class BoardLinks:
    """What every card of a board links to, built once per request: url_for for each of
    hundreds of cards cost more than the board's queries."""

    applicant: str  # a card's public id completes it
    move: str
    menu: str
    can_move: bool


@bp.app_template_global()
def board_links(opening: Opening) -> BoardLinks:
    cache = g.setdefault("board_links", {})
    if opening.id not in cache:
        sample = "0" * PUBLIC_ID_LENGTH
        applicant = url_for("applicants.show", applicant_id=sample)
        membership = current_membership()
        cache[opening.id] = BoardLinks(
            applicant=applicant.removesuffix(sample),
            move=url_for("board.move", opening_id=opening.public_id),
            menu=url_for("board.move_menu", opening_id=opening.public_id),
            can_move=membership is not None and membership.can(Role.RECRUITER),
        )
    return cache[opening.id]


bp.add_app_template_global(boards.options_of, "board_options")
bp.add_app_template_global(bulk.progress, "bulk_percent")


def _opening(opening_id: str) -> Opening:
    return tenancy.get_or_404(Opening, opening_id)


def _board_opening(opening_id: str) -> Opening:
    """The opening with its stages (and their enabled rules: a move runs those of the stage
    it enters) and its board questions, kept on `g` for the rest of the request, in one
    query."""
    try:
        opening, g.board_questions = boards.board_opening(tenancy.current_org().id, opening_id)
    except NotFound:
        abort(404)
    return opening


def _of_opening(model: type[T], public_id: str, opening: Opening) -> T:
    """A row of this org by public id that must also belong to the opening in the URL."""
    row = tenancy.get_or_404(model, public_id)
    if row.opening_id != opening.id:
        abort(404)
    return row


def _filter(opening: Opening, args=None) -> tuple[boards.BoardFilter, dict[str, str]]:
    """The board filter of the request, or the default one and the error next to its field,
    by the board questions _board_opening() kept on `g`."""
    try:
        f = boards.parse_filter(args if args is not None else request.args, g.board_questions[1])
        return f, {}
    except Invalid as exc:
        return boards.BoardFilter(), {exc.field or "q": exc.message}


def _board(opening: Opening, f: boards.BoardFilter) -> boards.Board:
    return boards.board(opening, f, questions=g.get("board_questions"), stages=opening.stages)


def _render_board(opening: Opening, f: boards.BoardFilter, errors: dict[str, str], status=200):
    data = _board(opening, f)
    context = {
        "board": data,
        "opening": opening,
        "membership": current_membership(),
        "errors": errors,
        "tags": _tags(),
        "time_choices": boards.TIME_CHOICES,
        "status_choices": boards.STATUS_CHOICES,
    }
    # A filter change swaps only the columns (and pushes the URL); anything else is the page.
    if request.htmx and request.htmx.target == "board-columns":
        return render_template("board/_columns.html", **context), status
    return render_template("board/show.html", **context), status


def _tags() -> list[str]:
    from plutomi.services import tags

    return tags.org_tags(tenancy.current_org())


@bp.get("/openings/<pid:opening_id>/board")
@org_required()
def show(opening_id: str):
    opening = _board_opening(opening_id)
    f, errors = _filter(opening)
    return _render_board(opening, f, errors, 422 if errors else 200)


@bp.get("/openings/<pid:opening_id>/board/stages/<pid:stage_id>/cards")
@org_required()
def more_cards(opening_id: str, stage_id: str):
    """The next page of a column, asked for when its last card scrolls into view."""
    opening = _board_opening(opening_id)
    stage = next((s for s in opening.stages if s.public_id == stage_id), None)
    if stage is None:
        abort(404)
    f, errors = _filter(opening)
    if errors:
        abort(422, next(iter(errors.values())))
    card_questions, _ = g.board_questions
    try:
        cards = boards.next_page(
            opening,
            stage,
            f,
            request.args.get("after_rank", ""),
            request.args.get("after", ""),
            card_questions,
        )
    except Invalid as exc:
        abort(422, exc.message)
    return render_template(
        "board/_cards.html",
        cards=cards,
        stage=stage,
        opening=opening,
        board_filter=f,
        has_more=len(cards) == boards.PAGE,
    )


@bp.get("/openings/<pid:opening_id>/board/move-menu")
@org_required(Role.RECRUITER)
def move_menu(opening_id: str):
    """A card's "move to" form, asked for from the card: with the version the board showed, so
    a move made with it is refused if the applicant changed since the board was drawn."""
    opening = _board_opening(opening_id)
    applicant = _of_opening(Applicant, request.args.get("applicant", ""), opening)
    return render_template(
        "board/_move_menu.html",
        applicant=applicant,
        version=request.args.get("version", applicant.version, type=int),
        opening=opening,
        stages=opening.stages,
    )


def _columns_response(
    opening: Opening,
    f: boards.BoardFilter,
    stage_ids: set[int],
    status: int,
    stages: list[Stage] | None = None,
):
    """The given columns redrawn from the server, as out-of-band swaps; `stages`: the
    opening's, when the caller has read them."""
    stages = stages if stages is not None else boards.stages_of(opening)
    data = boards.board(
        opening, f, questions=g.get("board_questions"), only=stage_ids, stages=stages
    )
    return render_template(
        "board/_refresh.html",
        board=data,
        opening=opening,
        columns=data.columns,
        stages=stages,
        membership=current_membership(),
    ), status


@bp.post("/openings/<pid:opening_id>/board/move")
@org_required()
def move(opening_id: str):
    opening = _board_opening(opening_id)
    f, _ = _filter(opening, request.form)
    form = request.form
    applicant_id = form.get("applicant", "")
    version = form.get("version", type=int)
    stages = opening.stages
    card_questions, _ = g.board_questions
    try:
        moved = moves.move(
            current_membership(),
            applicant_id,
            form.get("stage", ""),
            after=form.get("after") or None,
            before=form.get("before") or None,
            version=version,
            stages=stages,
            commit=False,  # the answer's reads first: no transaction is left to end after
            # Unfiltered, the card is drawn from the move's read, dressing and all.
            dress=None if f.is_set else card_questions,
        )
    except ServiceError as exc:
        db.session.rollback()
        # "from" is the column a dragged card left on this client's (maybe stale) board.
        shown = [form.get("stage", ""), form.get("from", "")]
        return _refused(opening, f, applicant_id, shown, exc)
    if moved.moved_on:
        # A rule of the stage it entered moved the card on: redraw where it went as well.
        commit_keeping_loaded()
        stage_ids = {moved.from_stage.id, moved.to_stage.id, moved.applicant.stage_id}
        body, status = _columns_response(opening, f, stage_ids, 200, stages)
        message = f"{moved.applicant.name} was moved on by a rule of {moved.to_stage.name}."
        return trigger(
            make_response(body, status), "flash", [{"category": "info", "message": message}]
        )
    # Only what the answer shows: the card and the two counts, never the whole board.
    touched = list(
        {moved.from_stage.id: moved.from_stage, moved.to_stage.id: moved.to_stage}.values()
    )
    # The move read both counters; a filtered board counts what matches the filter.
    counts = moved.counts if not f.is_set else boards.counts([s.id for s in touched], f)
    card = boards.moved_card(opening, moved.applicant, f, card_questions, moved.dressing)
    commit_keeping_loaded()
    return render_template(
        "board/_moved.html",
        opening=opening,
        card=card,
        stage=moved.to_stage,
        menu=form.get("via") == "menu",
        columns=[boards.Column(stage, counts.get(stage.id, 0)) for stage in touched],
        stages=stages,
        board_filter=f,
        membership=current_membership(),
    )


def _refused(opening: Opening, f: boards.BoardFilter, applicant_id: str, shown: list[str], exc):
    """A refused move: say why, and redraw the columns the card left, landed in and lives in
    (`shown`: the stages this client showed it in and dropped it on).
    A throttled move changes nothing on the page: the script sends it again after Retry-After."""
    if isinstance(exc, Throttled):
        response = make_response("", 429)
        response.headers["HX-Reswap"] = "none"
        response.headers["Retry-After"] = str(exc.retry_after or 1)
        return trigger(response, "flash", [{"category": "info", "message": exc.message}])
    stage_ids = set()
    if is_public_id(applicant_id):
        applicant = db.session.scalar(
            tenancy.scoped(Applicant).where(Applicant.public_id == applicant_id)
        )
        if applicant is not None and applicant.opening_id == opening.id:
            stage_ids.add(applicant.stage_id)
    for stage_id in shown:
        if not is_public_id(stage_id):
            continue
        stage = db.session.scalar(
            tenancy.scoped(Stage).where(Stage.public_id == stage_id, Stage.opening_id == opening.id)
        )
        if stage is not None:
            stage_ids.add(stage.id)
    body, status = _columns_response(opening, f, stage_ids, exc.status)
    response = make_response(body, status)
    return trigger(response, "flash", [{"category": "error", "message": exc.message}])


@bp.get("/openings/<pid:opening_id>/board/changes")
@org_required()
def changes(opening_id: str):
    """What colleagues changed since the cursor, for the board's poll: 204 when nothing.
    Every open board asks every few seconds: the opening, its stages and board questions
    come in one statement."""
    opening = _board_opening(opening_id)
    drawn = request.args.get("layout")
    if drawn is not None and drawn != boards.layout(opening.stages):
        # Stages were added, deleted, renamed or reordered since this board was drawn.
        return "", 204, {"HX-Refresh": "true"}
    f, errors = _filter(opening)
    if errors:
        return "", 204
    card_questions, _ = g.board_questions
    found = boards.changes(opening, request.args.get("since", 0, type=int), f, card_questions)
    if found is None:
        return "", 204
    stages = opening.stages
    return render_template(
        "board/_changes.html",
        changes=found,
        opening=opening,
        board_filter=f,
        stages=stages,
        stage_ids={stage.id: stage.public_id for stage in stages},
        membership=current_membership(),
    )


# --- bulk actions --------------------------------------------------------------------------


@bp.post("/openings/<pid:opening_id>/board/bulk")
@org_required()
def bulk_action(opening_id: str):
    opening = _board_opening(opening_id)
    f, errors = _filter(opening, request.form)
    form = request.form
    if errors and form.get("all_in_stage"):
        # "All in this stage" means all that the filter shows: with the filter no longer
        # valid (an option renamed, a question removed), it would mean the whole stage.
        message = (
            f"The board's filter no longer applies: {next(iter(errors.values()))} Reload the "
            "board and select again."
        )
        return render_template("board/_bulk_error.html", message=message), 422
    try:
        result = bulk.start(
            current_membership(),
            opening,
            action=form.get("action", ""),
            stage_id=form.get("stage") or None,
            reason=form.get("reason", ""),
            selected=form.getlist("selected"),
            all_in_stage=form.get("all_in_stage") or None,
            board_filter=f,
        )
    except ServiceError as exc:
        db.session.rollback()
        return render_template("board/_bulk_error.html", message=exc.message), exc.status
    if isinstance(result, BulkAction):
        return render_template("board/_bulk_progress.html", action=result, opening=opening)
    response = make_response(render_template("board/_bulk_done.html", summary=result))
    return trigger(response, "board-redraw")


@bp.get("/openings/<pid:opening_id>/board/bulk/<pid:bulk_id>")
@org_required()
def bulk_progress(opening_id: str, bulk_id: str):
    opening = _opening(opening_id)
    action = _of_opening(BulkAction, bulk_id, opening)
    response = make_response(
        render_template("board/_bulk_progress.html", action=action, opening=opening)
    )
    if action.state in ("done", "failed"):
        trigger(response, "board-redraw")
    return response


# --- the applicant page's actions ----------------------------------------------------------


def _applicant_action(applicant_id: str, action, success: str):
    """Run a move, reject or restore from the applicant page or panel. Success redirects (303)
    to the applicant, whose page the form selects its #applicant from; so does a conflict
    (someone else changed them meanwhile), with its message, as the page is stale. Bad input
    redraws the actions with the message next to its field."""
    try:
        applicant = action()
    except ServiceError as exc:
        db.session.rollback()
        if exc.status in (403, 404):
            abort(exc.status, exc.message)
        if exc.status == 409:
            flash(exc.message, "error")
            return redirect(url_for("applicants.show", applicant_id=applicant_id), 303)
        applicant = tenancy.get_or_404(Applicant, applicant_id)
        response = make_response(
            render_template(
                "applicants/_actions.html",
                applicant=applicant,
                stages=boards.stages_of(applicant.opening),
                errors={exc.field or "form": exc.message},
                membership=current_membership(),
            ),
            exc.status,
        )
        response.headers["HX-Retarget"] = "#applicant-actions"
        response.headers["HX-Reselect"] = "#applicant-actions"
        return response
    flash(success.format(name=applicant.name), "success")
    return redirect(url_for("applicants.show", applicant_id=applicant_id), 303)


@bp.post("/applicants/<pid:applicant_id>/move")
@org_required()
def move_applicant(applicant_id: str):
    form = request.form

    def act():
        return moves.move(
            current_membership(),
            applicant_id,
            form.get("stage", ""),
            version=form.get("version", type=int),
        ).applicant

    return _applicant_action(applicant_id, act, "{name} moved.")


@bp.post("/applicants/<pid:applicant_id>/reject")
@org_required()
def reject(applicant_id: str):
    form = request.form
    return _applicant_action(
        applicant_id,
        lambda: moves.reject(
            current_membership(),
            applicant_id,
            form.get("reason", ""),
            version=form.get("version", type=int),
        ),
        "{name} rejected. They stay searchable and can be restored.",
    )


@bp.post("/applicants/<pid:applicant_id>/restore")
@org_required()
def restore(applicant_id: str):
    return _applicant_action(
        applicant_id,
        lambda: moves.restore(
            current_membership(), applicant_id, version=request.form.get("version", type=int)
        ),
        "{name} is back on the board.",
    )
