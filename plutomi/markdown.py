"""Markdown that recruiters write (opening descriptions), rendered to safe HTML.

markdown-it-py parses CommonMark; nh3 (the Rust ammonia sanitizer) then keeps only harmless
tags and attributes, so a <script>, an onclick or a javascript: link never reaches a page.
"""

from __future__ import annotations

from functools import lru_cache

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup

_parser = MarkdownIt("commonmark")


def render(text: str | None) -> Markup:
    if not text:
        return Markup("")
    # Markup only after nh3 has cleaned it.
    return Markup(nh3.clean(_parser.render(text)))


@lru_cache(maxsize=1024)
def excerpt(text: str | None, length: int = 160) -> str:
    """The description's start as plain text, cut at a word: no ** or _ of its Markdown.

    Kept per process by the text itself: a job board lists up to 200 openings on every
    request, and rendering their Markdown each time cost 20 ms of a 25 ms page."""
    plain = " ".join(render(text).striptags().split())
    if len(plain) <= length:
        return plain
    cut = plain[: length - 1].rsplit(" ", 1)[0] or plain[: length - 1]
    return cut.rstrip(" .,;:") + "…"
