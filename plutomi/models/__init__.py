"""All models, imported here so Alembic and the app see one metadata."""

from plutomi.models.accounts import (
    Invite,
    Membership,
    Org,
    PasswordReset,
    Role,
    User,
    UserSession,
)
from plutomi.models.applicants import Applicant
from plutomi.models.base import new_public_id, utcnow
from plutomi.models.events import Event
from plutomi.models.openings import Opening, OpeningState, Stage
from plutomi.models.outbox import OutboxMessage, OutboxState

__all__ = [
    "Applicant",
    "Event",
    "Invite",
    "Membership",
    "Opening",
    "OpeningState",
    "Org",
    "OutboxMessage",
    "OutboxState",
    "PasswordReset",
    "Role",
    "Stage",
    "User",
    "UserSession",
    "new_public_id",
    "utcnow",
]
