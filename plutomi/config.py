"""Settings, read from the environment with safe defaults for one machine."""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

# How a setting says yes or no.
YES = frozenset({"1", "true", "yes", "on"})
NO = frozenset({"0", "false", "no", "off"})


def _flag(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in YES


def _secret_key(instance_path: Path) -> str:
    """SECRET_KEY from the environment, else one generated once into the instance folder."""
    if key := os.environ.get("SECRET_KEY"):
        return key
    path = instance_path / "secret_key"
    if not path.exists():
        instance_path.mkdir(parents=True, exist_ok=True)
        # O_EXCL: two processes starting at once must not write two different keys.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


# Room in a request for the form's other fields and the multipart framing around one file.
REQUEST_MARGIN_MB = 1


def max_content_length(max_upload_mb: float) -> int:
    """The largest request body (MAX_CONTENT_LENGTH): one file of MAX_UPLOAD_MB plus a margin.
    A larger request is refused with 413 before any of it is parsed; the upload service checks
    each file's own size. One file per request: a form that sends several at once must upload
    them one by one (or this limit must grow)."""
    return int((max_upload_mb + REQUEST_MARGIN_MB) * 1024 * 1024)


def from_environment(instance_path: Path) -> dict:
    """The app's configuration; every key can be overridden by create_app(config=...)."""
    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{instance_path / 'plutomi.db'}"
    # Heroku-style URLs name the old scheme; SQLAlchemy 2 wants the driver spelled out.
    if database_url.startswith("postgres://"):
        database_url = "postgresql+psycopg://" + database_url[len("postgres://") :]
    elif database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url[len("postgresql://") :]
    return {
        "SECRET_KEY": _secret_key(instance_path),
        "SQLALCHEMY_DATABASE_URI": database_url,
        "REDIS_URL": os.environ.get("REDIS_URL") or None,
        "BASE_URL": os.environ.get("BASE_URL", "http://127.0.0.1:5000").rstrip("/"),
        "SMTP_URL": os.environ.get("SMTP_URL") or None,
        "MAIL_FROM": os.environ.get("MAIL_FROM", "Plutomi <no-reply@plutomi.localhost>"),
        "DEV_MAILBOX": _flag("DEV_MAILBOX"),
        "UPLOAD_DIR": os.environ.get("UPLOAD_DIR") or str(instance_path / "uploads"),
        "MAX_UPLOAD_MB": int(os.environ.get("MAX_UPLOAD_MB", "10")),
        "ALLOW_PRIVATE_WEBHOOK_TARGETS": _flag("ALLOW_PRIVATE_WEBHOOK_TARGETS"),
        # Off: accounts come only by invite (a private server's usual choice).
        "ALLOW_SIGNUP": _flag("ALLOW_SIGNUP", default=True),
        "TRUSTED_PROXIES": int(os.environ.get("TRUSTED_PROXIES", "0")),
        "LOGIN_MAX_FAILURES": int(os.environ.get("LOGIN_MAX_FAILURES", "5")),
        "LOGIN_FAILURE_WINDOW": timedelta(minutes=15),
        # Requests per minute that one API key may make (/api/v1); past it, 429 and Retry-After.
        "API_RATE_LIMIT": int(os.environ.get("API_RATE_LIMIT", "1200")),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": _flag("SECURE_COOKIES"),
        "REMEMBER_COOKIE_DURATION": timedelta(days=30),
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": _flag("SECURE_COOKIES"),
        # The token is bound to the session; boards stay open all day, so no hourly expiry.
        "WTF_CSRF_TIME_LIMIT": None,
        "WTF_CSRF_HEADERS": ["X-CSRFToken"],
        "INVITE_TTL": timedelta(days=7),
        "PASSWORD_RESET_TTL": timedelta(hours=1),
        # How long an applicant's emailed link to their application keeps working.
        "APPLICANT_LINK_TTL": timedelta(days=30),
    }
