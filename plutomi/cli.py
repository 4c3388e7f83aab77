"""Flask CLI commands: `flask demo`, `flask sweep`."""

from __future__ import annotations

import click
from flask import Flask


def register(app: Flask) -> None:
    @app.cli.command("demo")
    @click.option("--password", envvar="DEMO_PASSWORD", help="The demo owner's password.")
    def demo(password: str | None) -> None:
        """Load the demo org once; later runs leave it as it is."""
        from plutomi.services import demo as demo_service

        created, password = demo_service.load(password)
        if created:
            click.echo(f"Demo org loaded. Log in as {demo_service.EMAIL} with password: {password}")
        else:
            click.echo(f"Demo org already loaded. Log in as {demo_service.EMAIL}.")

    @app.cli.command("sweep")
    def sweep() -> None:
        """Hand every due outbox row to the queue now."""
        from plutomi.services import outbox

        click.echo(f"{outbox.sweep()} outbox rows handed to the queue.")
