"""Orgs: settings, members, roles and invites. Every function checks the actor's role."""

from __future__ import annotations

import re

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.orm import contains_eager

from plutomi.extensions import db
from plutomi.models import Invite, Membership, Org, Role, User, utcnow
from plutomi.services import throttle
from plutomi.services.errors import Forbidden, Invalid, NotFound
from plutomi.services.events import Actor, record
from plutomi.services.fields import clean_name, normalize_email
from plutomi.services.mail import queue_email
from plutomi.services.tokens import hash_token, new_token

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# Slugs that would shadow our own pages or mislead applicants on a public job board.
RESERVED_SLUGS = frozenset(
    [
        "about",
        "account",
        "accounts",
        "admin",
        "administrator",
        "api",
        "app",
        "apply",
        "assets",
        "auth",
        "billing",
        "blog",
        "board",
        "careers",
        "dashboard",
        "dev",
        "docs",
        "help",
        "invite",
        "invites",
        "jobs",
        "login",
        "logout",
        "mail",
        "mailbox",
        "me",
        "new",
        "openings",
        "org",
        "orgs",
        "password",
        "plutomi",
        "portal",
        "pricing",
        "privacy",
        "public",
        "register",
        "reset",
        "root",
        "security",
        "settings",
        "signup",
        "static",
        "status",
        "support",
        "system",
        "terms",
        "test",
        "user",
        "users",
        "www",
    ]
)


def require(membership: Membership, role: Role) -> None:
    if not membership.can(role):
        raise Forbidden(f"This needs the {role.label} role or higher.")


def slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:63].strip("-")
    return slug or "org"


def check_slug(slug: str, *, org: Org | None = None) -> str:
    slug = slug.strip().lower()
    if not SLUG_RE.match(slug):
        raise Invalid(
            "Use 1 to 63 lower-case letters, digits and dashes; no dash first or last.",
            "slug",
        )
    if slug in RESERVED_SLUGS:
        raise Invalid(f"“{slug}” is reserved; choose another.", "slug")
    taken = db.session.scalar(select(Org.id).where(Org.slug == slug))
    if taken is not None and (org is None or taken != org.id):
        raise Invalid("Another org uses this slug already.", "slug")
    return slug


def _free_slug(name: str) -> str:
    base = slugify(name)
    if base in RESERVED_SLUGS:
        base = f"{base}-org"
    slug, n = base, 1
    while db.session.scalar(select(Org.id).where(Org.slug == slug)) is not None:
        n += 1
        slug = f"{base[: 63 - len(str(n)) - 1]}-{n}"
    return slug


def create(user: User, name: str) -> Org:
    """A new org owned by user; the caller commits."""
    org = Org(name=clean_name(name, "org_name"), slug=_free_slug(name))
    db.session.add(org)
    db.session.flush()
    db.session.add(Membership(org_id=org.id, user_id=user.id, role=Role.OWNER))
    record("org.created", actor=Actor.user(user), org_id=org.id, name=org.name)
    return org


def create_for(user: User, name: str) -> Org:
    org = create(user, name)
    db.session.commit()
    return org


def update_settings(actor: Membership, name: str, slug: str) -> Org:
    require(actor, Role.ADMIN)
    org = actor.org
    org.name = clean_name(name)
    old_slug, org.slug = org.slug, check_slug(slug, org=org)
    record(
        "org.updated",
        actor=Actor.user(actor.user),
        org_id=org.id,
        name=org.name,
        slug=org.slug,
        previous_slug=old_slug,
    )
    db.session.commit()
    return org


def members(org: Org) -> list[Membership]:
    return list(
        db.session.scalars(
            select(Membership)
            .join(User)
            .options(contains_eager(Membership.user))
            .where(Membership.org_id == org.id)
            .order_by(User.name)
        )
    )


def pending_invites(org: Org) -> list[Invite]:
    return list(
        db.session.scalars(
            select(Invite)
            .where(
                Invite.org_id == org.id,
                Invite.accepted_at.is_(None),
                Invite.revoked_at.is_(None),
                Invite.expires_at > utcnow(),
            )
            .order_by(Invite.created_at.desc())
        )
    )


def _owner_count(org_id: int) -> int:
    return db.session.scalar(
        select(func.count()).where(Membership.org_id == org_id, Membership.role == Role.OWNER)
    )


LAST_OWNER = "An org needs at least one owner. Make someone else an owner first."


def _lock_owners(org_id: int) -> None:
    """Serialise changes to an org's owners: two owners demoting each other at the same moment
    must not leave the org with none. PostgreSQL locks the org row; SQLite has one writer."""
    db.session.execute(select(Org.id).where(Org.id == org_id).with_for_update())


def _commit_keeping_an_owner(org_id: int, field: str) -> None:
    """Commit, unless the change (seen together with any that committed first) left no owner."""
    db.session.flush()
    if _owner_count(org_id) == 0:
        db.session.rollback()
        raise Invalid(LAST_OWNER, field)
    db.session.commit()


def _grantable(actor: Membership, role: Role) -> None:
    """Admins manage everyone below owner; only owners make or unmake owners."""
    if role == Role.OWNER and actor.role_enum != Role.OWNER:
        raise Forbidden("Only an owner can make someone an owner.")


INVITES_PER_HOUR = 50  # a person's, across their orgs


