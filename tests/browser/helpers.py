"""What the browser tests do again and again: log in, wait for htmx, tell a full page load."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.conftest import PASSWORD


def settled(page) -> None:
    """Wait until htmx has answered and set up what it swapped in (its forms bound, Sortable
    made by htmx.onLoad): an element seen in the page may not be ready to act on yet."""
    page.wait_for_function(
        "!document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling, .htmx-added')"
    )


def mark_page(page) -> None:
    """Mark the page once its scripts have run, so that a later full page load shows.

    Waiting matters: a click before htmx has bound its handlers (to a page just loaded, or
    just swapped in by a boosted link) submits the form the plain way, which works but
    reloads the page and drops the mark.
    """
    page.wait_for_load_state("load")
    settled(page)
    page.evaluate("window.plutomiSamePage = true")


def same_page(page) -> bool:
    """Whether the page marked by mark_page() is still the one loaded."""
    return page.evaluate("window.plutomiSamePage") is True


def log_in(new_context, email: str, password: str = PASSWORD):
    """A new person (browser context) logged in, on their openings."""
    page = new_context().new_page()
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/openings$"))
    return page
