"""The demo org: the "delivery driver" opening of the architecture brief, with its questions,
email templates and rules, and a few dozen applicants at every stage."""

from __future__ import annotations

import random
import secrets
from datetime import timedelta

from sqlalchemy import select

from plutomi import ranks
from plutomi.extensions import db
from plutomi.models import (
    Answer,
    Applicant,
    EmailTemplate,
    Opening,
    OpeningState,
    Question,
    QuestionType,
    Rule,
    Stage,
    Trigger,
    User,
    utcnow,
)
from plutomi.services import orgs, passwords, rules
from plutomi.services.events import Actor, record, record_applicant

EMAIL = "demo@example.com"
STAGES = [
    ("Questionnaire", 12),
    ("Waiting List", 6),
    ("Document Upload", 7),
    ("Final Review", 5),
    ("Ready to Drive", 4),
    ("Account Creation Failures", 2),
]
FIRST = [
    "Ada",
    "Ben",
    "Cleo",
    "Dev",
    "Esra",
    "Femi",
    "Gus",
    "Hana",
    "Ivo",
    "Jun",
    "Kai",
    "Lena",
    "Milo",
    "Nia",
    "Omar",
    "Pia",
    "Quinn",
    "Ravi",
    "Sami",
    "Tara",
]
LAST = [
    "Okafor",
    "Silva",
    "Nguyen",
    "Kowalski",
    "Haddad",
    "Moreau",
    "Tanaka",
    "Eriksen",
    "Costa",
    "Mensah",
    "Ibarra",
    "Novak",
]

CITIES = ["Lisbon", "Porto", "Braga"]
VEHICLES = ["Car", "Scooter", "Bicycle"]
QUESTIONS = {
    "Questionnaire": [
        ("city", QuestionType.SINGLE_CHOICE, "Which city do you want to deliver in?", CITIES),
        ("vehicle", QuestionType.SINGLE_CHOICE, "What will you deliver with?", VEHICLES),
        ("years_driving", QuestionType.NUMBER, "How many years have you been driving?", None),
        ("licence", QuestionType.YES_NO, "Do you hold a valid driving licence?", None),
    ],
    "Document Upload": [
        ("licence_scan", QuestionType.FILE, "A photo or scan of your driving licence", None),
        ("insurance", QuestionType.FILE, "Proof of insurance for your vehicle", None),
    ],
}
TEMPLATES = {
    "documents": (
        "Documents needed",
        "Next step for {{ opening_name }}: your documents",
        "Hi {{ applicant_name }},\n\nThanks for answering our questions. Next, please upload "
        "your driving licence and proof of insurance here:\n\n{{ portal_link }}\n\n"
        "{{ org_name }}\n\nNot interested in updates? {{ unsubscribe_link }}\n",
        False,
    ),
    "welcome": (
        "Ready to drive",
        "Welcome aboard, {{ applicant_name }}",
        "Hi {{ applicant_name }},\n\nYou are approved to drive with {{ org_name }}. We are "
        "creating your driver account now and will email you when it is ready.\n\n"
        "Your application: {{ portal_link }}\n",
        True,
    ),
}
THIRTY_DAYS = 30 * 24 * 60

DESCRIPTION = """Deliver parcels across the city on your own schedule.

**You need** a valid driving licence, insurance for your vehicle and a phone with data.
"""


def load(password: str | None = None) -> tuple[bool, str | None]:
    """Create the demo owner, org and opening once. Returns (created, password)."""
    if db.session.scalar(select(User.id).where(User.email == EMAIL)) is not None:
        return False, None
    password = password or secrets.token_urlsafe(9)
    passwords.check_policy(password, email=EMAIL)
    user = User(email=EMAIL, name="Demo Owner", password_hash=passwords.hash_password(password))
    db.session.add(user)
    db.session.flush()
    org = orgs.create(user, "Demo Logistics")
    opening = Opening(
        org_id=org.id,
        name="Delivery Driver",
        slug="delivery-driver",
        description=DESCRIPTION,
        state=OpeningState.PUBLISHED,
    )
    db.session.add(opening)
    db.session.flush()
    rng = random.Random(7)
    now = utcnow()
    system = Actor.system()
    stages = {}
    for position, (name, _) in enumerate(STAGES):
        stages[name] = Stage(org_id=org.id, opening_id=opening.id, name=name, position=position)
        db.session.add(stages[name])
    db.session.flush()
    questions = _questions(opening, stages)
    templates = _templates(org.id)
    waiting = _rules(opening, stages, templates)[0]
    for name, size in STAGES:
        stage = stages[name]
        for rank in ranks.spread(size):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            entered = now - timedelta(days=rng.randint(0, 40), hours=rng.randint(0, 23))
            applicant = Applicant(
                org_id=org.id,
                opening_id=opening.id,
                stage_id=stage.id,
                name=f"{first} {last}",
                email=f"{first}.{last}.{rng.randint(10, 999)}@example.net".lower(),
                rank=rank,
                entered_stage_at=entered,
                created_at=entered - timedelta(days=rng.randint(0, 10)),
            )
            db.session.add(applicant)
            db.session.flush()
            record_applicant("applicant.created", applicant, actor=system, stage=stage.name)
            _answer(applicant, questions, rng, everything=name != "Questionnaire")
    # The 30-day timer of everyone in the questionnaire, counted from when they entered: the
    # oldest fall due at once, so the first sweep after `make run` shows the rule at work.
    rules.schedule(waiting)
    record("opening.published", actor=Actor.user(user), org_id=org.id, opening_id=opening.id)
    db.session.commit()
    return True, password


