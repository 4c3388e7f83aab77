"""The OpenAPI 3.1 document of /api/v1, built from the same limits the handlers check; the
docs page (/api/v1/docs) is rendered from it too, so the two cannot drift apart. A test runs
generated requests against every operation and checks the answers against this document."""

from __future__ import annotations

import json
from typing import Any

from plutomi.api import schemas
from plutomi.models import ApplicantStatus, OpeningState, QuestionType
from plutomi.models.base import PUBLIC_ID_PATTERN
from plutomi.services import events, idempotency

VERSION = "1.0.0"
ID = {"type": "string", "pattern": f"^{PUBLIC_ID_PATTERN}$", "minLength": 16, "maxLength": 16}
WHEN = {"type": "string", "format": "date-time"}
MAYBE_WHEN = {"type": ["string", "null"], "format": "date-time"}
EXAMPLE_IDS = {
    "opening_id": "k3v9x2m7q1w8e5r4",
    "applicant_id": "a8d2f6h1j4l7n0p3",
    "stage_id": "s5t2u9v6w3x0y7z4",
}
ACTOR_TYPES = ["user", "applicant", "rule", "api_key", "system"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(properties: dict[str, Any], required: list[str] | None = None, **more: Any) -> dict:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        **more,
    }


INTRO = f"""\
Plutomi's API lets an outside system read an org's openings and applicants, create applicants
as the hosted application form does, move them, answer for them and report events that rules
wait for.

**Authentication.** Every request except this page and `/api/v1/openapi.json` sends an API key
of the org: `Authorization: Bearer plk_...`. Admins and owners make keys under Settings → API
keys; a key is shown once, when made. A missing, unknown or revoked key gets 401 with
`WWW-Authenticate: Bearer`. A *read* key may only GET; a *write* key may also POST (a read key
that POSTs gets 403).

**Requests.** POST bodies are JSON objects (`Content-Type: application/json`) of at most
{schemas.MAX_BODY // 1024} KB. Ids are the 16-character ids the API answers with; an opening or
applicant of another org is a 404, as is one that does not exist.

**Errors.** Every error is JSON: `{{"error": {{"code", "message", "field", "status"}}}}`. `code`
is stable (`unauthorized`, `not_found`, `duplicate`, `version_conflict`, ...), `message` is for
people, and `field` names the part of the request at fault (such as `answers.phone`) or is null.
A 422 with several bad fields lists them all in `errors` ({{field: message}}). Statuses: 400
malformed JSON, a body that is not an object or a bad `{idempotency.HEADER}`; 401; 403; 404;
405; 409 a conflict; 413 a body over {schemas.MAX_BODY // 1024} KB; 415 a body that is not
`application/json`; 422 a field that is wrong; 429 too many requests (wait `Retry-After`
seconds); 500 our fault (it is logged; nothing of it is shown).

**Idempotency.** Every POST accepts `{idempotency.HEADER}` (1 to {idempotency.KEY_MAX}
printable ASCII characters; a UUID is best). Sent again with the same key, method, path and
body, a request is not carried out again: its first response is replayed, with
`Idempotent-Replayed: true` (a repeat that arrives while the first is still running waits for
it). The same key with another request gets 409 `idempotency_mismatch`. Only successful
responses are kept; a refused request can be fixed and sent again with the same key. Keys are
kept for at least {int(idempotency.KEEP.total_seconds() // 3600)} hours.

**Rate limits.** Each key may make a number of requests a minute (1,200 unless the server sets
`API_RATE_LIMIT`); past it, 429 with `Retry-After`.
"""


