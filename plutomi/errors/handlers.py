"""Error pages of our own; JSON for the API. No stack trace ever reaches a user."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, jsonify, make_response, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from plutomi import htmx
from plutomi.extensions import db
from plutomi.services.errors import InvalidFields, ServiceError

TITLES = {
    400: "Bad request",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed",
    409: "Changed meanwhile",
    413: "Too large",
    422: "Check your input",
    429: "Slow down",
    500: "Something went wrong",
}


# The error's `code` when nothing more precise was given: stable names API clients branch on.
CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    410: "gone",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
    500: "internal_error",
}


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def error_body(
    status: int,
    message: str,
    *,
    code: str | None = None,
    field: str | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """{"error": {"code", "message", "field", "status", ...details}}: every JSON error."""
    error = {
        "code": code or CODES.get(status, "error"),
        "message": message,
        "field": field,
        "status": status,
    }
    return {"error": {**(details or {}), **error}}


def _render(
    status: int,
    message: str,
    *,
    code: str | None = None,
    field: str | None = None,
    details: dict[str, Any] | None = None,
):
    if wants_json():
        body = error_body(status, message, code=code, field=field, details=details)
        return jsonify(body), status
    title = TITLES.get(status, "Error")
    if request.htmx and (not request.htmx.boosted or request.method != "GET"):
        # A partial's request (a note's edit, a panel, a poll): a whole page swapped into its
        # target would nest a second page there. A boosted form's: the page keeps what was
        # typed in it. Either way nothing is swapped, and the message shows with the flashes.
        response = make_response(
            render_template("errors/_error.html", status=status, title=title, message=message),
            status,
        )
        response.headers["HX-Reswap"] = "none"
        return htmx.trigger(response, "flash", [{"category": "error", "message": message}])
    # An applicant's pages keep their own frame: no recruiters' "Log in" on a job board.
    layout = "public/layout.html" if request.blueprint == "public" else "base.html"
    page = render_template(
        "errors/error.html", status=status, title=title, message=message, layout=layout
    )
    return page, status


def register(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError):
        return _render(
            400, "This form had expired or came from another site. Reload the page and try again."
        )

    @app.errorhandler(ServiceError)
    def service_error(exc: ServiceError):
        db.session.rollback()
        details = dict(exc.details)
        if isinstance(exc, InvalidFields):
            details["errors"] = exc.errors
        response = make_response(
            _render(exc.status, exc.message, code=exc.code, field=exc.field, details=details)
        )
        if getattr(exc, "retry_after", None):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if exc.code and exc.code >= 500:
            db.session.rollback()
        default = {
            404: "There is nothing here. The link may be old, or the page belongs to another org.",
            403: "Your role in this org does not allow that.",
            413: (
                f"That upload is larger than the {current_app.config['MAX_UPLOAD_MB']} MB "
                "allowed. Choose a smaller file."
            ),
            415: "Send this as JSON (Content-Type: application/json).",
        }
        if request.path.startswith("/api/"):
            default[404] = (
                "Nothing here: check the path, and that each id in it is one the API gave."
            )
        message = exc.description if exc.description != type(exc).description else None
        response = make_response(
            _render(exc.code or 500, message or default.get(exc.code, exc.description or ""))
        )
        # Keep the exception's own headers (a 405's Allow, for one), not its content type.
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        db.session.rollback()
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        return _render(500, "We could not finish that. It is logged; please try again.")
