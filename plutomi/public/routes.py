"""What applicants see: an org's job board, the application form, and their own portal.

None of these pages needs a login. The portal opens only the application whose emailed link
this browser followed (plutomi.applicant_session); anything else there is a 404.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    abort,
    flash,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy import select

from plutomi import applicant_session, tenancy
from plutomi.extensions import db
from plutomi.htmx import redirect_to
from plutomi.models import Applicant, Opening, OpeningState, Org, Question, QuestionType, Upload
from plutomi.services import answers, applications, openings, uploads
from plutomi.services.errors import Invalid, InvalidFields, NotFound
from plutomi.tenancy import org_required

bp = Blueprint("public", __name__)


@bp.app_context_processor
def _question_helpers() -> dict[str, Any]:
    return {
        "field_name": answers.field_name,
        "QuestionType": QuestionType,
        "file_accept": uploads.ACCEPT,
        "file_kinds": uploads.KINDS,
    }


def _partial_request() -> bool:
    """An htmx request that wants a piece of the page (not a boosted link or a history restore)."""
    return bool(
        request.htmx
        and not request.htmx.boosted
        and not request.headers.get("HX-History-Restore-Request")
    )


def _org_or_404(org_slug: str) -> Org:
    org = applications.org_by_slug(org_slug)
    if org is None:
        abort(404, "There is no job board here. Check the address.")
    return org


def _opening_or_404(
    org_slug: str, opening_slug: str, *, applying: bool = False
) -> tuple[Org, applications.Applying]:
    """The org and its public opening of the URL, read together with what applying reads; a
    404 says which is missing. applying: a submission follows (an applicant id is reserved)."""
    found = applications.org_and_opening(org_slug, opening_slug, applying=applying)
    if found is None:
        _org_or_404(org_slug)
    if found is None or found[1].opening.state == OpeningState.DRAFT:
        # A draft was never public: the answer must not confirm that it exists.
        abort(404, applications.NOT_TAKING)
    return found


def _raw_answers(questions: list[Question]) -> dict[str, Any]:
    raw: dict[str, Any] = {}
    for question in questions:
        name = answers.field_name(question)
        if question.type_enum is QuestionType.FILE:
            raw[name] = request.files.get(name)
        elif question.type_enum is QuestionType.MULTI_CHOICE:
            raw[name] = request.form.getlist(name)
        else:
            raw[name] = request.form.get(name)
    return raw


def _typed(questions: list[Question]) -> dict[str, Any]:
    """What the applicant typed, to put back in the form (files cannot be put back)."""
    values = {"name": request.form.get("name", ""), "email": request.form.get("email", "")}
    for question in questions:
        name = answers.field_name(question)
        if question.type_enum is QuestionType.MULTI_CHOICE:
            values[name] = request.form.getlist(name)
        elif question.type_enum is not QuestionType.FILE:
            values[name] = request.form.get(name, "")
    return values


def _refused(questions: list[Question], errors: dict[str, str]) -> dict[str, str]:
    """The errors of a form sent back, with each file that was fine asked for again beside
    its field: a browser cannot put a file back in a form, and it would be missed."""
    errors = dict(errors)
    for question in questions:
        name = answers.field_name(question)
        file = request.files.get(name)
        if question.type_enum is QuestionType.FILE and file and file.filename:
            errors.setdefault(
                name,
                f"Attach {uploads.display_name(file.filename)} again: a form sent back for "
                "corrections cannot keep its files.",
            )
    return errors


# --- the job board -------------------------------------------------------------------------


@bp.get("/jobs/<org_slug>")
def board(org_slug: str):
    org = _org_or_404(org_slug)
    search = request.args.get("q", "")[: applications.SEARCH_MAX]
    rows = applications.published_openings(org, search)
    template = "public/_results.html" if _partial_request() else "public/board.html"
    response = make_response(render_template(template, org=org, openings=rows, search=search))
    # The same URL answers htmx with the results only; and closing an opening shows at once.
    response.vary.add("HX-Request")
    response.headers["Cache-Control"] = "no-cache"
    return response


# --- one opening: its page, the application, new links --------------------------------------


def _unavailable(org: Org, opening: Opening):
    status = 410 if opening.state == OpeningState.CLOSED or opening.archived_at else 404
    return render_template("public/unavailable.html", org=org, opening=opening), status


def _form_page(org, opening, questions=None, values=None, errors=None, status=200, preview=False):
    """questions: the first stage's, where the caller read them."""
    if questions is None:
        questions = openings.stage_questions(opening.stages[0]) if opening.stages else []
    return render_template(
        "public/opening.html",
        org=org,
        opening=opening,
        questions=questions,
        values=values or {},
        errors=errors or {},
        preview=preview,
    ), status


