"""The applicant page of an applicant with 1,000 events: the generated data set's heavy
applicant (bench/generate), read by its org's owner, beside the floor's bare SQL of the same
reads (bench/floor_app.py: /applicants/<public id>)."""

from __future__ import annotations

from typing import Any

from bench.common import Client, Server, Timing, row, time_gets, with_server_times
from bench.generate import HEAVY_EVENTS, Generated
from bench.stage_board import Recruiter
from plutomi.services.timeline import PAGE_SIZE  # the newest entries, then "Show older"

TARGET_P95_MS = 50.0
ENTRY = b'<li class="timeline-entry">'
OLDER = b'class="timeline-more"'


def time_page(client: Client, path: str, requests: int, seconds: float) -> Timing:
    """Sequential GETs of the page; a success is a 200 with a full first page of the timeline
    and the link to the older ones."""

    def check(status: int, body: bytes) -> str | None:
        if status == 200 and body.count(ENTRY) == PAGE_SIZE and OLDER in body:
            return None
        return f"{status}, {body.count(ENTRY)} timeline entries"

    return time_gets(client, path, requests, seconds, 5, check)


def scenario(args, floor: Server, app: Server, generated: Generated) -> dict[str, Any]:
    path = f"/applicants/{generated.heavy_applicant}"
    print(
        f"applicant page: {args.page_requests} sequential GET {path} ({HEAVY_EVENTS:,} events) ...",
        flush=True,
    )
    owner = Recruiter(app.port)
    owner.login(generated.owner_email)

    def run(server: Server, client: Client) -> Timing:
        return with_server_times(
            server,
            "GET",
            path,
            lambda: time_page(client, path, args.page_requests, args.page_seconds),
        )

    page_floor = run(floor, Client(floor.port))
    page_app = run(app, owner)
    return row(
        "applicant page",
        page_app,
        page_floor,
        page_app.p50 / page_floor.p50,
        "page p50 / floor p50 (times slower than the floor)",
        f"srv p95 < {TARGET_P95_MS:.0f} ms",
        page_app.server_p95 < TARGET_P95_MS and page_app.failed == 0,
        events=HEAVY_EVENTS,
        timeline_page=PAGE_SIZE,
    )
