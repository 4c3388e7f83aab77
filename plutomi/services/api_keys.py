"""API keys of an org: made and revoked by admins and owners, used by outside systems on /api/v1.

A key is `plk_` and 43 random characters (256 bits), shown once when made; only its sha256 is
stored, so a leaked database holds no usable key. Looking a key up by the hash of what was
sent needs no constant-time comparison: an attacker can learn nothing about a stored hash from
the time an index lookup takes on the hash of their own guess.

Last use is written at most once a minute per key (a conditional UPDATE committed apart from
the request's own work), not once per request: a busy integration would otherwise turn every
read into a write, all of them on the same row.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.attributes import set_committed_value

from plutomi.extensions import commit_keeping_loaded, db
from plutomi.models import ApiKey, Membership, Org, Role, utcnow
from plutomi.services.errors import Invalid, InvalidFields
from plutomi.services.events import Actor, record
from plutomi.services.fields import clean_name, has_control_characters
from plutomi.services.lookups import by_public_id
from plutomi.services.orgs import require
from plutomi.services.tokens import hash_token, new_token

TOKEN_PREFIX = "plk_"
# Enough of the key to tell keys apart in a list, far too little to guess the rest.
SHOWN_PREFIX = len(TOKEN_PREFIX) + 8
SCOPES = {
    "read": "Read: openings, applicants and their events",
    "write": "Write: also create applicants, move them, answer and send events",
}
NAME_MAX = 120
TOKEN_MAX = 200
LAST_USED_EVERY = timedelta(minutes=1)


def list_for(org: Org) -> list[ApiKey]:
    """Every key of the org, revoked ones too (their history stays), newest first."""
    return list(
        db.session.scalars(
            select(ApiKey)
            .where(ApiKey.org_id == org.id)
            .order_by(ApiKey.created_at.desc(), ApiKey.id.desc())
        )
    )


def create(actor: Membership, name: str, scope: str) -> tuple[ApiKey, str]:
    """A new key of the actor's org: (the row, the key itself). The key is never stored, so
    the caller shows it now or never."""
    require(actor, Role.ADMIN)
    errors: dict[str, str] = {}
    try:
        name = clean_name(name or "", "name", max_length=NAME_MAX)
    except Invalid as exc:
        errors["name"] = exc.message
    if scope not in SCOPES:
        errors["scope"] = "Choose read or write."
    if errors:
        raise InvalidFields(errors)
    # A prefix says what the secret is (in a log, a leaked config); the rest is the random
    # token every mailed link has.
    token = TOKEN_PREFIX + new_token()[0]
    key = ApiKey(
        org_id=actor.org_id,
        name=name,
        prefix=token[:SHOWN_PREFIX],
        token_hash=hash_token(token),
        scope=scope,
        created_by_id=actor.user_id,
    )
    db.session.add(key)
    db.session.flush()
    record(
        "api_key.created",
        actor=Actor.user(actor.user),
        org_id=actor.org_id,
        key_id=key.public_id,
        name=key.name,
        scope=key.scope,
        prefix=key.prefix,
    )
    db.session.commit()
    return key, token


def get(actor: Membership, key_id: str) -> ApiKey:
    scope = select(ApiKey).where(ApiKey.org_id == actor.org_id)
    return by_public_id(scope, ApiKey, key_id, "No such API key.")


def revoke(actor: Membership, key_id: str) -> ApiKey:
    """Revoke a key: from now on it gets 401. Revoking a revoked key changes nothing."""
    require(actor, Role.ADMIN)
    key = get(actor, key_id)
    if key.revoked_at is not None:
        return key
    key.revoked_at = utcnow()
    record(
        "api_key.revoked",
        actor=Actor.user(actor.user),
        org_id=actor.org_id,
        key_id=key.public_id,
        name=key.name,
        prefix=key.prefix,
    )
    db.session.commit()
    return key


# The org comes with the key: what a request makes (an applicant's confirmation email) or
# lists (events) names it, and it is one join here instead of a query there. Built once, as
# every API request runs it.
_LIVE_KEY = (
    select(ApiKey)
    .where(ApiKey.token_hash == bindparam("token_hash"), ApiKey.revoked_at.is_(None))
    .options(joinedload(ApiKey.org))
)


def authenticate(token: str | None) -> ApiKey | None:
    """The live key that token is, or None (unknown, malformed or revoked)."""
    if (
        not token
        or not token.startswith(TOKEN_PREFIX)
        or len(token) > TOKEN_MAX
        or has_control_characters(token)
    ):
        return None
    key = db.session.scalar(_LIVE_KEY, {"token_hash": hash_token(token)})
    if key is not None:
        touch(key)
    return key


def touch(key: ApiKey) -> None:
    """Note the key's use, unless that was done less than a minute ago. The UPDATE is
    conditional, so of many requests at once only one writes; it commits by itself, before
    the request's own transaction begins, and keeps the loaded key as it is."""
    now = utcnow()
    if key.last_used_at is not None and key.last_used_at > now - LAST_USED_EVERY:
        return
    written = db.session.execute(
        update(ApiKey)
        .where(
            ApiKey.id == key.id,
            or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at <= now - LAST_USED_EVERY),
        )
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )
    commit_keeping_loaded()
    if written.rowcount == 1:
        set_committed_value(key, "last_used_at", now)
