"""Searches find names whatever their letters' case, accents included, on SQLite (whose own
lower() changes only A-Z) as on PostgreSQL."""

from __future__ import annotations

from sqlalchemy import text

from plutomi.extensions import db
from plutomi.models import OpeningState
from plutomi.services import applications
from plutomi.services import board as boards
from tests.test_board import fill


def test_the_board_search_finds_a_name_by_any_case_of_its_letters(make_org, make_opening):
    opening = make_opening(make_org())
    first = opening.stages[0]
    elodie, other = fill(opening, first, 2)
    elodie.name = "Élodie Ângelo"
    elodie.email = "e.a@example.net"
    other.name = "Zoë Weiß"
    db.session.commit()
    for search in ("élodie", "ÉLODIE", "Ângelo", "ângelo", "lodie âng"):
        found = boards.first_pages([first.id], boards.BoardFilter(q=search))[first.id]
        assert [card.name for card in found] == ["Élodie Ângelo"], search
    found = boards.first_pages([first.id], boards.BoardFilter(q="ZOË"))[first.id]
    assert [card.name for card in found] == ["Zoë Weiß"]
    if db.engine.dialect.name == "sqlite":
        # The lower(name) index holds what the same lower() computes: SQLite finds it whole.
        assert db.session.execute(text("PRAGMA integrity_check")).scalar() == "ok"


def test_the_job_board_search_finds_an_opening_by_any_case_of_its_letters(make_org, make_opening):
    org = make_org()
    opening = make_opening(org, "Électricien de nuit")
    opening.state = OpeningState.PUBLISHED
    db.session.commit()
    for search in ("électricien", "ÉLECTRICIEN", "De Nuit"):
        assert [o.name for o in applications.published_openings(org, search)] == [
            "Électricien de nuit"
        ], search
