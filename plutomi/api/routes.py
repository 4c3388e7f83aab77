"""/api/v1: JSON for outside systems, authenticated by an org's API key.

Every request but the documentation sends `Authorization: Bearer <key>`; the key names the org,
and everything is looked up inside it (another org's opening or applicant is a 404). Each key
is rate-limited per minute. POSTs need a write key, take a JSON object of at most 64 KB, and
may carry an Idempotency-Key (plutomi.services.idempotency). The handlers call the same service
functions as the pages, so the rules fire and the events are written as they are for a person;
the actor of those events is the API key. Errors are JSON (plutomi.errors.handlers).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Blueprint, current_app, g, jsonify, render_template, request
from sqlalchemy import inspect, select
from sqlalchemy.orm import joinedload
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import RequestEntityTooLarge, Unauthorized

from plutomi.api import openapi, schemas
from plutomi.api.schemas import ApiError
from plutomi.extensions import csrf, db
from plutomi.models import ApiKey, Applicant, Opening
from plutomi.services import (
    answers,
    api_keys,
    applications,
    idempotency,
    moves,
    openings,
    rules,
    throttle,
    timeline,
)
from plutomi.services.errors import Conflict, Invalid, InvalidFields
from plutomi.services.events import Actor
from plutomi.services.lookups import by_public_id

bp = Blueprint("api", __name__, url_prefix="/api/v1")
# Authenticated by a header a browser never sends by itself: no cookie, so no CSRF to forge.
csrf.exempt(bp)

PUBLIC = {"api.openapi_json", "api.docs"}
RATE_WINDOW = 60
REPLAYED = "Idempotent-Replayed"


# --- every request ----------------------------------------------------------------------------


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def current_key() -> ApiKey:
    return g.api_key


@bp.before_request
def authenticate() -> None:
    if request.endpoint in PUBLIC:
        return
    key = api_keys.authenticate(_bearer())
    if key is None:
        raise Unauthorized(
            "Send a live API key of your org: Authorization: Bearer plk_... (an admin makes "
            "one under Settings → API keys).",
            www_authenticate=WWWAuthenticate("bearer", {"realm": "api"}),
        )
    g.api_key = key
    throttle.rate_limit(
        f"api:{key.id}",
        current_app.config["API_RATE_LIMIT"],
        RATE_WINDOW,
        "This API key sent too many requests this minute; wait Retry-After seconds.",
    )
    if request.method not in ("GET", "HEAD", "OPTIONS") and not key.can_write:
        raise ApiError(
            403,
            "This API key may only read. An admin can make a write key under Settings → API keys.",
            code="read_only_key",
        )


@bp.after_request
def no_store(response):
    # Answers hold applicants' personal data: no shared cache keeps them.
    if request.endpoint not in PUBLIC:
        response.headers["Cache-Control"] = "no-store"
    return response


def _body() -> dict[str, Any]:
    """The request's JSON object: 415, 413 or 400 when it is not one."""
    if request.mimetype != "application/json":
        raise ApiError(
            415,
            "Send the body as JSON, with Content-Type: application/json.",
            code="unsupported_media_type",
        )
    too_large = ApiError(413, f"The body is over {schemas.MAX_BODY // 1024} KB.", code="too_large")
    if request.content_length is not None and request.content_length > schemas.MAX_BODY:
        raise too_large
    # A body sent without a length (chunked) is read no further than one byte past the
    # limit: that byte says it is too large (the stream stops quietly at its cap).
    request.max_content_length = schemas.MAX_BODY + 1
    try:
        raw = request.get_data(cache=True)
    except RequestEntityTooLarge:
        raise too_large from None
    if len(raw) > schemas.MAX_BODY:
        raise too_large
    return schemas.parse(raw)


def _json(payload: dict[str, Any], status: int = 200):
    return jsonify(payload), status


def posting(view: Callable[..., tuple[dict[str, Any], int]]) -> Callable:
    """A POST: its body read and checked, then the view run once per Idempotency-Key.

    The key is claimed in the request's transaction and the response kept in it; a view may
    leave its work uncommitted, and then all three commit together here (see
    plutomi.services.idempotency for why this does the work exactly once)."""

    @wraps(view)
    def wrapped(**kwargs: Any):
        body = _body()
        header = request.headers.get(idempotency.HEADER)
        claimed = None
        if header is not None:
            key = idempotency.check_key(header)
            digest = idempotency.request_hash(request.method, request.path, body)
            claimed = idempotency.claim(current_key(), key, digest)
            if isinstance(claimed, idempotency.Stored):
                response = jsonify(claimed.body)
                response.status_code = claimed.status
                response.headers[REPLAYED] = "true"
                return response
        payload, status = view(body, **kwargs)
        if claimed is not None and 200 <= status < 300:
            idempotency.keep(claimed, status, payload)
        db.session.commit()
        return _json(payload, status)

    return wrapped


# --- lookups inside the key's org -------------------------------------------------------------


def _opening(opening_id: str) -> Opening:
    scope = select(Opening).where(Opening.org_id == current_key().org_id)
    return by_public_id(scope, Opening, opening_id, "No such opening in this org.")


# Every answer about an applicant names their opening and stage: loaded with them.
_WITH_PLACE = (joinedload(Applicant.opening), joinedload(Applicant.stage))


def _applicant(applicant_id: str) -> Applicant:
    scope = select(Applicant).where(Applicant.org_id == current_key().org_id).options(*_WITH_PLACE)
    return by_public_id(scope, Applicant, applicant_id, "No such applicant in this org.")


