"""Openings and stages: reads for the pages, and the writes the demo and later the editor use."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from plutomi.extensions import db
from plutomi.models import Applicant, Opening, OpeningState, Org, Stage


@dataclass(frozen=True)
class OpeningSummary:
    opening: Opening
    applicants: int
    stages: int


def summaries(org: Org) -> list[OpeningSummary]:
    """Every opening of the org with its counts, in two grouped queries."""
    openings = list(
        db.session.scalars(
            select(Opening).where(Opening.org_id == org.id).order_by(Opening.created_at.desc())
        )
    )
    applicants = dict(
        db.session.execute(
            select(Applicant.opening_id, func.count())
            .where(Applicant.org_id == org.id)
            .group_by(Applicant.opening_id)
        ).all()
    )
    stages = dict(
        db.session.execute(
            select(Stage.opening_id, func.count())
            .where(Stage.org_id == org.id)
            .group_by(Stage.opening_id)
        ).all()
    )
    return [OpeningSummary(o, applicants.get(o.id, 0), stages.get(o.id, 0)) for o in openings]


def state_counts(summaries_: list[OpeningSummary]) -> dict[str, int]:
    counts = {state.value: 0 for state in OpeningState}
    for summary in summaries_:
        counts[summary.opening.state] += 1
    return counts


def stage_counts(opening: Opening) -> dict[int, int]:
    """Applicants per stage, counted by the database (a stage is never loaded whole)."""
    return dict(
        db.session.execute(
            select(Applicant.stage_id, func.count())
            .where(Applicant.opening_id == opening.id)
            .group_by(Applicant.stage_id)
        ).all()
    )


def first_applicants(stage: Stage, limit: int = 5) -> list[Applicant]:
    return list(
        db.session.scalars(
            select(Applicant)
            .where(Applicant.stage_id == stage.id)
            .order_by(Applicant.rank)
            .limit(limit)
        )
    )
