"""Free-form tags on applicants ("bilingual", "has van"), and the reads the board needs.

A tag is normalised before anything else sees it (outer space stripped, inner space collapsed,
lower case), so "Has  Van" and "has van" are one tag for the filter and the cards. Adding a tag
the applicant has is a no-op, and so is removing one they lack: neither writes an event.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from plutomi.extensions import db
from plutomi.models import Applicant, ApplicantTag, Membership, Org, Role
from plutomi.services.errors import Invalid, NotFound
from plutomi.services.events import Actor, record_applicant
from plutomi.services.fields import CONTROL_CHARACTER, has_control_characters
from plutomi.services.orgs import require

MAX_LENGTH = 40
MAX_PER_APPLICANT = 20


def normalize(raw: str | None, field: str = "tag") -> str:
    tag = " ".join((raw or "").split()).lower()  # tabs and newlines become one space too
    if not tag:
        raise Invalid("Enter a tag.", field)
    if has_control_characters(tag):
        raise Invalid(CONTROL_CHARACTER, field)
    if len(tag) > MAX_LENGTH:
        raise Invalid(f"Use at most {MAX_LENGTH} characters.", field)
    return tag


def _check_applicant(actor: Membership, applicant: Applicant) -> None:
    # Callers look the applicant up in the actor's org; this keeps a slip from crossing orgs.
    if applicant.org_id != actor.org_id:
        raise NotFound("No such applicant.")


def for_applicant(applicant: Applicant) -> list[str]:
    """The applicant's tags, in alphabetical order."""
    return list(
        db.session.scalars(
            select(ApplicantTag.tag)
            .where(
                ApplicantTag.org_id == applicant.org_id,
                ApplicantTag.applicant_id == applicant.id,
            )
            .order_by(ApplicantTag.tag)
        )
    )


def org_tags(org: Org) -> list[str]:
    """Every tag in use in the org, once each, sorted: the board's filter and the datalist that
    nudges recruiters towards the tags that exist. One query, on the (org, tag) index."""
    return list(
        db.session.scalars(
            select(ApplicantTag.tag)
            .where(ApplicantTag.org_id == org.id)
            .distinct()
            .order_by(ApplicantTag.tag)
        )
    )


def add(actor: Membership, applicant: Applicant, raw: str) -> bool:
    """Tag the applicant; False when they had the tag already (nothing is written)."""
    require(actor, Role.RECRUITER)
    _check_applicant(actor, applicant)
    tag = normalize(raw)
    # Lock the applicant row (PostgreSQL; SQLite writes one at a time anyway) so two
    # recruiters tagging at once cannot both pass the limit check below.
    db.session.execute(select(Applicant.id).where(Applicant.id == applicant.id).with_for_update())
    current = for_applicant(applicant)
    if tag in current:
        db.session.rollback()  # release the lock
        return False
    if len(current) >= MAX_PER_APPLICANT:
        raise Invalid(
            f"An applicant can have at most {MAX_PER_APPLICANT} tags. Remove one first.", "tag"
        )
    db.session.add(ApplicantTag(applicant_id=applicant.id, tag=tag, org_id=applicant.org_id))
    record_applicant("applicant.tagged", applicant, actor=Actor.user(actor.user), tag=tag)
    try:
        db.session.commit()
    except IntegrityError:  # pragma: no cover - a race the lock leaves only to SQLite
        db.session.rollback()
        return False
    return True


def remove(actor: Membership, applicant: Applicant, raw: str) -> bool:
    """Untag the applicant; False when they did not have the tag."""
    require(actor, Role.RECRUITER)
    _check_applicant(actor, applicant)
    tag = normalize(raw)
    removed = db.session.execute(
        delete(ApplicantTag).where(
            ApplicantTag.org_id == applicant.org_id,
            ApplicantTag.applicant_id == applicant.id,
            ApplicantTag.tag == tag,
        )
    ).rowcount
    if not removed:
        db.session.rollback()
        return False
    record_applicant("applicant.untagged", applicant, actor=Actor.user(actor.user), tag=tag)
    db.session.commit()
    return True