@bp.route("/jobs/<org_slug>/<opening_slug>", methods=["GET", "POST"])
def opening(org_slug: str, opening_slug: str):
    org, found = _opening_or_404(org_slug, opening_slug, applying=request.method == "POST")
    row, questions = found.opening, found.questions
    if not applications.is_taking_applications(row) or not row.stages:
        return _unavailable(org, row)
    if request.method == "GET":
        return _form_page(org, row, questions)

    # Read before the commit expires them: the redirect then needs no query.
    slugs = {"org_slug": org.slug, "opening_slug": row.slug}
    try:
        applicant, created = applications.apply(
            row,
            request.form.get("name", ""),
            request.form.get("email", ""),
            _raw_answers(questions),
            questions,
            rank=found.rank,
            applicant_id=found.applicant_id,
        )
    except InvalidFields as exc:
        return _form_page(
            org, row, questions, _typed(questions), _refused(questions, exc.errors), 422
        )
    except Invalid as exc:
        if exc.message == applications.NOT_TAKING:
            return _unavailable(org, row)
        errors = _refused(questions, {exc.field or "form": exc.message})
        return _form_page(org, row, questions, _typed(questions), errors, 422)
    if created:
        applicant_session.sign_in(applicant, proven=False)
    else:
        flash(applications.ALREADY_APPLIED, "info")
    return redirect(url_for("public.applied", **slugs))


@bp.get("/jobs/<org_slug>/<opening_slug>/applied")
def applied(org_slug: str, opening_slug: str):
    org, found = _opening_or_404(org_slug, opening_slug)
    row = found.opening
    applicant = applicant_session.current_applicant()
    if applicant is not None and applicant.opening_id != row.id:
        applicant = None
    return render_template("public/applied.html", org=org, opening=row, applicant=applicant)


@bp.post("/jobs/<org_slug>/<opening_slug>/link")
def request_link(org_slug: str, opening_slug: str):
    org, found = _opening_or_404(org_slug, opening_slug)
    row = found.opening
    # The opening page's form names its field link_email (its own email field is the form's).
    email = request.form.get("link_email") or request.form.get("email", "")
    try:
        applications.request_link(row, email)
    except Invalid as exc:
        return render_template(
            "public/link_sent.html", org=org, opening=row, email=email, error=exc.message
        ), 422
    return render_template("public/link_sent.html", org=org, opening=row, email=email, error=None)


@bp.get("/jobs/<org_slug>/<opening_slug>/schema.json")
def schema(org_slug: str, opening_slug: str):
    found = applications.org_and_opening(org_slug, opening_slug)
    row = found[1].opening if found else None
    if row is None or not applications.is_taking_applications(row):
        return jsonify(error={"status": 404, "message": applications.NOT_TAKING}), 404
    response = jsonify(applications.schema(row))
    response.headers["Cache-Control"] = "no-cache"
    return response


# --- the applicant's portal -----------------------------------------------------------------


def _link_refused(exc: Invalid):
    if isinstance(exc, applications.LinkExpired):
        org = db.session.get(Org, exc.opening.org_id)
        return render_template(
            "public/link_invalid.html", message=exc.message, opening=exc.opening, org=org
        ), 410
    return render_template("public/link_invalid.html", message=exc.message, opening=None), 404


@bp.get("/portal/<token>")
def portal_link(token: str):
    """The link's page asks for a click, which posts: a mail scanner that opens every link
    signs no one in (and ends no browser's session begun by applying), and no other site
    can sign a visitor into an application of its choosing."""
    try:
        link = applications.find_link(token)
    except Invalid as exc:
        return _link_refused(exc)
    current = applicant_session.current_applicant()
    if current is not None and current.id == link.applicant_id and applicant_session.proven():
        return redirect(url_for("public.portal"))
    opening = link.applicant.opening
    org = db.session.get(Org, opening.org_id)
    return render_template("public/portal_continue.html", opening=opening, org=org)


