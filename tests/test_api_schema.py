"""The API against its own OpenAPI document: Schemathesis generates requests for every operation
(valid ones, and ones that break the schema), sends them to the app in-process (WSGI) with a
write key over an org with real data, and checks each answer: never a 5xx, and always a status,
content type, headers and body that the document describes.

Hypothesis runs derandomized (the same cases every run) with a modest number of examples, so
the test is repeatable and quick; a failure prints the case to replay with curl."""

from __future__ import annotations

import itertools

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from plutomi.models import QuestionType, Trigger
from plutomi.services import idempotency

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES = {GenerationMode.POSITIVE: 40, GenerationMode.NEGATIVE: 20}


@pytest.fixture
def api_app(
    make_app, make_org, make_opening, make_question, make_rule, make_applicant, make_api_key
):
    """An app whose rate limit stays out of the way, over an org with a published opening
    (questions of several types, rules) and an applicant in it; and a write key."""
    app = make_app(API_RATE_LIMIT=1_000_000)
    org = make_org("Acme")
    opening = make_opening(org, "Delivery Driver", ("Questionnaire", "Review", "Failures"))
    first, review, failures = opening.stages
    make_question(first, "city", QuestionType.SINGLE_CHOICE, options=["Lisbon", "Porto"])
    make_question(first, "age", QuestionType.NUMBER, min_value=18, max_value=80)
    make_question(first, "has_licence", QuestionType.YES_NO)
    make_question(first, "cv", QuestionType.FILE)
    make_question(review, "phone", QuestionType.PHONE)
    make_rule(first, Trigger.ANSWERS_SUBMITTED, [{"type": "move", "stage": review.public_id}])
    make_rule(
        review,
        Trigger.EXTERNAL_EVENT,
        [{"type": "move", "stage": failures.public_id}],
        event_type="account_creation.failed",
    )
    applicant = make_applicant(opening, review)
    _, token = make_api_key(org, name="Schemathesis")
    ids = {"opening_id": opening.public_id, "applicant_id": applicant.public_id}
    # Bodies that do real work on that data, beside the generated ones (which rarely can).
    bodies = {
        "createApplicant": {
            "name": "Ana Lima",
            "email": "ana@example.com",
            "answers": {"city": "Lisbon", "age": 30, "has_licence": True},
        },
        "moveApplicant": {"stage_id": review.public_id},
        "answerQuestions": {"answers": {"phone": "+351 912 345 678"}},
        "createEvent": {"type": "account_creation.failed", "data": {"reason": "email taken"}},
    }
    return app, token, ids, bodies


def _strategy(operation, mode: GenerationMode, token: str, ids: dict, bodies: dict):
    """Cases for one operation: some name the real opening or applicant (and, valid ones, a
    body that does real work), the rest generated ids (404s, as the document says)."""
    headers = {"Authorization": f"Bearer {token}"}
    generated = operation.as_strategy(generation_mode=mode, headers=headers)
    names = {p.name for p in operation.path_parameters}
    if not names:
        return generated
    real_ids = {name: ids[name] for name in names}
    real = operation.as_strategy(generation_mode=mode, headers=headers, path_parameters=real_ids)
    strategies = [real, generated]
    body = bodies.get(operation.definition.raw.get("operationId"))
    if body is not None and mode is GenerationMode.POSITIVE:
        strategies.insert(
            0,
            operation.as_strategy(
                generation_mode=mode, headers=headers, path_parameters=real_ids, body=body
            ),
        )
    return st.one_of(*strategies)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_answers_as_its_document_says(api_app, mode):
    app, token, ids, bodies = api_app
    # A fresh Idempotency-Key for each valid case, so that each does its work: generated keys
    # repeat, and a repeat is only a replay or a 409 mismatch (tests/test_idempotency.py).
    sent = itertools.count()
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    documented = {
        f"{method.upper()} {path}"
        for path, methods in schema.raw_schema["paths"].items()
        for method in methods
    }
    # Schemathesis leaves out the document it was loaded from; everything else is tested.
    assert {op.label for op in operations} == documented - {"GET /api/v1/openapi.json"}
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and not (
            operation.path_parameters or operation.query or operation.body
        ):
            continue  # nothing of it can be made invalid

        @settings(
            max_examples=EXAMPLES[mode],
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=_strategy(operation, mode, token, ids, bodies))
        def run(case) -> None:
            key = (case.headers or {}).get(idempotency.HEADER)
            if key is not None and mode is GenerationMode.POSITIVE:
                case.headers[idempotency.HEADER] = f"{key[:200]}-{next(sent)}"
            response = case.call()
            case.validate_response(response, checks=CHECKS)

        run()
