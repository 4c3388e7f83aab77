"""Sign-up, login, logout, password reset and the user's own profile."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required, login_user, logout_user

from plutomi import tenancy
from plutomi.auth.forms import (
    ForgotForm,
    LoginForm,
    PasswordForm,
    ProfileForm,
    ResetForm,
    SignupForm,
)
from plutomi.forms import show_error
from plutomi.services import accounts
from plutomi.services.errors import Invalid, ServiceError

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    """Only same-site paths: a login link must not send people to another site."""
    if target and target.startswith("/") and not target.startswith("//"):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return url_for("main.index")


def log_in(user, remember: bool) -> None:
    """A fresh session for a fresh login: nothing from before it carries over."""
    session.clear()
    accounts.start_session(user, remember)
    login_user(user, remember=remember)


SIGNUP_CLOSED = "Sign-up is closed on this server: ask an admin of your organisation to invite you."


@bp.route("/signup", methods=["GET", "POST"])
def signup():
    if current_user.is_authenticated:
        return redirect(url_for("main.index"))
    if not current_app.config["ALLOW_SIGNUP"]:
        abort(403, SIGNUP_CLOSED)
    form = SignupForm()
    if form.validate_on_submit():
        try:
            user, org = accounts.signup(
                form.name.data, form.email.data, form.password.data, form.org_name.data
            )
        except ServiceError as exc:
            show_error(form, exc)
        else:
            log_in(user, remember=False)
            tenancy.switch_to(org.public_id)
            flash(f"Welcome to Plutomi, {user.name}. {org.name} is ready.", "success")
            return redirect(url_for("openings.index"))
    return render_template("auth/signup.html", form=form), 422 if form.errors else 200


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    if request.method == "GET":
        form.next.data = request.args.get("next", "")
    if current_user.is_authenticated and request.method == "GET":
        return redirect(_safe_next(form.next.data))
    if form.validate_on_submit():
        try:
            user = accounts.authenticate(form.email.data, form.password.data, request.remote_addr)
        except ServiceError as exc:
            show_error(form, exc)
        else:
            log_in(user, remember=form.remember.data)
            return redirect(_safe_next(form.next.data))
    return render_template("auth/login.html", form=form), 429 if _throttled(form) else (
        422 if form.errors else 200
    )


def _throttled(form: LoginForm) -> bool:
    # Before validation WTForms keeps a field's errors as a tuple, so no `+` with a list.
    return any("Too many failed logins" in e for e in [*form.password.errors, *form.form_errors])


def log_out() -> None:
    """End the server-side session too, so a copied cookie is worth nothing afterwards."""
    if current_user.is_authenticated and current_user.session_key:
        accounts.end_session(current_user.session_key)
    logout_user()
    session.clear()


@bp.post("/logout")
def logout():
    log_out()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/password/forgot", methods=["GET", "POST"])
def forgot():
    form = ForgotForm()
    if form.validate_on_submit():
        try:
            accounts.request_password_reset(form.email.data, request.remote_addr)
        except ServiceError as exc:
            show_error(form, exc)
            return render_template("auth/forgot.html", form=form), exc.status
        # The same answer whether or not the account exists.
        flash("If an account uses that email, a reset link is on its way.", "info")
        return redirect(url_for("auth.login"))
    return render_template("auth/forgot.html", form=form), 422 if form.errors else 200


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
def reset(token: str):
    try:
        accounts.find_reset(token)
    except Invalid as exc:
        return render_template("auth/reset_invalid.html", message=exc.message), 404
    form = ResetForm()
    if form.validate_on_submit():
        try:
            user = accounts.reset_password(token, form.password.data)
        except ServiceError as exc:
            show_error(form, exc)
        else:
            log_in(user, remember=False)
            flash("Your password is changed, and every other session has ended.", "success")
            return redirect(url_for("main.index"))
    return render_template("auth/reset.html", form=form), 422 if form.errors else 200


@bp.route("/account", methods=["GET", "POST"])
@login_required
def account():
    profile = ProfileForm(prefix="profile", obj=current_user)
    password = PasswordForm(prefix="password")
    status = 200
    if request.method == "POST":
        which = request.form.get("form")
        form = profile if which == "profile" else password
        if form.validate_on_submit():
            try:
                if form is profile:
                    accounts.update_profile(current_user, form.name.data)
                    flash("Your profile is saved.", "success")
                else:
                    accounts.change_password(
                        current_user, form.current_password.data, form.new_password.data
                    )
                    flash("Your password is changed; your other sessions have ended.", "success")
            except ServiceError as exc:
                show_error(form, exc)
            else:
                return redirect(url_for("auth.account"))
        status = 422
    return render_template("auth/account.html", profile=profile, password=password), status
