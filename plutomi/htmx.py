"""Small htmx helpers: flashes as HX-Trigger events, redirects an htmx request will follow."""

from __future__ import annotations

import json

from flask import Response, redirect, request, session


def trigger(response: Response, name: str, detail: object = True) -> Response:
    """Add an HX-Trigger event, merging with the ones already set instead of overwriting; a
    list given for an event that has one already (two sources of flashes) is added to it."""
    raw = response.headers.get("HX-Trigger")
    events: dict = {}
    if raw:
        try:
            events = json.loads(raw)
        except ValueError:
            events = {part.strip(): True for part in raw.split(",")}
    if isinstance(detail, list) and isinstance(events.get(name), list):
        detail = events[name] + detail
    events[name] = detail
    response.headers["HX-Trigger"] = json.dumps(events)
    return response


def flashes_to_trigger(response: Response) -> Response:
    """Flashes left unrendered by a partial reach the page as a `flash` event."""
    if not request.htmx or response.status_code in (301, 302, 303):
        return response
    if response.headers.get("HX-Redirect") or response.headers.get("HX-Location"):
        return response
    # Only flashes still in the session: a page that rendered them has popped them already.
    messages = session.pop("_flashes", None)
    if messages:
        trigger(response, "flash", [{"category": c, "message": m} for c, m in messages])
    response.vary.add("HX-Request")
    return response


def redirect_to(location: str) -> Response:
    """A redirect for either kind of request; htmx is told to navigate the whole page."""
    if request.htmx:
        response = Response(status=204)
        response.headers["HX-Redirect"] = location
        return response
    return redirect(location)
