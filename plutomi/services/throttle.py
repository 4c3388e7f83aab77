"""Throttling in Redis with fixed windows: failed logins per account and per IP, and the rate
of busy actions (board moves) per user."""

from __future__ import annotations

import hashlib
import logging
import math

from flask import current_app
from redis.exceptions import RedisError

from plutomi.extensions import queues
from plutomi.services.errors import Throttled

log = logging.getLogger(__name__)


# An account takes this many times an IP's failures before it is locked: one guesser is
# stopped by their IP's count, so a lock on the account itself (which anyone who knows the
# address could set off, shutting its owner out) is kept for guessing from many addresses.
ACCOUNT_FACTOR = 10


def _keys(email: str, ip: str | None) -> list[str]:
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]
    keys = [f"plutomi:login-failures:account:{digest}"]
    if ip:
        keys.append(f"plutomi:login-failures:ip:{ip}")
    return keys


def check_login(email: str, ip: str | None) -> None:
    """Refuse the try when the IP, or the account from everywhere, has used up its failures."""
    limit = current_app.config["LOGIN_MAX_FAILURES"]
    redis = queues.connection
    keys = _keys(email, ip)
    try:
        pipe = redis.pipeline()
        for key in keys:
            pipe.get(key)
            pipe.ttl(key)
        values = pipe.execute()
    except RedisError:
        # Fail open: a Redis outage must not lock every user out. It is logged loudly.
        log.exception("login throttle unavailable; allowing the attempt")
        return
    limits = [limit * ACCOUNT_FACTOR] + [limit] * (len(keys) - 1)
    for count, ttl, most in zip(values[::2], values[1::2], limits, strict=True):
        if count is not None and int(count) >= most:
            minutes = max(1, math.ceil(max(ttl, 0) / 60))
            raise Throttled(
                f"Too many failed logins. Try again in {minutes} minute"
                f"{'s' if minutes != 1 else ''}, or reset your password."
            )


def record_failure(email: str, ip: str | None) -> None:
    window = int(current_app.config["LOGIN_FAILURE_WINDOW"].total_seconds())
    try:
        pipe = queues.connection.pipeline()
        for key in _keys(email, ip):
            # The window starts at the first failure; INCR keeps the TTL, so later failures
            # do not push it back. (SET NX EX rather than EXPIRE NX: embedded Redis is 6.2.)
            pipe.set(key, 0, ex=window, nx=True)
            pipe.incr(key)
        pipe.execute()
    except RedisError:
        log.exception("could not record a failed login")


def clear_account(email: str) -> None:
    """A successful login clears the account's count; the IP's stays until it expires."""
    try:
        queues.connection.delete(_keys(email, None)[0])
    except RedisError:
        log.exception("could not clear login failures")


# One round trip and one reply for a rate-limited action (a move, an API request): the window
# starts at the first action (SET NX EX; INCRBY keeps the TTL), and the TTL comes back with
# the count for the Retry-After of a refusal.
_COUNT = """
redis.call('SET', KEYS[1], 0, 'EX', ARGV[2], 'NX')
local count = redis.call('INCRBY', KEYS[1], ARGV[1])
return {count, redis.call('TTL', KEYS[1])}
"""


def _count(name: str, window: int, cost: int) -> tuple[int, int] | None:
    """Count `cost` actions against `name` in a fixed window of `window` seconds: the count
    and the seconds left, or None when Redis cannot say (the caller fails open)."""
    # register_script only hashes the text (about 1.5 us); the Script runs by that hash and
    # loads itself when the server does not know it (a restart, a flushed script cache).
    count_action = queues.connection.register_script(_COUNT)
    try:
        count, ttl = count_action(keys=[f"plutomi:rate:{name}"], args=[cost, window])
    except RedisError:
        log.exception("rate limit %s unavailable; allowing the action", name)
        return None
    return count, ttl


def within(name: str, limit: int, window: int) -> bool:
    """Count one action against `name`; whether it is within `limit` in the window. For an
    action that is skipped quietly past its limit, not refused. Fails open."""
    counted = _count(name, window, 1)
    return counted is None or counted[0] <= limit


def rate_limit(name: str, limit: int, window: int, message: str, cost: int = 1) -> None:
    """Count `cost` actions against `name` in a fixed window of `window` seconds; past `limit`
    raise Throttled with the seconds left, so a client can wait and send again. Fails open."""
    counted = _count(name, window, cost)
    if counted is not None and counted[0] > limit:
        raise Throttled(message, retry_after=max(1, counted[1]))