@bp.post("/portal/<token>")
def portal_link_open(token: str):
    try:
        applicant = applications.open_link(token)
    except Invalid as exc:
        return _link_refused(exc)
    applicant_session.sign_in(applicant)
    return redirect(url_for("public.portal"))


def _portal_page(applicant: Applicant, errors=None, values=None, status=200):
    stage = applicant.stage
    given = answers.answered(applicant)
    done = {answer.question_id for answer in given}
    remaining = [q for q in openings.stage_questions(stage) if q.id not in done]
    upload_ids = [a.value for a in given if a.question.type == QuestionType.FILE]
    uploaded = {
        u.public_id: u
        for u in db.session.scalars(
            select(Upload).where(
                Upload.applicant_id == applicant.id, Upload.public_id.in_(upload_ids)
            )
        )
    }
    return render_template(
        "public/portal.html",
        applicant=applicant,
        opening=applicant.opening,
        org=db.session.get(Org, applicant.org_id),
        stage=stage,
        remaining=remaining,
        missing={q.id for q in answers.missing_required(applicant, stage)},
        given=given,
        uploads=uploaded,
        errors=errors or {},
        values=values or {},
    ), status


@bp.get("/portal")
def portal():
    applicant = applicant_session.current_applicant()
    if applicant is None:
        return render_template("public/signed_out.html")
    return _portal_page(applicant)


@bp.post("/portal/answers/<pid:question_id>")
def portal_answer(question_id: str):
    applicant = applicant_session.current_applicant()
    question = None
    if applicant is not None:
        # Only a question this applicant is being asked now; anything else is a 404.
        question = db.session.scalar(
            select(Question).where(
                Question.public_id == question_id,
                Question.opening_id == applicant.opening_id,
                Question.stage_id == applicant.stage_id,
                Question.archived_at.is_(None),
            )
        )
    if question is None:
        if applicant is not None and _partial_request():
            # A form left open from an earlier step (another tab, or before a rule moved
            # them on): show where the application stands now instead.
            flash("That question belongs to an earlier step. Here is where you are now.", "info")
            return redirect_to(url_for("public.portal"))
        abort(404, "This question is not part of your application. Open the link we emailed you.")
    name = answers.field_name(question)
    raw = _raw_answers([question])[name]
    typed = _typed([question])
    try:
        answers.save(applicant, question, raw)
    except NotFound as exc:
        abort(404, exc.message)
    except Invalid as exc:
        if _partial_request():
            return render_template(
                "public/_portal_question.html",
                question=question,
                value=typed.get(name),
                error=exc.message,
                saved=False,
            ), 422
        return _portal_page(applicant, {name: exc.message}, typed, 422)
    if _partial_request() and applicant.stage_id != question.stage_id:
        # The answer completed the step and a rule moved them on: the page shows the old
        # step's questions, so it is drawn again for the new one.
        flash(f"Saved. Your application moved on to: {applicant.stage.name}.", "success")
        return redirect_to(url_for("public.portal"))
    if _partial_request():
        return render_template(
            "public/_portal_question.html",
            question=question,
            value=typed.get(name),
            error=None,
            saved=True,
            stage_done=applicant.stage_completed_at is not None,
        )
    flash("Saved.", "success")
    return redirect(url_for("public.portal"))


@bp.post("/portal/withdraw")
def portal_withdraw():
    applicant = applicant_session.current_applicant()
    if applicant is None:
        return redirect(url_for("public.portal"))
    try:
        applications.withdraw(applicant, request.form.get("reason"))
    except Invalid as exc:
        flash(exc.message, "error")
    else:
        flash("Your application is withdrawn. Thank you for letting us know.", "info")
    return redirect(url_for("public.portal"))


@bp.post("/portal/link")
def portal_request_link():
    email = request.form.get("email", "")
    try:
        applications.request_links(email)
    except Invalid as exc:
        return render_template("public/signed_out.html", email=email, error=exc.message), 422
    return render_template("public/link_sent.html", org=None, opening=None, email=email, error=None)


@bp.post("/portal/sign-out")
def portal_sign_out():
    applicant_session.sign_out()
    flash("You are signed out of your application. Your emailed link still works.", "info")
    return redirect(url_for("public.portal"))


# --- the recruiter's preview ----------------------------------------------------------------


@bp.get("/openings/<pid:opening_id>/preview")
@org_required()
def preview(opening_id: str):
    row = tenancy.get_or_404(Opening, opening_id)
    return _form_page(tenancy.current_org(), row, preview=True)
