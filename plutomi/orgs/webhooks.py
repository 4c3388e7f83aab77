"""Settings → Webhooks, for admins and owners: endpoints, their secrets and delivery logs.

A secret is shown once, on the page that answers its creation or rotation (never in a URL
or a later page). The delivery log is a partial that htmx pages and filters; "Retry now"
swaps one row for itself in its new state. Every read and write calls services.webhooks.
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
from flask_wtf import FlaskForm
from wtforms import BooleanField, SelectMultipleField, StringField, TextAreaField, URLField
from wtforms.widgets import CheckboxInput, ListWidget

from plutomi.forms import as_member, show_error
from plutomi.models import Role, WebhookEndpoint
from plutomi.services import outbox, webhooks
from plutomi.services.errors import ServiceError
from plutomi.tenancy import current_membership, org_required

bp = Blueprint("webhooks", __name__, url_prefix="/settings/webhooks")


@bp.context_processor
def _retryable() -> dict:
    # The states "Retry now" can reset: outbox.requeue's, so the button never offers more.
    return {"retryable": outbox.RETRYABLE}


class EndpointForm(FlaskForm):
    # No validators here: the service checks every field and the form shows all its messages.
    url = URLField(
        "URL",
        description="Where we POST each event, signed per the Standard Webhooks spec.",
        render_kw={"placeholder": "https://example.com/hooks/plutomi", "maxlength": 2000},
    )
    description = TextAreaField("Description", render_kw={"rows": 2, "maxlength": 500})
    event_types = SelectMultipleField(
        "Events", widget=ListWidget(prefix_label=False), option_widget=CheckboxInput()
    )
    custom_types = StringField(
        "Other event types",
        description="Types your rules emit that are not listed above, separated by spaces.",
    )
    include_personal_data = BooleanField(
        "Include personal data",
        default=True,
        description="Names, email addresses and answers. Turn off to send ids and stages only.",
    )
    enabled = BooleanField("Enabled", default=True)

    def offer(self, org_id: int) -> None:
        choices = [*webhooks.EVENT_TYPES, *webhooks.custom_types(org_id)]
        self.event_types.choices = [(t, t) for t in dict.fromkeys(choices)]

    def to_input(self) -> webhooks.EndpointInput:
        return webhooks.EndpointInput(
            url=self.url.data or "",
            description=self.description.data or "",
            event_types=tuple(self.event_types.data or ()),
            custom_types=self.custom_types.data or "",
            enabled=bool(self.enabled.data),
            include_personal_data=bool(self.include_personal_data.data),
        )


def _form(endpoint: WebhookEndpoint | None = None) -> EndpointForm:
    membership = current_membership()
    if request.method == "POST":
        form = EndpointForm()
    elif endpoint is not None:
        form = EndpointForm(obj=endpoint)
    else:
        form = EndpointForm(formdata=None)
    form.offer(membership.org_id)
    if request.method != "POST" and endpoint is not None:
        offered = {value for value, _ in form.event_types.choices}
        form.event_types.data = [t for t in endpoint.event_types if t in offered]
        form.custom_types.data = " ".join(t for t in endpoint.event_types if t not in offered)
    return form


def _endpoint(endpoint_id: str) -> WebhookEndpoint:
    endpoint, _ = as_member(webhooks.get_endpoint, endpoint_id)
    return endpoint


def _show(
    endpoint: WebhookEndpoint,
    form: EndpointForm | None = None,
    secret: str | None = None,
    status: int = 200,
):
    state = request.args.get("state") or None
    response = make_response(
        render_template(
            "webhooks/show.html",
            membership=current_membership(),
            endpoint=endpoint,
            form=form or _form(endpoint),
            secret=secret,
            counts=webhooks.delivery_counts(endpoint),
            **_log(endpoint, state),
        ),
        status,
    )
    if secret is not None:
        # The page holds a live secret: no cache, back button or proxy may keep a copy. The
        # address bar names the endpoint's page, whose reload shows it without the secret.
        response.headers["Cache-Control"] = "no-store"
        response.headers["HX-Replace-Url"] = url_for(
            "webhooks.show", endpoint_id=endpoint.public_id
        )
    return response


def _log(endpoint: WebhookEndpoint, state: str | None, before: str | None = None) -> dict:
    """The delivery log's part of a page: a page of rows, filtered by state."""
    try:
        rows = webhooks.deliveries(endpoint, state, before)
    except ServiceError as exc:  # a state or a cursor mangled in the URL
        abort(400, exc.message)
    return {
        "state": state,
        "states": webhooks.DELIVERY_STATES,
        "rows": rows,
        "page_size": webhooks.LOG_PAGE,
    }


