"""The demo org: the "delivery driver" opening of the architecture brief, with applicants."""

from __future__ import annotations

import random
import secrets
from datetime import timedelta

from sqlalchemy import select

from plutomi import ranks
from plutomi.extensions import db
from plutomi.models import Applicant, Opening, OpeningState, Stage, User, utcnow
from plutomi.services import orgs, passwords
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
    for position, (name, size) in enumerate(STAGES):
        stage = Stage(org_id=org.id, opening_id=opening.id, name=name, position=position)
        db.session.add(stage)
        db.session.flush()
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
    record("opening.published", actor=Actor.user(user), org_id=org.id, opening_id=opening.id)
    db.session.commit()
    return True, password
