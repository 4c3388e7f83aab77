"""Recruiters' pages about one applicant. For now the read-only profile: who they are, where
they stand, and everything they answered and uploaded. Notes, tags and the timeline come next
and read through plutomi.services.applicants too.
"""

from __future__ import annotations

from flask import Blueprint, render_template

from plutomi import tenancy
from plutomi.models import Applicant
from plutomi.services import applicants
from plutomi.tenancy import current_membership, org_required

bp = Blueprint("applicants", __name__)
bp.add_app_template_filter(applicants.duration, "duration")


@bp.get("/applicants/<pid:applicant_id>")
@org_required()
def show(applicant_id: str):
    applicant = tenancy.get_or_404(Applicant, applicant_id)
    return render_template(
        "applicants/show.html",
        profile=applicants.profile(tenancy.current_org(), applicant),
        membership=current_membership(),
    )
