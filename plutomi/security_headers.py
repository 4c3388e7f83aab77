"""Headers every response carries, unless its view set its own."""

from __future__ import annotations

from flask import Response

HEADERS = {
    # No page of ours is meant to be framed: a framed form can be clicked through a decoy.
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    # Emailed links carry tokens in their paths; never send those to another site.
    "Referrer-Policy": "same-origin",
}


def add(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    return response
