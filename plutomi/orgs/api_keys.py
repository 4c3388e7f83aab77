"""Settings → API keys, for admins and owners: the org's keys, making one (its key is shown on
the answer to that one request, never again) and revoking one.

Revoking asks first: htmx asks with hx-confirm and sends `confirm=yes` itself (hx-vals);
without JavaScript the form posts without it and gets a page that asks, whose button sends it.
"""

from __future__ import annotations

from flask import Blueprint, flash, make_response, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import SelectChoice, SelectField, StringField

from plutomi.forms import as_member, show_error
from plutomi.models import ApiKey, Role
from plutomi.services import api_keys
from plutomi.tenancy import current_membership, org_required

bp = Blueprint("api_keys", __name__, url_prefix="/settings/api-keys")


class ApiKeyForm(FlaskForm):
    # No WTForms validators: the service checks both fields and says what is wrong.
    name = StringField(
        "Name",
        description="What uses the key, such as “Careers site” or “Account system”.",
        render_kw={"maxlength": api_keys.NAME_MAX},
    )
    scope = SelectField(
        "Access",
        choices=[SelectChoice(value, label) for value, label in api_keys.SCOPES.items()],
        default="read",
        validate_choice=False,
    )


def _page(
    form: ApiKeyForm | None = None,
    created: tuple[ApiKey, str] | None = None,
    status: int = 200,
):
    membership = current_membership()
    response = make_response(
        render_template(
            "orgs/api_keys.html",
            membership=membership,
            keys=api_keys.list_for(membership.org),
            form=form or ApiKeyForm(formdata=None),
            created=created,
        ),
        status,
    )
    if created is not None:
        # The page holds a live key: no cache, back button or proxy may keep a copy.
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("")
@org_required(Role.ADMIN)
def index():
    return _page()


@bp.post("")
@org_required(Role.ADMIN)
def create():
    form = ApiKeyForm()
    if form.validate_on_submit():
        created, error = as_member(api_keys.create, form.name.data, form.scope.data)
        if error is None:
            # Shown here, on this one answer: the key is not stored, so never again.
            return _page(created=created)
        show_error(form, error)
    return _page(form, status=422)


@bp.post("/<pid:key_id>/revoke")
@org_required(Role.ADMIN)
def revoke(key_id: str):
    # Only 403 and 404 can go wrong here, and as_member ends the request with those.
    if request.form.get("confirm") != "yes":
        key, _ = as_member(api_keys.get, key_id)
        return render_template("orgs/api_key_revoke.html", membership=current_membership(), key=key)
    key, _ = as_member(api_keys.revoke, key_id)
    flash(f"The key “{key.name}” is revoked: requests with it are refused from now on.", "info")
    return redirect(url_for("api_keys.index"))
