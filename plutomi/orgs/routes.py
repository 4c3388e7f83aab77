"""Org settings, members, invites, and switching between orgs."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from plutomi import tenancy
from plutomi.auth.forms import InviteSignupForm
from plutomi.auth.routes import log_in, log_out
from plutomi.forms import show_error
from plutomi.models import Role
from plutomi.orgs.forms import InviteForm, NewOrgForm, OrgForm, RoleForm
from plutomi.services import accounts, orgs
from plutomi.services.errors import Invalid, ServiceError
from plutomi.tenancy import current_membership, org_required

bp = Blueprint("orgs", __name__)


@bp.route("/settings", methods=["GET", "POST"])
@org_required()
def settings():
    membership = current_membership()
    if request.method == "POST" and not membership.can(Role.ADMIN):
        # Before validating: a weaker role gets 403 for any post, not a form of errors.
        abort(403, f"This needs the {Role.ADMIN.label} role or higher.")
    form = OrgForm(obj=membership.org)
    if request.method == "POST" and form.validate_on_submit():
        try:
            orgs.update_settings(membership, form.name.data, form.slug.data)
        except ServiceError as exc:
            if exc.status == 403:
                abort(403, exc.message)
            show_error(form, exc)
        else:
            flash("Settings saved.", "success")
            return redirect(url_for("orgs.settings"))
    status = 422 if form.errors or form.form_errors else 200
    return render_template("orgs/settings.html", form=form, membership=membership), status


def _members_page(invite_form: InviteForm | None = None, status: int = 200):
    membership = current_membership()
    org = membership.org
    context = {
        "membership": membership,
        "members": orgs.members(org),
        "invites": orgs.pending_invites(org),
        # formdata=None: after an invite is sent, the form starts empty, not with its email.
        "invite_form": invite_form or InviteForm(formdata=None),
        "role_form": RoleForm,
    }
    template = (
        "orgs/_members.html" if request.htmx and not request.htmx.boosted else "orgs/members.html"
    )
    return render_template(template, **context), status


@bp.get("/settings/members")
@org_required()
def members():
    return _members_page()


@bp.post("/settings/invites")
@org_required(Role.ADMIN)
def invite():
    form = InviteForm()
    if form.validate_on_submit():
        try:
            row = orgs.invite(current_membership(), form.email.data, Role(form.role.data))
        except ServiceError as exc:
            if exc.status == 403:
                abort(403, exc.message)
            show_error(form, exc)
            return _members_page(form, 429 if exc.status == 429 else 422)
        else:
            flash(f"Invite sent to {row.email}.", "success")
            return _after_change()
    return _members_page(form, 422)


def _after_change():
    """htmx gets the members section again; a plain form post gets a redirect."""
    if request.htmx and not request.htmx.boosted:
        return _members_page()
    return redirect(url_for("orgs.members"))


def _member_action(action, *args):
    try:
        action(current_membership(), *args)
    except ServiceError as exc:
        if exc.status in (403, 404):
            abort(exc.status, exc.message)
        flash(exc.message, "error")
        if request.htmx and not request.htmx.boosted:
            return _members_page(status=422)
        return redirect(url_for("orgs.members"))
    return None


@bp.post("/settings/invites/<pid:invite_id>/revoke")
@org_required(Role.ADMIN)
def revoke_invite(invite_id: str):
    if failed := _member_action(orgs.revoke_invite, invite_id):
        return failed
    flash("Invite revoked.", "info")
    return _after_change()


@bp.post("/settings/members/<pid:user_id>/role")
@org_required(Role.ADMIN)
def change_role(user_id: str):
    form = RoleForm()
    if not form.validate_on_submit():
        abort(400, "Choose one of the roles offered.")
    if failed := _member_action(orgs.change_role, user_id, Role(form.role.data)):
        return failed
    flash("Role changed.", "success")
    return _after_change()


@bp.post("/settings/members/<pid:user_id>/remove")
@org_required(Role.ADMIN)
def remove_member(user_id: str):
    if failed := _member_action(orgs.remove_member, user_id):
        return failed
    flash("Member removed.", "info")
    return _after_change()


@bp.post("/orgs/leave")
@org_required()
def leave():
    membership = current_membership()
    name = membership.org.name
    try:
        orgs.leave(membership)
    except Invalid as exc:
        flash(exc.message, "error")
        return redirect(url_for("orgs.members"))
    tenancy.forget()
    flash(f"You left {name}.", "info")
    return redirect(url_for("main.index"))


@bp.post("/orgs/switch")
@login_required
def switch():
    membership = tenancy.switch_to(request.form.get("org", ""))
    flash(f"Switched to {membership.org.name}.", "info")
    return redirect(url_for("openings.index"))


@bp.route("/orgs/new", methods=["GET", "POST"])
@login_required
def new():
    form = NewOrgForm()
    if form.validate_on_submit():
        try:
            org = orgs.create_for(current_user, form.org_name.data)
        except ServiceError as exc:
            show_error(form, exc)
        else:
            tenancy.forget()
            tenancy.switch_to(org.public_id)
            flash(f"{org.name} is ready.", "success")
            return redirect(url_for("openings.index"))
    return render_template("orgs/new.html", form=form), 422 if form.errors else 200


@bp.route("/invites/<token>", methods=["GET", "POST"])
def accept(token: str):
    """One page for everyone holding an invite link: new users sign up, members accept."""
    try:
        invite = orgs.find_invite(token)
    except Invalid as exc:
        return render_template("orgs/invite_invalid.html", message=exc.message), 404
    existing = accounts.find_user(invite.email)
    signup_form = InviteSignupForm()
    error = None
    if request.method == "POST":
        try:
            if current_user.is_authenticated:
                orgs.accept_invite(token, current_user)
            elif existing is None and signup_form.validate_on_submit():
                user = accounts.signup_for_invite(
                    signup_form.name.data, signup_form.password.data, token
                )
                log_in(user, remember=False)
            else:
                raise (
                    Invalid("Fill in the form below.")
                    if existing is None
                    else Invalid("Log in first.")
                )
        except ServiceError as exc:
            show_error(signup_form, exc)
            # The sign-up form shows its own errors; without it, say it once above.
            error = exc.message if current_user.is_authenticated or existing else None
        else:
            tenancy.forget()
            tenancy.switch_to(invite.org.public_id)
            flash(f"Welcome to {invite.org.name}.", "success")
            return redirect(url_for("openings.index"))
    status = 422 if request.method == "POST" else 200
    return render_template(
        "orgs/accept.html",
        invite=invite,
        existing=existing,
        form=signup_form,
        token=token,
        error=error,
    ), status


@bp.post("/invites/<token>/logout")
def logout_for_invite(token: str):
    """'Not you?': log out and come back to the invite as the right person."""
    try:
        orgs.find_invite(token)  # a dead link logs nobody out
    except Invalid as exc:
        return render_template("orgs/invite_invalid.html", message=exc.message), 404
    log_out()
    return redirect(url_for("orgs.accept", token=token))
