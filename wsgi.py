"""The WSGI entry point: `gunicorn wsgi:app`."""

from plutomi import create_app

app = create_app()
