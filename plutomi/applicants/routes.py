"""Recruiters' pages about one applicant: the profile (who they are, where they stand, what they
answered and uploaded), their notes and tags, and their timeline.

The page is also the board's side panel: an htmx request aimed at #panel gets the profile inside
an <aside>, and any other non-boosted htmx request the profile alone. Every write calls one
function of plutomi.services.notes or .tags. An htmx request gets back the section it changed
(partials start with "_"), with any error next to its field and a 422; a plain form post gets a
redirect back to the page, or the page with the error.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)

from plutomi import tenancy
from plutomi.applicants.forms import NoteForm, TagForm
from plutomi.forms import as_member, show_error
from plutomi.htmx import trigger
from plutomi.models import Applicant, Role
from plutomi.services import applicants, display, notes, tags, timeline
from plutomi.services.errors import Invalid
from plutomi.tenancy import current_membership, org_required

bp = Blueprint("applicants", __name__)
bp.add_app_template_filter(display.duration, "duration")

RECRUITER = Role.RECRUITER
# Sent after every note or tag change: the timeline section reloads its first page on it.
CHANGED = "applicant-changed"


def _partial_wanted() -> bool:
    return bool(request.htmx) and not request.htmx.boosted


def _applicant(applicant_id: str) -> Applicant:
    return tenancy.get_or_404(Applicant, applicant_id)


def _url(applicant: Applicant, anchor: str = "", **args) -> str:
    return url_for("applicants.show", applicant_id=applicant.public_id, **args) + anchor


# --- what the sections need ------------------------------------------------------------------


def _notes(
    applicant: Applicant,
    note_form: NoteForm | None = None,
    editing: str | None = None,
    edit_form: NoteForm | None = None,
) -> dict:
    membership = current_membership()
    return {
        "applicant": applicant,
        "membership": membership,
        "notes": notes.for_applicant(membership, applicant),
        "note_form": note_form or NoteForm(formdata=None),
        # The public id of the note shown as a form, and that form.
        "editing": editing,
        "edit_form": edit_form,
    }


def _tags(applicant: Applicant, tag_form: TagForm | None = None) -> dict:
    return {
        "applicant": applicant,
        "membership": current_membership(),
        "tags": tags.for_applicant(applicant),
        "org_tags": tags.org_tags(tenancy.current_org()),
        "tag_form": tag_form or TagForm(formdata=None),
    }


def _timeline(applicant: Applicant, before: str | None = None) -> dict:
    try:
        page = timeline.page(tenancy.current_org(), applicant, before)
    except Invalid as exc:  # a cursor mangled in the URL
        abort(400, exc.message)
    return {"applicant": applicant, "timeline": page}


def _page(applicant: Applicant, before: str | None = None, **sections) -> dict:
    notes_args = {k: sections[k] for k in ("note_form", "editing", "edit_form") if k in sections}
    return {
        **_notes(applicant, **notes_args),
        **_tags(applicant, sections.get("tag_form")),
        **_timeline(applicant, before),
        "profile": applicants.profile(tenancy.current_org(), applicant),
    }


def _section(applicant: Applicant, section: str, status: int = 200, **context):
    """For htmx the one section (`notes` or `tags`) that changed; else the whole page."""
    if _partial_wanted():
        build = _notes if section == "notes" else _tags
        return render_template(f"applicants/_{section}.html", **build(applicant, **context)), status
    return render_template("applicants/show.html", **_page(applicant, **context)), status


def _done(applicant: Applicant, section: str, message: str | None = None):
    if message:
        flash(message, "success")
    if not _partial_wanted():
        return redirect(_url(applicant, f"#{section}"))
    body, status = _section(applicant, section)
    return trigger(make_response(body, status), CHANGED)


# --- the page --------------------------------------------------------------------------------


@bp.get("/applicants/<pid:applicant_id>")
@org_required()
def show(applicant_id: str):
    applicant = _applicant(applicant_id)
    if request.headers.get("HX-Target") == "panel":  # a card on the board: the side panel
        template = "applicants/_panel.html"
    elif _partial_wanted():
        # htmx redrawing #applicant (after a move, reject or restore): the profile alone, so
        # the flash goes out as an HX-Trigger instead of being rendered into an unused page.
        template = "applicants/_profile.html"
    else:
        template = "applicants/show.html"
    # ?before= is "Show older" without JavaScript: the timeline starts at that cursor.
    response = make_response(
        render_template(template, **_page(applicant, request.args.get("before") or None))
    )
    response.vary.add("HX-Target")
    return response


# --- notes -----------------------------------------------------------------------------------


@bp.get("/applicants/<pid:applicant_id>/notes")
@org_required()
def notes_section(applicant_id: str):
    """The notes section as it is (Cancel on an edit form); a plain visit goes to the page."""
    applicant = _applicant(applicant_id)
    if not _partial_wanted():
        return redirect(_url(applicant, "#notes"))
    return _section(applicant, "notes")


@bp.post("/applicants/<pid:applicant_id>/notes")
@org_required(RECRUITER)
def add_note(applicant_id: str):
    applicant = _applicant(applicant_id)
    form = NoteForm()
    if form.validate_on_submit():
        _, error = as_member(notes.add, applicant, form.body.data)
        if error is None:
            return _done(applicant, "notes", "Note added.")
        show_error(form, error)
    return _section(applicant, "notes", 422, note_form=form)


@bp.route("/applicants/<pid:applicant_id>/notes/<pid:note_id>/edit", methods=["GET", "POST"])
@org_required(RECRUITER)
def edit_note(applicant_id: str, note_id: str):
    applicant = _applicant(applicant_id)
    if request.method == "GET":
        note, _ = as_member(notes.editable, applicant, note_id)
        form = NoteForm(prefix="edit", formdata=None, data={"body": note.body})
        return _section(applicant, "notes", editing=note.public_id, edit_form=form)
    form = NoteForm(prefix="edit")
    if form.validate_on_submit():
        _, error = as_member(notes.edit, applicant, note_id, form.body.data)
        if error is None:
            return _done(applicant, "notes", "Note saved.")
        show_error(form, error)
    return _section(applicant, "notes", 422, editing=note_id, edit_form=form)


@bp.post("/applicants/<pid:applicant_id>/notes/<pid:note_id>/delete")
@org_required(RECRUITER)
def delete_note(applicant_id: str, note_id: str):
    applicant = _applicant(applicant_id)
    as_member(notes.delete, applicant, note_id)  # refusals are 403 or 404, never a form error
    return _done(applicant, "notes", "Note deleted.")


# --- tags ------------------------------------------------------------------------------------


@bp.post("/applicants/<pid:applicant_id>/tags")
@org_required(RECRUITER)
def add_tag(applicant_id: str):
    applicant = _applicant(applicant_id)
    form = TagForm()
    if form.validate_on_submit():
        _, error = as_member(tags.add, applicant, form.tag.data)
        if error is None:
            return _done(applicant, "tags")
        show_error(form, error)
    return _section(applicant, "tags", 422, tag_form=form)


@bp.post("/applicants/<pid:applicant_id>/tags/remove")
@org_required(RECRUITER)
def remove_tag(applicant_id: str):
    applicant = _applicant(applicant_id)
    _, error = as_member(tags.remove, applicant, request.form.get("tag", ""))
    if error is not None:
        form = TagForm(formdata=None)
        form.form_errors.append(error.message)
        return _section(applicant, "tags", 422, tag_form=form)
    return _done(applicant, "tags")


# --- timeline --------------------------------------------------------------------------------


@bp.get("/applicants/<pid:applicant_id>/timeline")
@org_required()
def timeline_section(applicant_id: str):
    """htmx: the next page's entries (?before=), or the section afresh (after a change)."""
    applicant = _applicant(applicant_id)
    before = request.args.get("before") or None
    if not _partial_wanted():
        return redirect(_url(applicant, "#timeline", before=before))
    template = "applicants/_timeline_entries.html" if before else "applicants/_timeline.html"
    return render_template(template, **_timeline(applicant, before))
