"""Questions a stage asks, and the answers applicants give."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from plutomi.extensions import db
from plutomi.models.base import CreatedAtMixin, PublicIdMixin, UTCDateTime, utcnow
from plutomi.models.openings import Stage


class QuestionType(StrEnum):
    SHORT_TEXT = "short_text"
    LONG_TEXT = "long_text"
    EMAIL = "email"
    PHONE = "phone"
    NUMBER = "number"
    DATE = "date"
    SINGLE_CHOICE = "single_choice"
    MULTI_CHOICE = "multi_choice"
    YES_NO = "yes_no"
    FILE = "file"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()

    @property
    def has_options(self) -> bool:
        return self in (QuestionType.SINGLE_CHOICE, QuestionType.MULTI_CHOICE)


class Question(PublicIdMixin, CreatedAtMixin, db.Model):
    """A question of a stage. Answers point to its id, so editing its text never breaks them;
    removing a question that has answers archives it instead."""

    __tablename__ = "questions"
    __table_args__ = (
        # The key is stable per opening: outside forms and rules refer to it.
        UniqueConstraint("opening_id", "key"),
        Index("ix_questions_stage_position", "stage_id", "position"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    opening_id: Mapped[int] = mapped_column(ForeignKey("openings.id", ondelete="CASCADE"))
    stage_id: Mapped[int] = mapped_column(ForeignKey("stages.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(300))
    help_text: Mapped[str] = mapped_column(Text, default="")
    required: Mapped[bool] = mapped_column(default=False)
    # Choices for single/multi choice questions.
    options: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Number: the value's range; short/long text: the length's range.
    min_value: Mapped[float | None] = mapped_column(nullable=True)
    max_value: Mapped[float | None] = mapped_column(nullable=True)
    position: Mapped[int]
    # Recruiters pick up to three questions whose answers show on the board's cards.
    show_on_card: Mapped[bool] = mapped_column(default=False)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    stage: Mapped[Stage] = relationship()

    @property
    def type_enum(self) -> QuestionType:
        return QuestionType(self.type)


class Answer(db.Model):
    """One applicant's answer to one question; value is JSON (text, number, list, upload id)."""

    __tablename__ = "answers"
    __table_args__ = (UniqueConstraint("applicant_id", "question_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    applicant_id: Mapped[int] = mapped_column(ForeignKey("applicants.id", ondelete="CASCADE"))
    question_id: Mapped[int] = mapped_column(
        ForeignKey("questions.id", ondelete="CASCADE"), index=True
    )
    value: Mapped[Any] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    question: Mapped[Question] = relationship()
