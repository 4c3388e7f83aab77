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
from plutomi.models.api import ApiKey, IdempotencyKey
from plutomi.models.applicants import Applicant, ApplicantStatus, ApplicantTag, Note
from plutomi.models.base import new_public_id, utcnow
from plutomi.models.bulk import BulkAction, BulkState
from plutomi.models.email import EmailTemplate
from plutomi.models.events import Event
from plutomi.models.openings import Opening, OpeningState, Stage, StageCount
from plutomi.models.outbox import OutboxMessage, OutboxState
from plutomi.models.portal import MagicLink, Upload
from plutomi.models.questions import Answer, Question, QuestionType
from plutomi.models.rules import Rule, Timer, TimerState, Trigger
from plutomi.models.webhooks import WebhookEndpoint

__all__ = [
    "Answer",
    "ApiKey",
    "Applicant",
    "ApplicantStatus",
    "ApplicantTag",
    "BulkAction",
    "BulkState",
    "EmailTemplate",
    "Event",
    "IdempotencyKey",
    "Invite",
    "MagicLink",
    "Membership",
    "Note",
    "Opening",
    "OpeningState",
    "Org",
    "OutboxMessage",
    "OutboxState",
    "PasswordReset",
    "Question",
    "QuestionType",
    "Role",
    "Rule",
    "Stage",
    "StageCount",
    "Timer",
    "TimerState",
    "Trigger",
    "Upload",
    "User",
    "UserSession",
    "WebhookEndpoint",
    "new_public_id",
    "utcnow",
]