def _components() -> dict[str, Any]:
    answer_out = {
        "description": "Text, a number, true/false (yes/no questions), a list of options "
        "(multiple choice), or an upload's id (file questions).",
        "type": ["string", "number", "boolean", "array"],
        "items": {"type": "string"},
    }
    answer_in = {
        "description": "A string; a number; true or false for a yes/no question; a list of "
        "strings for a multiple choice; null to leave it blank. Files cannot be sent.",
        "type": ["string", "number", "boolean", "array", "null"],
        "items": {"type": "string"},
    }
    question = _obj(
        {
            "id": ID,
            "key": {"type": "string", "description": "Stable per opening: answers use it."},
            "type": {"type": "string", "enum": [t.value for t in QuestionType]},
            "label": {"type": "string"},
            "help_text": {"type": "string"},
            "required": {"type": "boolean"},
            "options": {"type": "array", "items": {"type": "string"}},
            "min": {
                "type": ["number", "null"],
                "description": "A number's least value, or a text's least length.",
            },
            "max": {
                "type": ["number", "null"],
                "description": "A number's greatest value, or a text's greatest length.",
            },
        }
    )
    opening = _obj(
        {
            "id": ID,
            "name": {"type": "string"},
            "slug": {"type": "string"},
            "state": {"type": "string", "enum": [s.value for s in OpeningState]},
            "created_at": WHEN,
        }
    )
    opening_detail = _obj(
        {
            **opening["properties"],
            "description": {"type": "string", "description": "Markdown."},
            "archived": {"type": "boolean"},
            "stages": {"type": "array", "items": _ref("Stage")},
        }
    )
    named = _obj({"id": ID, "name": {"type": "string"}})
    applicant = _obj(
        {
            "id": ID,
            "name": {"type": "string"},
            "email": {"type": "string"},
            "status": {"type": "string", "enum": [s.value for s in ApplicantStatus]},
            "version": {
                "type": "integer",
                "minimum": 1,
                "description": "Grows with every change; send it with a move to refuse a "
                "move based on a stale read.",
            },
            "opening": named,
            "stage": named,
            "entered_stage_at": WHEN,
            "stage_completed_at": {
                **MAYBE_WHEN,
                "description": "When every required question of the stage was answered.",
            },
            "created_at": WHEN,
            "answers": {
                "type": "object",
                "description": "By question key, for every stage answered so far.",
                "additionalProperties": _ref("AnswerValue"),
            },
        }
    )
    event = _obj(
        {
            "type": {"type": "string", "description": "Such as applicant.moved."},
            "actor": _obj({"type": {"type": "string", "enum": ACTOR_TYPES}}),
            "payload": {"type": "object"},
            "created_at": WHEN,
        }
    )
    error = _obj(
        {
            "error": _obj(
                {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "field": {"type": ["string", "null"]},
                    "status": {"type": "integer"},
                    "errors": {
                        "type": "object",
                        "description": "Every bad field and its message (422 only).",
                        "additionalProperties": {"type": "string"},
                    },
                    "applicant_id": {
                        **ID,
                        "description": "The applicant who applied with this email already "
                        "(409 duplicate only).",
                    },
                    "version": {
                        "type": "integer",
                        "description": "The applicant's version now (409 version_conflict).",
                    },
                },
                ["code", "message", "field", "status"],
            )
        }
    )
    new_applicant = _obj(
        {
            "name": {"type": "string", "maxLength": schemas.NAME_MAX},
            "email": {"type": "string", "maxLength": schemas.EMAIL_MAX},
            "answers": {
                "type": "object",
                "description": "Answers to the questions of the opening's first stage, by key.",
                "additionalProperties": _ref("AnswerInput"),
            },
        },
        ["name", "email"],
        additionalProperties=False,
    )
    move = _obj(
        {
            "stage_id": {**ID, "description": "A stage of the applicant's opening."},
            "version": {
                "type": "integer",
                "minimum": 1,
                "description": "The version you read; a different one now is a 409.",
            },
        },
        ["stage_id"],
        additionalProperties=False,
    )
    answers = _obj(
        {
            "answers": {
                "type": "object",
                "minProperties": 1,
                "description": "Answers to questions of the applicant's current stage, by key.",
                "additionalProperties": _ref("AnswerInput"),
            }
        },
        additionalProperties=False,
    )
    external = _obj(
        {
            "type": {
                "type": "string",
                "pattern": events.TYPE_RE.pattern,
                "maxLength": events.TYPE_MAX,
                "description": "Lower case, words joined by dots: the name a rule's "
                "“outside event” trigger waits for.",
            },
            "data": {
                "type": "object",
                "description": f"Anything the event carries, at most "
                f"{schemas.DATA_MAX // 1024} KB of JSON.",
            },
        },
        ["type"],
        additionalProperties=False,
    )
    return {
        "securitySchemes": {
            "apiKey": {
                "type": "http",
                "scheme": "bearer",
                "description": "An API key of the org (plk_...), made under Settings → API keys.",
            }
        },
        "parameters": {
            "IdempotencyKey": {
                "name": idempotency.HEADER,
                "in": "header",
                "required": False,
                "description": "Makes the request safe to send again: a repeat is answered "
                "with the first response instead of being carried out again.",
                "schema": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": idempotency.KEY_MAX,
                    "pattern": "^[!-~]([ -~]*[!-~])?$",
                },
                "example": "6f1c8a52-3c1e-4a8e-9b61-0d2f1b9f7e11",
            },
            "OpeningId": {
                "name": "opening_id",
                "in": "path",
                "required": True,
                "description": "The opening's id, as GET /api/v1/openings gives it.",
                "schema": ID,
                "example": EXAMPLE_IDS["opening_id"],
            },
            "ApplicantId": {
                "name": "applicant_id",
                "in": "path",
                "required": True,
                "description": "The applicant's id, as creating them answered it.",
                "schema": ID,
                "example": EXAMPLE_IDS["applicant_id"],
            },
        },
        "schemas": {
            "Error": error,
            "Opening": opening,
            "OpeningDetail": opening_detail,
            "Stage": _obj(
                {
                    "id": ID,
                    "name": {"type": "string"},
                    "position": {"type": "integer"},
                    "questions": {"type": "array", "items": _ref("Question")},
                }
            ),
            "Question": question,
            "Applicant": applicant,
            "AnswerValue": answer_out,
            "AnswerInput": answer_in,
            "Event": event,
            "NewApplicant": new_applicant,
            "Move": move,
            "Answers": answers,
            "ExternalEvent": external,
        },
    }


