"""People who log in, the orgs they belong to, and the tokens mailed to them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from flask_login import UserMixin
from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from plutomi.extensions import db
from plutomi.models.base import CreatedAtMixin, PublicIdMixin, UTCDateTime


class Role(StrEnum):
    """Membership roles, weakest first; a role can do all that the ones before it can."""

    VIEWER = "viewer"
    RECRUITER = "recruiter"
    ADMIN = "admin"
    OWNER = "owner"

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def at_least(self, other: Role) -> bool:
        return self.rank >= other.rank

    @property
    def label(self) -> str:
        return self.value.capitalize()


class User(UserMixin, PublicIdMixin, CreatedAtMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    password_hash: Mapped[str] = mapped_column(String(255))

    memberships: Mapped[list[Membership]] = relationship(back_populates="user")

    # Set by the login loader: the UserSession this request is authenticated by.
    session_key = None  # type: str | None

    def get_id(self) -> str | None:
        # Flask-Login stores this in the cookie; it names a server-side session, so that
        # logging out (or changing the password) really ends it.
        return self.session_key


class UserSession(CreatedAtMixin, db.Model):
    """One logged-in browser. The cookie holds the random key; only its hash is stored."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())

    user: Mapped[User] = relationship()


class Org(PublicIdMixin, CreatedAtMixin, db.Model):
    __tablename__ = "orgs"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    # Kept by database triggers on webhook_endpoints (migration 0009): when it is 0, events
    # of this org need no look for endpoints to send them to.
    webhook_endpoints_enabled: Mapped[int] = mapped_column(server_default="0", default=0)

    memberships: Mapped[list[Membership]] = relationship(back_populates="org")


class Membership(CreatedAtMixin, db.Model):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("org_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))

    org: Mapped[Org] = relationship(back_populates="memberships")
    user: Mapped[User] = relationship(back_populates="memberships")

    @property
    def role_enum(self) -> Role:
        return Role(self.role)

    def can(self, needed: Role) -> bool:
        return self.role_enum.at_least(needed)


class Invite(PublicIdMixin, CreatedAtMixin, db.Model):
    __tablename__ = "invites"

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("orgs.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(254))
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    invited_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    org: Mapped[Org] = relationship()
    invited_by: Mapped[User | None] = relationship()


class PasswordReset(CreatedAtMixin, db.Model):
    __tablename__ = "password_resets"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    user: Mapped[User] = relationship()


__all__ = [
    "Invite",
    "Membership",
    "Org",
    "PasswordReset",
    "Role",
    "User",
    "UserSession",
]