def _questions(opening: Opening, stages: dict[str, Stage]) -> dict[str, Question]:
    made = {}
    for stage_name, rows in QUESTIONS.items():
        for position, (key, kind, label, options) in enumerate(rows):
            made[key] = Question(
                org_id=opening.org_id,
                opening_id=opening.id,
                stage_id=stages[stage_name].id,
                key=key,
                type=kind,
                label=label,
                required=True,
                options=options or [],
                min_value=0 if kind == QuestionType.NUMBER else None,
                max_value=70 if kind == QuestionType.NUMBER else None,
                show_on_card=key in ("city", "vehicle"),
                position=position,
            )
            db.session.add(made[key])
    db.session.flush()
    return made


def _templates(org_id: int) -> dict[str, EmailTemplate]:
    made = {
        key: EmailTemplate(
            org_id=org_id, name=name, subject=subject, body=body, essential=essential
        )
        for key, (name, subject, body, essential) in TEMPLATES.items()
    }
    db.session.add_all(made.values())
    db.session.flush()
    return made


def _rules(
    opening: Opening, stages: dict[str, Stage], templates: dict[str, EmailTemplate]
) -> list[Rule]:
    """The opening's real rules, as the issue describes them; the first is the 30-day one."""

    def move(name: str) -> dict:
        return {"type": "move", "stage": stages[name].public_id}

    specs = [
        (
            "Questionnaire",
            "Questionnaire not completed in 30 days",
            Trigger.TIME_IN_STAGE,
            [move("Waiting List")],
            {"delay_minutes": THIRTY_DAYS, "only_if_incomplete": True},
        ),
        (
            "Questionnaire",
            "Questionnaire completed",
            Trigger.STAGE_COMPLETED,
            [
                {"type": "email", "template": templates["documents"].public_id},
                move("Document Upload"),
            ],
            {},
        ),
        (
            "Document Upload",
            "Documents uploaded",
            Trigger.STAGE_COMPLETED,
            [move("Final Review")],
            {},
        ),
        (
            "Ready to Drive",
            "Ask for the driver's account",
            Trigger.STAGE_ENTERED,
            [
                {"type": "webhook", "event": "driver.approved"},
                {"type": "email", "template": templates["welcome"].public_id},
            ],
            {},
        ),
        (
            "Ready to Drive",
            "Account creation failed",
            Trigger.EXTERNAL_EVENT,
            [move("Account Creation Failures")],
            {"event_type": "account_creation.failed"},
        ),
    ]
    made = []
    positions: dict[str, int] = {}
    for stage_name, name, trigger, actions, extra in specs:
        position = positions.get(stage_name, 0)
        positions[stage_name] = position + 1
        made.append(
            Rule(
                org_id=opening.org_id,
                opening_id=opening.id,
                stage_id=stages[stage_name].id,
                position=position,
                name=name,
                trigger=trigger,
                actions=actions,
                **extra,
            )
        )
    db.session.add_all(made)
    db.session.flush()
    return made


def _answer(
    applicant: Applicant, questions: dict[str, Question], rng: random.Random, *, everything: bool
) -> None:
    """The questionnaire's answers: all of them past the first stage, some of them in it."""
    values = {
        "city": rng.choice(CITIES),
        "vehicle": rng.choice(VEHICLES),
        "years_driving": rng.randint(1, 25),
        "licence": True,
    }
    keys = list(values) if everything else list(values)[: rng.randint(0, 2)]
    for key in keys:
        db.session.add(
            Answer(
                org_id=applicant.org_id,
                applicant_id=applicant.id,
                question_id=questions[key].id,
                value=values[key],
            )
        )