def _json(schema: dict[str, Any], description: str, **more: Any) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}, **more}


def _error(description: str, headers: dict | None = None) -> dict[str, Any]:
    response = _json(_ref("Error"), description)
    if headers:
        response["headers"] = headers
    return response


def _common(post: bool) -> dict[str, Any]:
    """The answers every authenticated operation can give, besides its own."""
    responses = {
        "401": _error(
            "No key, or an unknown or revoked one.",
            {"WWW-Authenticate": {"schema": {"type": "string"}, "required": True}},
        ),
        "429": _error(
            "Too many requests from this key this minute.",
            {"Retry-After": {"schema": {"type": "integer"}, "required": True}},
        ),
        "500": _error("Our fault; it is logged."),
    }
    if post:
        responses |= {
            "400": _error(
                "The body is not JSON or not an object, or the Idempotency-Key is not valid."
            ),
            "403": _error("A read key cannot POST."),
            "413": _error(f"The body is over {schemas.MAX_BODY // 1024} KB."),
            "415": _error("The body is not application/json."),
        }
    return responses


REPLAYED = {
    "Idempotent-Replayed": {
        "description": "true when this is the stored response to an earlier request with the "
        "same Idempotency-Key.",
        "schema": {"type": "string", "enum": ["true"]},
    }
}


def _post(
    summary: str,
    description: str,
    operation_id: str,
    params: list[str],
    body: str,
    example: dict[str, Any],
    ok: tuple[str, dict[str, Any]],
    errors: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    status, response = ok
    response["headers"] = REPLAYED
    return {
        "summary": summary,
        "description": description,
        "operationId": operation_id,
        "tags": ["Applicants"],
        "parameters": [{"$ref": f"#/components/parameters/{p}"} for p in params]
        + [{"$ref": "#/components/parameters/IdempotencyKey"}],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _ref(body), "example": example}},
        },
        "responses": {status: response, **errors, **_common(post=True)},
    }