def invite(actor: Membership, email: str, role: Role) -> Invite:
    """Mail an invite link; a new invite to the same email replaces the old one."""
    require(actor, Role.ADMIN)
    _grantable(actor, role)
    email = normalize_email(email)
    org = actor.org
    already = db.session.scalar(
        select(Membership.id).join(User).where(Membership.org_id == org.id, User.email == email)
    )
    if already is not None:
        raise Invalid("This person is a member already.", "email")
    # Anyone can sign up and invite any address, in words of their choosing (the org's name):
    # without a limit, a relay for spam from this server's domain.
    throttle.rate_limit(
        f"invites:{actor.user_id}",
        INVITES_PER_HOUR,
        3600,
        f"You have sent {INVITES_PER_HOUR} invites in the last hour; send more in a while.",
    )
    for old in db.session.scalars(
        select(Invite).where(
            Invite.org_id == org.id,
            Invite.email == email,
            Invite.accepted_at.is_(None),
            Invite.revoked_at.is_(None),
        )
    ):
        old.revoked_at = utcnow()
    token, token_hash = new_token()
    row = Invite(
        org_id=org.id,
        email=email,
        role=role,
        token_hash=token_hash,
        invited_by_id=actor.user_id,
        expires_at=utcnow() + current_app.config["INVITE_TTL"],
    )
    db.session.add(row)
    record("member.invited", actor=Actor.user(actor.user), org_id=org.id, email=email, role=role)
    queue_email(
        email,
        "invite",
        org_id=org.id,
        org=org,
        inviter=actor.user,
        role=role,
        token=token,
        ttl_days=current_app.config["INVITE_TTL"].days,
    )
    db.session.commit()
    return row


def revoke_invite(actor: Membership, invite_public_id: str) -> None:
    require(actor, Role.ADMIN)
    row = db.session.scalar(
        select(Invite).where(Invite.org_id == actor.org_id, Invite.public_id == invite_public_id)
    )
    if row is None or row.accepted_at is not None:
        raise NotFound("No such invite.")
    row.revoked_at = utcnow()
    record(
        "member.invite_revoked", actor=Actor.user(actor.user), org_id=actor.org_id, email=row.email
    )
    db.session.commit()


def find_invite(token: str) -> Invite:
    """The invite a link names, or a clear message why it cannot be used."""
    row = db.session.scalar(select(Invite).where(Invite.token_hash == hash_token(token)))
    if row is None or row.revoked_at is not None:
        raise Invalid("This invite link is not valid. Ask for a new invite.", "token")
    if row.accepted_at is not None:
        raise Invalid("This invite was used already. Log in to reach the org.", "token")
    if row.expires_at <= utcnow():
        raise Invalid("This invite has expired. Ask whoever invited you for a new one.", "token")
    return row


def accept_invite(token: str, user: User, *, commit: bool = True) -> Membership:
    row = find_invite(token)
    if row.email != user.email:
        raise Invalid(
            f"This invite is for {row.email}, and you are logged in as {user.email}. "
            "Log out and open the link again.",
            "token",
        )
    membership = db.session.scalar(
        select(Membership).where(Membership.org_id == row.org_id, Membership.user_id == user.id)
    )
    if membership is None:
        membership = Membership(org_id=row.org_id, user_id=user.id, role=row.role)
        db.session.add(membership)
    row.accepted_at = utcnow()
    record(
        "member.joined", actor=Actor.user(user), org_id=row.org_id, email=user.email, role=row.role
    )
    if commit:
        db.session.commit()
    return membership


def member_by_user(actor: Membership, user_public_id: str) -> Membership:
    target = db.session.scalar(
        select(Membership)
        .join(User)
        .where(Membership.org_id == actor.org_id, User.public_id == user_public_id)
    )
    if target is None:
        raise NotFound("No such member.")
    return target


def change_role(actor: Membership, user_public_id: str, role: Role) -> Membership:
    require(actor, Role.ADMIN)
    _lock_owners(actor.org_id)
    target = member_by_user(actor, user_public_id)
    if target.role_enum == Role.OWNER or role == Role.OWNER:
        _grantable(actor, Role.OWNER)
    if target.role_enum == Role.OWNER and role != Role.OWNER and _owner_count(actor.org_id) <= 1:
        raise Invalid(LAST_OWNER, "role")
    previous, target.role = target.role, role
    record(
        "member.role_changed",
        actor=Actor.user(actor.user),
        org_id=actor.org_id,
        email=target.user.email,
        role=role,
        previous_role=previous,
    )
    _commit_keeping_an_owner(actor.org_id, "role")
    return target


def _leave_check(target: Membership) -> None:
    if target.role_enum == Role.OWNER and _owner_count(target.org_id) <= 1:
        raise Invalid(LAST_OWNER, "member")


def remove_member(actor: Membership, user_public_id: str) -> None:
    require(actor, Role.ADMIN)
    _lock_owners(actor.org_id)
    target = member_by_user(actor, user_public_id)
    if target.role_enum == Role.OWNER:
        _grantable(actor, Role.OWNER)
    _leave_check(target)
    record(
        "member.removed", actor=Actor.user(actor.user), org_id=actor.org_id, email=target.user.email
    )
    db.session.delete(target)
    _commit_keeping_an_owner(actor.org_id, "member")


def leave(membership: Membership) -> None:
    _lock_owners(membership.org_id)
    _leave_check(membership)
    record(
        "member.left",
        actor=Actor.user(membership.user),
        org_id=membership.org_id,
        email=membership.user.email,
    )
    org_id = membership.org_id
    db.session.delete(membership)
    _commit_keeping_an_owner(org_id, "member")