@bp.get("")
@org_required(Role.ADMIN)
def index():
    membership = current_membership()
    return render_template(
        "webhooks/index.html",
        membership=membership,
        endpoints=webhooks.endpoints(membership.org_id),
    )


@bp.route("/new", methods=["GET", "POST"])
@org_required(Role.ADMIN)
def new():
    form = _form()
    if request.method == "POST" and form.validate_on_submit():
        result, error = as_member(webhooks.create_endpoint, form.to_input())
        if error is None:
            endpoint, secret = result
            flash("Endpoint added. Copy its signing secret now: it is shown only once.", "success")
            return _show(endpoint, secret=secret)
        show_error(form, error)
    status = 422 if form.errors or form.form_errors else 200
    return render_template("webhooks/new.html", membership=current_membership(), form=form), status


@bp.get("/<pid:endpoint_id>")
@org_required(Role.ADMIN)
def show(endpoint_id: str):
    return _show(_endpoint(endpoint_id))


@bp.post("/<pid:endpoint_id>")
@org_required(Role.ADMIN)
def update(endpoint_id: str):
    endpoint = _endpoint(endpoint_id)
    form = _form(endpoint)
    if form.validate_on_submit():
        _, error = as_member(webhooks.update_endpoint, endpoint_id, form.to_input())
        if error is None:
            flash("Endpoint saved.", "success")
            return redirect(url_for("webhooks.show", endpoint_id=endpoint_id))
        show_error(form, error)
        endpoint = _endpoint(endpoint_id)  # the refused change was rolled back
    return _show(endpoint, form, status=422)


@bp.post("/<pid:endpoint_id>/rotate")
@org_required(Role.ADMIN)
def rotate(endpoint_id: str):
    (endpoint, secret), _ = as_member(webhooks.rotate_secret, endpoint_id)
    flash(
        "New secret made. Deliveries are signed with the old one too for 24 hours: switch "
        "your receiver to the new one before then.",
        "success",
    )
    return _show(endpoint, secret=secret)


@bp.post("/<pid:endpoint_id>/delete")
@org_required(Role.ADMIN)
def delete(endpoint_id: str):
    # Asks first, as revoking an API key does: htmx with hx-confirm (and sends confirm=yes);
    # without JavaScript the post gets a page that asks, whose button sends it.
    if request.form.get("confirm") != "yes":
        return render_template(
            "webhooks/delete.html",
            membership=current_membership(),
            endpoint=_endpoint(endpoint_id),
        )
    as_member(webhooks.delete_endpoint, endpoint_id)
    flash("Endpoint deleted, with its delivery log.", "success")
    return redirect(url_for("webhooks.index"))


@bp.post("/<pid:endpoint_id>/test")
@org_required(Role.ADMIN)
def test(endpoint_id: str):
    as_member(webhooks.send_test, endpoint_id)
    flash("Test event queued. It shows in the log below once it is sent.", "success")
    return redirect(url_for("webhooks.show", endpoint_id=endpoint_id))


@bp.post("/<pid:endpoint_id>/replay")
@org_required(Role.ADMIN)
def replay(endpoint_id: str):
    count, _ = as_member(webhooks.replay_dead, endpoint_id)
    if count:
        flash(
            f"{count} dead deliver{'y' if count == 1 else 'ies'} queued again, "
            f"{webhooks.REPLAY_PER_SECOND} a second at most.",
            "success",
        )
    else:
        flash("No dead deliveries to replay.", "info")
    return redirect(url_for("webhooks.show", endpoint_id=endpoint_id))


@bp.get("/<pid:endpoint_id>/deliveries")
@org_required(Role.ADMIN)
def deliveries(endpoint_id: str):
    """More of the log (htmx "Show older"), or the log filtered by state."""
    endpoint = _endpoint(endpoint_id)
    log = _log(endpoint, request.args.get("state") or None, request.args.get("before"))
    return render_template("webhooks/_deliveries.html", endpoint=endpoint, **log)


@bp.post("/<pid:endpoint_id>/deliveries/<pid:delivery_id>/retry")
@org_required(Role.ADMIN)
def retry(endpoint_id: str, delivery_id: str):
    retried, _ = as_member(webhooks.retry_now, endpoint_id, delivery_id)
    endpoint = _endpoint(endpoint_id)
    webhooks.get_delivery(endpoint, delivery_id)  # a 404 for a delivery of another endpoint
    if request.htmx:
        # The whole log again: its counts change, and it redraws itself until the row is sent.
        response = _show(endpoint)
        response.headers.update(
            {"HX-Retarget": "#deliveries", "HX-Reselect": "#deliveries", "HX-Reswap": "outerHTML"}
        )
        return response
    if retried:
        flash("Delivery queued again.", "success")
    else:
        flash("That delivery is being sent or was sent already.", "info")
    return redirect(url_for("webhooks.show", endpoint_id=endpoint_id))
