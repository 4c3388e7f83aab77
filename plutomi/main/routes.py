"""The front door and the health check."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, redirect, render_template, url_for
from flask_login import current_user
from redis.exceptions import RedisError
from sqlalchemy import text

from plutomi.extensions import db, queues

bp = Blueprint("main", __name__)


@bp.get("/")
def index():
    if current_user.is_authenticated:
        return redirect(url_for("openings.index"))
    return render_template("main/index.html")


@bp.get("/healthz")
def healthz():
    """For load balancers and `make run`: the database and Redis both answer."""
    checks = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception:  # report, never raise: this page exists to say what is down
        current_app.logger.exception("health check: database")
        checks["database"] = "down"
    try:
        queues.connection.ping()
        checks["redis"] = "ok"
    except RedisError:
        checks["redis"] = "down"
    healthy = all(v == "ok" for v in checks.values())
    return jsonify(status="ok" if healthy else "degraded", **checks), 200 if healthy else 503
