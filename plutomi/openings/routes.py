"""Openings of the current org."""

from __future__ import annotations

from flask import Blueprint, render_template

from plutomi import tenancy
from plutomi.models import Opening
from plutomi.services import openings
from plutomi.tenancy import org_required

bp = Blueprint("openings", __name__)


@bp.get("/openings")
@org_required()
def index():
    rows = openings.summaries(tenancy.current_org())
    return render_template(
        "openings/index.html", rows=rows, state_counts=openings.state_counts(rows)
    )


@bp.get("/openings/<opening_id>")
@org_required()
def show(opening_id: str):
    opening = tenancy.get_or_404(Opening, opening_id)
    return render_template(
        "openings/show.html", opening=opening, counts=openings.stage_counts(opening)
    )