def _paths() -> dict[str, Any]:
    not_found_opening = _error("No such opening in this org.")
    not_found_applicant = _error("No such applicant in this org.")
    invalid = _error("A field is wrong; `field` (and `errors`) say which and why.")
    applicant_ok = _json(_ref("Applicant"), "The applicant, as they are now.")
    return {
        "/api/v1/openings": {
            "get": {
                "summary": "List openings",
                "description": "The org's openings that are not archived (drafts, published "
                "and closed), newest first.",
                "operationId": "listOpenings",
                "tags": ["Openings"],
                "responses": {
                    "200": _json(
                        _obj({"openings": {"type": "array", "items": _ref("Opening")}}),
                        "The openings.",
                    ),
                    **_common(post=False),
                },
            }
        },
        "/api/v1/openings/{opening_id}": {
            "get": {
                "summary": "Get an opening",
                "description": "The opening with its stages in order, each with its questions: "
                "what to send when creating an applicant, and the stage ids moves name.",
                "operationId": "getOpening",
                "tags": ["Openings"],
                "parameters": [{"$ref": "#/components/parameters/OpeningId"}],
                "responses": {
                    "200": _json(_ref("OpeningDetail"), "The opening."),
                    "404": not_found_opening,
                    **_common(post=False),
                },
            }
        },
        "/api/v1/openings/{opening_id}/applicants": {
            "post": _post(
                "Create an applicant",
                "Applies to a published opening as its hosted form does: the applicant starts "
                "in the first stage, every answer to that stage's questions is checked by its "
                "type, the applicant is emailed a link to their portal, and the stage's rules "
                "run. Questions left out are blank (a required one is an error). File questions "
                "cannot be answered here: the applicant uploads files in their portal, and a "
                "required one leaves the first stage incomplete until they do (its completion "
                "rules wait for the upload).",
                "createApplicant",
                ["OpeningId"],
                "NewApplicant",
                {
                    "name": "Ana Lima",
                    "email": "ana@example.com",
                    "answers": {"city": "Lisbon", "age": 30, "has_licence": True},
                },
                ("201", _json(_ref("Applicant"), "The new applicant.")),
                {
                    "404": not_found_opening,
                    "409": _error(
                        "`duplicate`: this email applied to this opening already (its id is "
                        "`applicant_id`); `not_taking_applications`: the opening is not "
                        "published; `idempotency_mismatch` or `idempotency_in_progress`."
                    ),
                    "422": invalid,
                },
            )
        },
        "/api/v1/applicants/{applicant_id}": {
            "get": {
                "summary": "Get an applicant",
                "operationId": "getApplicant",
                "tags": ["Applicants"],
                "parameters": [{"$ref": "#/components/parameters/ApplicantId"}],
                "responses": {
                    "200": applicant_ok,
                    "404": not_found_applicant,
                    **_common(post=False),
                },
            }
        },
        "/api/v1/applicants/{applicant_id}/move": {
            "post": _post(
                "Move an applicant",
                "Moves the applicant to the top of a stage of their opening (or within their "
                "stage), as a drag on the board does: the entered stage's rules run, and may "
                "move them on at once. Send the `version` you read to refuse the move if the "
                "applicant changed since.",
                "moveApplicant",
                ["ApplicantId"],
                "Move",
                {"stage_id": EXAMPLE_IDS["stage_id"], "version": 3},
                ("200", applicant_ok),
                {
                    "404": not_found_applicant,
                    "409": _error(
                        "`version_conflict`: the applicant changed since that version (the "
                        "current one is `version`); `not_active`: rejected or withdrawn; "
                        "`idempotency_mismatch` or `idempotency_in_progress`."
                    ),
                    "422": invalid,
                },
            )
        },
        "/api/v1/applicants/{applicant_id}/answers": {
            "post": _post(
                "Answer questions",
                "Answers questions of the applicant's current stage, checked as the portal "
                "checks them; every bad answer is reported at once and then none is saved. "
                "When these were the stage's last required answers the stage is completed. The "
                "stage's rules run once for the whole batch.",
                "answerQuestions",
                ["ApplicantId"],
                "Answers",
                {"answers": {"phone": "+351 912 345 678", "city": "Porto"}},
                ("200", applicant_ok),
                {
                    "404": not_found_applicant,
                    "409": _error(
                        "`not_active`: the applicant was rejected or withdrew; "
                        "`idempotency_mismatch` or `idempotency_in_progress`."
                    ),
                    "422": invalid,
                },
            )
        },
        "/api/v1/applicants/{applicant_id}/events": {
            "post": _post(
                "Report an outside event",
                "Records an event from your system on the applicant's timeline (as "
                "applicant.external_event) and runs the rules of their stage that wait for its "
                "type: a rule may move them, for example to “Account Creation Failures”.",
                "createEvent",
                ["ApplicantId"],
                "ExternalEvent",
                {"type": "account_creation.failed", "data": {"reason": "email taken"}},
                (
                    "201",
                    _json(
                        _obj({"event": _ref("Event"), "applicant": _ref("Applicant")}),
                        "The event recorded, and the applicant after its rules ran.",
                    ),
                ),
                {
                    "404": not_found_applicant,
                    "409": _error("`idempotency_mismatch` or `idempotency_in_progress`."),
                    "422": invalid,
                },
            ),
            "get": {
                "summary": "List an applicant's events",
                "description": "Their timeline, newest first: every change, by whom (a user, "
                "the applicant, a rule, an API key or the system). Pass `next_cursor` as "
                "`cursor` for the next (older) page.",
                "operationId": "listEvents",
                "tags": ["Applicants"],
                "parameters": [
                    {"$ref": "#/components/parameters/ApplicantId"},
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": schemas.EVENTS_PAGE_MAX,
                            "default": schemas.EVENTS_PAGE,
                        },
                    },
                    {
                        "name": "cursor",
                        "in": "query",
                        "required": False,
                        "description": "`next_cursor` of the previous page.",
                        "schema": {"type": "string", "maxLength": 200},
                    },
                ],
                "responses": {
                    "200": _json(
                        _obj(
                            {
                                "events": {"type": "array", "items": _ref("Event")},
                                "next_cursor": {"type": ["string", "null"]},
                            }
                        ),
                        "A page of events.",
                    ),
                    "404": not_found_applicant,
                    "422": _error("`limit` or `cursor` is not valid."),
                    **_common(post=False),
                },
            },
        },
        "/api/v1/openapi.json": {
            "get": {
                "summary": "This document",
                "operationId": "getOpenApi",
                "tags": ["Documentation"],
                "security": [],
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1, as JSON.")},
            }
        },
        "/api/v1/docs": {
            "get": {
                "summary": "This document, for people",
                "operationId": "getDocs",
                "tags": ["Documentation"],
                "security": [],
                "responses": {
                    "200": {
                        "description": "An HTML page.",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    }


def document(base_url: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Plutomi API", "version": VERSION, "description": INTRO},
        "servers": [{"url": base_url}],
        "security": [{"apiKey": []}],
        "tags": [
            {"name": "Openings"},
            {"name": "Applicants"},
            {"name": "Documentation"},
        ],
        "paths": _paths(),
        "components": _components(),
    }


# --- for the docs page ------------------------------------------------------------------------


def resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """A $ref followed to what it names (one level at a time, as the page shows them)."""
    while "$ref" in node:
        path = node["$ref"].removeprefix("#/").split("/")
        found: Any = doc
        for part in path:
            found = found[part]
        node = found
    return node


def type_label(doc: dict[str, Any], schema: dict[str, Any]) -> str:
    """A schema as a few words: "string", "array of Question", "string or null"."""
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    kinds = schema.get("type", "any")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    words = []
    for kind in kinds:
        if kind == "array" and "items" in schema:
            words.append(f"array of {type_label(doc, schema['items'])}")
        elif kind == "object" and isinstance(schema.get("additionalProperties"), dict):
            words.append(f"object of {type_label(doc, schema['additionalProperties'])}")
        else:
            words.append(kind)
    label = " or ".join(words)
    if "enum" in schema:
        label += ": " + ", ".join(str(v) for v in schema["enum"])
    return label


def operations(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every operation of the document, ready for the docs page: its parameters and body
    fields resolved, and an example curl command."""
    found = []
    base = doc["servers"][0]["url"]
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            params = [resolve(doc, p) for p in op.get("parameters", [])]
            url = path
            for p in params:
                if p["in"] == "path":
                    url = url.replace("{" + p["name"] + "}", str(p.get("example", p["name"])))
            body = None
            if "requestBody" in op:
                media = op["requestBody"]["content"]["application/json"]
                schema = resolve(doc, media["schema"])
                body = {
                    "name": media["schema"]["$ref"].rsplit("/", 1)[-1],
                    "fields": [
                        {
                            "name": name,
                            "type": type_label(doc, prop),
                            "required": name in schema.get("required", []),
                            "description": prop.get("description", ""),
                            "limits": _limits(prop),
                        }
                        for name, prop in schema["properties"].items()
                    ],
                    "example": json.dumps(media["example"], indent=2, ensure_ascii=False),
                }
            found.append(
                {
                    "id": op["operationId"],
                    "method": method.upper(),
                    "path": path,
                    "summary": op["summary"],
                    "description": op.get("description", ""),
                    "public": op.get("security") == [],
                    "params": [
                        {
                            "name": p["name"],
                            "in": p["in"],
                            "required": p.get("required", False),
                            "type": type_label(doc, p["schema"]),
                            "description": p.get("description", ""),
                            "limits": _limits(p["schema"]),
                        }
                        for p in params
                    ],
                    "body": body,
                    "responses": [
                        {
                            "status": status,
                            "description": response["description"],
                            "schema": _response_schema(response),
                        }
                        for status, response in sorted(op["responses"].items())
                    ],
                    "curl": _curl(method.upper(), base + url, op, body),
                }
            )
    return found


def _limits(schema: dict[str, Any]) -> str:
    words = []
    if "minLength" in schema and schema["minLength"] == schema.get("maxLength"):
        words.append(f"exactly {schema['minLength']} characters")
        schema = {k: v for k, v in schema.items() if k not in ("minLength", "maxLength")}
    for key, text in (
        ("minLength", "at least {} characters"),
        ("maxLength", "at most {} characters"),
        ("minimum", "at least {}"),
        ("maximum", "at most {}"),
        ("minProperties", "at least {} entry"),
        ("pattern", "matching {}"),
        ("default", "default {}"),
    ):
        if key in schema:
            words.append(text.format(schema[key]))
    return "; ".join(words)


def _response_schema(response: dict[str, Any]) -> str:
    content = response.get("content", {})
    for media in content.values():
        schema = media["schema"]
        if "$ref" in schema:
            return schema["$ref"].rsplit("/", 1)[-1]
        if schema.get("type") == "object" and "properties" in schema:
            return "{" + ", ".join(schema["properties"]) + "}"
        return schema.get("type", "")
    return ""


def _curl(method: str, url: str, op: dict[str, Any], body: dict | None) -> str:
    lines = [f"curl -X {method} '{url}'"] if method != "GET" else [f"curl '{url}'"]
    if op.get("security") != []:
        lines.append('-H "Authorization: Bearer $PLUTOMI_API_KEY"')
    if body is not None:
        lines.append("-H 'Content-Type: application/json'")
        lines.append(f"-H '{idempotency.HEADER}: '\"$(uuidgen)\"")
        compact = json.dumps(json.loads(body["example"]), ensure_ascii=False)
        lines.append(f"-d '{compact}'")
    return " \\\n  ".join(lines)
