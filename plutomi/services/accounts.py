"""Users: sign-up, login sessions, password reset and profile."""

from __future__ import annotations

from datetime import timedelta

from flask import current_app
from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.orm import joinedload

from plutomi.extensions import db
from plutomi.models import Membership, Org, PasswordReset, User, UserSession, utcnow
from plutomi.services import orgs, passwords, throttle
from plutomi.services.errors import Invalid
from plutomi.services.events import Actor, record
from plutomi.services.fields import clean_name, has_control_characters, normalize_email
from plutomi.services.mail import queue_email
from plutomi.services.tokens import hash_token, new_token

SESSION_TTL = timedelta(days=1)
REMEMBERED_SESSION_TTL = timedelta(days=30)


def find_user(email: str) -> User | None:
    email = email.strip().lower()
    if has_control_characters(email):
        return None  # no stored email has them, and PostgreSQL refuses NUL even in a query
    return db.session.scalar(select(User).where(User.email == email))


def _new_user(name: str, email: str, password: str) -> User:
    email = normalize_email(email)
    name = clean_name(name)
    passwords.check_policy(password, email=email)
    if find_user(email):
        raise Invalid(
            "An account with this email already exists. Log in, or reset your password.", "email"
        )
    user = User(email=email, name=name, password_hash=passwords.hash_password(password))
    db.session.add(user)
    db.session.flush()
    return user


def signup(name: str, email: str, password: str, org_name: str) -> tuple[User, Org]:
    """A new user and a new org that they own."""
    user = _new_user(name, email, password)
    org = orgs.create(user, org_name)
    db.session.commit()
    return user, org


def signup_for_invite(name: str, password: str, token: str) -> User:
    """A new user joining the org of an invite, with the invite's email."""
    invite = orgs.find_invite(token)
    user = _new_user(name, invite.email, password)
    orgs.accept_invite(token, user, commit=False)
    db.session.commit()
    return user


def authenticate(email: str, password: str, ip: str | None) -> User:
    throttle.check_login(email, ip)
    user = find_user(email)
    # Verify even when the email is unknown, so timing does not tell which accounts exist.
    ok = passwords.verify(user.password_hash if user else passwords.dummy_hash(), password)
    if not user or not ok:
        throttle.record_failure(email, ip)
        raise Invalid("Wrong email or password.", "password")
    throttle.clear_account(email)
    return user


def start_session(user: User, remember: bool) -> str:
    """A new server-side session; its key goes into the cookie, its hash into the database."""
    key, key_hash = new_token()
    ttl = REMEMBERED_SESSION_TTL if remember else SESSION_TTL
    db.session.add(UserSession(user_id=user.id, key_hash=key_hash, expires_at=utcnow() + ttl))
    db.session.commit()
    user.session_key = key
    return key


# Every logged-in request runs this: the user, their memberships and those orgs (which every
# org page reads, tenancy.memberships) come in the same query. Built once: building its joined
# loads cost about what running it does.
_SESSION_USER = (
    select(UserSession)
    .options(joinedload(UserSession.user).joinedload(User.memberships).joinedload(Membership.org))
    .where(UserSession.key_hash == bindparam("key_hash"), UserSession.expires_at > bindparam("now"))
)


def load_session(key: str) -> User | None:
    row = (
        db.session.scalars(_SESSION_USER, {"key_hash": hash_token(key), "now": utcnow()})
        .unique()
        .one_or_none()
    )
    if row is None:
        return None
    row.user.session_key = key
    return row.user


def end_session(key: str) -> None:
    db.session.execute(delete(UserSession).where(UserSession.key_hash == hash_token(key)))
    db.session.commit()


def _end_other_sessions(user: User, keep_key: str | None) -> None:
    stmt = delete(UserSession).where(UserSession.user_id == user.id)
    if keep_key:
        stmt = stmt.where(UserSession.key_hash != hash_token(keep_key))
    db.session.execute(stmt)


RESETS_PER_HOUR = 3  # links mailed to one account; more requests are answered alike
RESET_REQUESTS_PER_IP = 20  # an hour, whatever the addresses


def _end_other_links(user: User) -> None:
    """A changed password ends every reset link still out: one captured before must not
    take the account back."""
    db.session.execute(
        update(PasswordReset)
        .where(PasswordReset.user_id == user.id, PasswordReset.used_at.is_(None))
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def request_password_reset(email: str, ip: str | None = None) -> None:
    """Mail a reset link when the account exists; the caller answers the same either way.
    Beyond RESETS_PER_HOUR, no more mail (a mailbox flooded by someone else's requests);
    beyond RESET_REQUESTS_PER_IP from one address, Throttled."""
    email = normalize_email(email)
    if ip:
        throttle.rate_limit(
            f"reset-requests:{ip}",
            RESET_REQUESTS_PER_IP,
            3600,
            "Too many reset requests from your address. Try again in an hour.",
        )
    user = find_user(email)
    if user is None:
        return
    if not throttle.within(f"resets:{user.id}", RESETS_PER_HOUR, 3600):
        return
    token, token_hash = new_token()
    ttl = current_app.config["PASSWORD_RESET_TTL"]
    db.session.add(PasswordReset(user_id=user.id, token_hash=token_hash, expires_at=utcnow() + ttl))
    queue_email(
        user.email,
        "password_reset",
        user=user,
        token=token,
        ttl_minutes=int(ttl.total_seconds() // 60),
    )
    db.session.commit()


def find_reset(token: str) -> PasswordReset:
    reset = db.session.scalar(
        select(PasswordReset).where(PasswordReset.token_hash == hash_token(token))
    )
    if reset is None or reset.used_at is not None:
        raise Invalid(
            "This reset link is not valid, or was used already. Ask for a new one.", "token"
        )
    if reset.expires_at <= utcnow():
        raise Invalid("This reset link has expired. Ask for a new one.", "token")
    return reset


def reset_password(token: str, new_password: str) -> User:
    reset = find_reset(token)
    user = reset.user
    passwords.check_policy(new_password, email=user.email)
    user.password_hash = passwords.hash_password(new_password)
    reset.used_at = utcnow()
    _end_other_links(user)
    _end_other_sessions(user, keep_key=None)
    record("user.password_reset", actor=Actor.user(user), org_id=None)
    db.session.commit()
    throttle.clear_account(user.email)
    return user


def update_profile(user: User, name: str) -> None:
    user.name = clean_name(name)
    db.session.commit()


def change_password(user: User, current: str, new: str) -> None:
    """Change the password and end every other session of the user."""
    if not passwords.verify(user.password_hash, current):
        raise Invalid("That is not your current password.", "current_password")
    passwords.check_policy(new, email=user.email, field="new_password")
    user.password_hash = passwords.hash_password(new)
    _end_other_links(user)
    _end_other_sessions(user, keep_key=user.session_key)
    record("user.password_changed", actor=Actor.user(user), org_id=None)
    db.session.commit()