def _reread(applicant: Applicant) -> Applicant:
    """The applicant as committed: after rules that may have moved them on. One query, with
    the opening and stage the answer shows; the id is read from the identity, since reading
    `applicant.id` after a commit would load the expired row first."""
    db.session.expire_all()
    return db.session.scalars(
        select(Applicant)
        .where(Applicant.id == inspect(applicant).identity[0])
        .options(*_WITH_PLACE)
        .execution_options(populate_existing=True)
    ).one()


# --- openings ---------------------------------------------------------------------------------


@bp.get("/openings")
def list_openings():
    rows = db.session.scalars(
        select(Opening)
        .where(Opening.org_id == current_key().org_id, Opening.archived_at.is_(None))
        .order_by(Opening.created_at.desc(), Opening.id.desc())
    )
    return _json({"openings": [schemas.opening(row) for row in rows]})


@bp.get("/openings/<pid:opening_id>")
def get_opening(opening_id: str):
    return _json(schemas.opening_detail(_opening(opening_id)))


@bp.post("/openings/<pid:opening_id>/applicants")
@posting
def create_applicant(body: dict[str, Any], opening_id: str):
    found = applications.opening_of_org(
        current_key().org_id, opening_id, "No such opening in this org."
    )
    opening, questions = found.opening, found.questions
    name, email, given = schemas.new_applicant(body)
    if not applications.is_taking_applications(opening) or not opening.stages:
        raise ApiError(
            409,
            "This opening is not taking applications: only a published opening that is not "
            "archived is.",
            code="not_taking_applications",
        )
    values, problems = schemas.answer_values(given, questions, "the opening's first stage")
    raw = {answers.field_name(question): value for question, value in values}
    key = current_key()
    try:
        applicant, created = applications.apply(
            opening,
            name,
            email,
            raw,
            questions,
            actor=Actor.api_key(key),
            source="api",
            resend_link=False,
            known_errors=problems,
            commit=False,  # committed with the kept answer, by posting()
            rank=found.rank,
            applicant_id=found.applicant_id,
            files_later=True,  # the applicant uploads them from their portal
        )
    except InvalidFields as exc:
        raise schemas.answer_errors(exc, questions) from None
    if not created:
        raise Conflict(
            "This email applied to this opening already; `applicant_id` is their id.",
            "email",
            code="duplicate",
            details={"applicant_id": applicant.public_id},
        )
    # As written: a move by a rule left them as its UPDATE wrote them (no _reread needed),
    # and their answers are the values sent, as clean() stored them (a blank one is not).
    sent = dict(values)
    written = {q.key: answers.clean(q, sent[q]) for q in questions if q in sent}
    given = {key: value for key, value in written.items() if value is not None}
    return schemas.applicant(applicant, given), 201


# --- applicants -------------------------------------------------------------------------------


@bp.get("/applicants/<pid:applicant_id>")
def get_applicant(applicant_id: str):
    return _json(schemas.applicant(_applicant(applicant_id)))


@bp.post("/applicants/<pid:applicant_id>/move")
@posting
def move_applicant(body: dict[str, Any], applicant_id: str):
    applicant = _applicant(applicant_id)
    stage_id, version = schemas.move(body)
    try:
        moves.move_by_api(current_key(), applicant, stage_id, version=version)
    except Conflict as exc:
        if exc.code != "version_conflict":
            raise
        current = _reread(applicant).version
        raise Conflict(
            f"The applicant changed since version {version} was read; they are at version "
            f"{current} now. Read them again, then send the move with that version.",
            "version",
            code="version_conflict",
            details={"version": current},
        ) from None
    return schemas.applicant(_reread(applicant)), 200


@bp.post("/applicants/<pid:applicant_id>/answers")
@posting
def answer(body: dict[str, Any], applicant_id: str):
    applicant = _applicant(applicant_id)
    given = schemas.given_answers(body)
    questions = openings.stage_questions(applicant.stage)
    values, problems = schemas.answer_values(given, questions, "the applicant's current stage")
    try:
        answers.save_many(
            applicant, values, actor=Actor.api_key(current_key()), known_errors=problems
        )
    except InvalidFields as exc:
        raise schemas.answer_errors(exc, questions) from None
    return schemas.applicant(_reread(applicant)), 200


@bp.post("/applicants/<pid:applicant_id>/events")
@posting
def report_event(body: dict[str, Any], applicant_id: str):
    applicant = _applicant(applicant_id)
    kind, data = schemas.external_event(body)
    event, _ = rules.receive_external_event(
        applicant, kind, data, actor=Actor.api_key(current_key())
    )
    db.session.commit()
    shown = schemas.event(event)
    return {"event": shown, "applicant": schemas.applicant(_reread(applicant))}, 201


@bp.get("/applicants/<pid:applicant_id>/events")
def list_events(applicant_id: str):
    applicant = _applicant(applicant_id)
    limit, cursor = schemas.events_query(request.args)
    try:
        rows, older = timeline.events(current_key().org, applicant, cursor, limit)
    except Invalid:
        raise Invalid("This cursor is not one we gave out.", "cursor") from None
    return _json({"events": [schemas.event(row) for row in rows], "next_cursor": older})


# --- documentation ----------------------------------------------------------------------------


def _document() -> dict[str, Any]:
    return openapi.document(current_app.config["BASE_URL"])


@bp.get("/openapi.json")
def openapi_json():
    return _json(_document())


@bp.get("/docs")
def docs():
    doc = _document()
    return render_template(
        "api/docs.html",
        doc=doc,
        intro=doc["info"]["description"],
        ops=openapi.operations(doc),
        type_label=openapi.type_label,
    )
