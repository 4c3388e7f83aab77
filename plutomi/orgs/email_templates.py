"""Settings: the org's email templates, which rules send. Everyone reads them; admins and
owners write them (the members page's rule: a weaker role gets 403 on every change).

The editor previews as you type: htmx posts the form to /preview and swaps in the subject and
text for a sample applicant, or what is wrong with them.
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import BooleanField, StringField, TextAreaField

from plutomi import tenancy
from plutomi.forms import as_member, show_error
from plutomi.models import EmailTemplate, Role
from plutomi.services import email_templates
from plutomi.services.errors import InvalidFields
from plutomi.tenancy import current_membership, org_required

bp = Blueprint("email_templates", __name__, url_prefix="/settings/email-templates")


class EmailTemplateForm(FlaskForm):
    # No WTForms validators: the service checks every field (limits, syntax, variables) and
    # the form shows all of its messages at once, each next to its field.
    name = StringField(
        "Name",
        description="For you and your rules; applicants never see it.",
        render_kw={"maxlength": email_templates.NAME_MAX},
    )
    subject = StringField("Subject", render_kw={"maxlength": email_templates.SUBJECT_MAX})
    body = TextAreaField(
        "Text", render_kw={"rows": 16, "maxlength": email_templates.BODY_MAX, "spellcheck": "true"}
    )
    essential = BooleanField(
        "Essential",
        description="Sent even to applicants who unsubscribed: an interview time, a decision. "
        "Leave it off for updates and reminders.",
    )


def _preview_of(form: EmailTemplateForm) -> dict:
    """The preview partial's context: the rendered sample, or the errors to fix first."""
    try:
        subject, text = email_templates.preview(
            tenancy.current_org(), form.subject.data, form.body.data
        )
    except InvalidFields as exc:
        return {"preview": None, "preview_errors": exc.errors}
    return {"preview": {"subject": subject, "text": text}, "preview_errors": {}}


def _editor(form: EmailTemplateForm, template: EmailTemplate | None, status: int = 200):
    membership = current_membership()
    return render_template(
        "orgs/email_template.html",
        membership=membership,
        form=form,
        template=template,
        variables=email_templates.VARIABLES,
        filters=email_templates.FILTERS,
        **_preview_of(form),
    ), status


@bp.get("")
@org_required()
def index():
    membership = current_membership()
    return render_template(
        "orgs/email_templates.html",
        membership=membership,
        templates=email_templates.list_for(membership.org),
    )


STARTER_BODY = """Hello {{ applicant_name }},

Thank you for applying to {{ opening_name }} at {{ org_name }}.
You can see and continue your application here: {{ portal_link }}

{{ org_name }}

Stop non-essential email: {{ unsubscribe_link }}"""


@bp.route("/new", methods=["GET", "POST"])
@org_required(Role.ADMIN)
def new():
    if request.method == "GET":
        form = EmailTemplateForm(
            formdata=None,
            subject="Your application for {{ opening_name }}",
            body=STARTER_BODY,
        )
        return _editor(form, None)
    return _save(None)


@bp.get("/<pid:template_id>")
@org_required()
def edit(template_id: str):
    row = tenancy.get_or_404(EmailTemplate, template_id)
    return _editor(EmailTemplateForm(obj=row, formdata=None), row)


@bp.post("/<pid:template_id>")
@org_required(Role.ADMIN)
def update(template_id: str):
    return _save(tenancy.get_or_404(EmailTemplate, template_id))


def _save(template: EmailTemplate | None):
    """A posted editor: create (template None) or update, else the editor with its errors."""
    form = EmailTemplateForm()
    if form.validate_on_submit():
        fields = (form.name.data, form.subject.data, form.body.data, form.essential.data)
        if template is None:
            saved, error = as_member(email_templates.create, *fields)
        else:
            saved, error = as_member(email_templates.update, template.public_id, *fields)
        if error is None:
            flash(f"Template “{saved.name}” saved.", "success")
            return redirect(url_for("email_templates.index"))
        show_error(form, error)
    return _editor(form, template, 422)


@bp.post("/<pid:template_id>/delete")
@org_required(Role.ADMIN)
def delete(template_id: str):
    name, error = as_member(email_templates.delete, template_id)
    if error is not None:
        flash(error.message, "error")
        return redirect(url_for("email_templates.edit", template_id=template_id))
    flash(f"Template “{name}” deleted.", "info")
    return redirect(url_for("email_templates.index"))


@bp.post("/preview")
@org_required()
def preview():
    """The live preview (an htmx partial); reading only, so any member may ask for it."""
    # The CSRF token was checked before the view (CSRFProtect); nothing else to validate.
    return render_template("orgs/_email_preview.html", **_preview_of(EmailTemplateForm()))
