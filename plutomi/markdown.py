"""Markdown that recruiters write (opening descriptions), rendered to safe HTML.

markdown-it-py parses CommonMark; nh3 (the Rust ammonia sanitizer) then keeps only harmless
tags and attributes, so a <script>, an onclick or a javascript: link never reaches a page.
"""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup

_parser = MarkdownIt("commonmark")


def render(text: str | None) -> Markup:
    if not text:
        return Markup("")
    # Markup only after nh3 has cleaned it.
    return Markup(nh3.clean(_parser.render(text)))
