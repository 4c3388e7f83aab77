"""Plutomi: an applicant tracking system. create_app() builds the Flask app."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from flask import Flask

ROOT = Path(__file__).resolve().parent.parent


def create_app(config: dict[str, Any] | None = None) -> Flask:
    # INSTANCE_PATH moves the SQLite file, secret key, uploads and embedded Redis elsewhere.
    instance_path = os.environ.get("INSTANCE_PATH")
    app = Flask(
        __name__,
        instance_path=str(Path(instance_path).resolve()) if instance_path else None,
        instance_relative_config=True,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    from plutomi.config import from_environment, max_content_length

    app.config.update(from_environment(Path(app.instance_path)))
    if config:
        app.config.update(config)
    if not (config and "MAX_CONTENT_LENGTH" in config):
        # Follows MAX_UPLOAD_MB however that was set (environment or create_app's config).
        app.config["MAX_CONTENT_LENGTH"] = max_content_length(app.config["MAX_UPLOAD_MB"])
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Alembic announces each of its plugins at INFO whenever an app is built; not news.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)

    register_extensions(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_commands(app)
    return app


def register_extensions(app: Flask) -> None:
    from werkzeug.middleware.proxy_fix import ProxyFix

    # mailer and webhook_delivery register the outbox senders on import
    from plutomi import mailer, pool, webhook_delivery  # noqa: F401
    from plutomi.extensions import commit_reads, csrf, db, htmx, login_manager, migrate, queues

    db.init_app(app)
    with app.app_context():
        pool.ping_when_idle(db.engine)
    app.teardown_appcontext(commit_reads)  # runs before Flask-SQLAlchemy's, which closes
    migrate.init_app(app, db, directory=str(ROOT / "migrations"))
    csrf.init_app(app)
    htmx.init_app(app)
    queues.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Log in to see that page."
    login_manager.login_message_category = "info"
    login_manager.session_protection = "basic"
    if hops := app.config.get("TRUSTED_PROXIES"):
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    from plutomi.services import accounts

    @login_manager.user_loader
    def load_user(key: str):
        return accounts.load_session(key)

    @login_manager.unauthorized_handler
    def unauthorized():
        from flask import flash, request, url_for

        from plutomi.htmx import redirect_to

        flash(login_manager.login_message, "info")
        return redirect_to(url_for("auth.login", next=request.full_path.rstrip("?")))

    from plutomi import security_headers
    from plutomi.htmx import flashes_to_trigger

    app.after_request(flashes_to_trigger)
    app.after_request(security_headers.add)

    @app.context_processor
    def inject_tenancy():
        from plutomi import tenancy
        from plutomi.models import Role

        return {
            "current_membership": tenancy.current_membership,
            "my_memberships": tenancy.memberships,
            "Role": Role,
            "dev_mailbox": app.config["DEV_MAILBOX"],
        }


def register_blueprints(app: Flask) -> None:
    from plutomi.tenancy import PublicIdConverter

    app.url_map.converters["pid"] = PublicIdConverter
    from plutomi.api.routes import bp as api
    from plutomi.applicants.routes import bp as applicants
    from plutomi.auth.routes import bp as auth
    from plutomi.board.routes import bp as board
    from plutomi.dev.routes import bp as dev
    from plutomi.files.routes import bp as files
    from plutomi.main.routes import bp as main
    from plutomi.openings.routes import bp as openings
    from plutomi.operations.routes import bp as operations
    from plutomi.orgs.api_keys import bp as api_keys
    from plutomi.orgs.email_templates import bp as email_templates
    from plutomi.orgs.routes import bp as orgs
    from plutomi.orgs.webhooks import bp as webhooks
    from plutomi.public.routes import bp as public
    from plutomi.public.unsubscribe import bp as unsubscribe

    for blueprint in (
        main,
        auth,
        orgs,
        email_templates,
        api_keys,
        operations,
        webhooks,
        openings,
        board,
        applicants,
        public,
        unsubscribe,
        files,
        api,
        dev,
    ):
        app.register_blueprint(blueprint)


def register_errorhandlers(app: Flask) -> None:
    from plutomi.errors.handlers import register

    register(app)


def register_commands(app: Flask) -> None:
    from plutomi.cli import register

    register(app)
