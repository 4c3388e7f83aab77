"""Downloads of uploaded files: for members of the file's org, and for the applicant who sent it.

A file is always sent as an attachment under its original name, with the type we decided when it
was stored, `nosniff` and a sandboxing CSP: even a file that got past the checks can never run as
a page of ours. Anything not yours is a 404, never a 403 that confirms it exists.
"""

from __future__ import annotations

from flask import Blueprint, abort, current_app, send_file

from plutomi.applicant_session import current_applicant
from plutomi.models import Upload
from plutomi.services import uploads
from plutomi.tenancy import current_org, org_required

bp = Blueprint("files", __name__)


def _send(upload: Upload):
    try:
        stream = uploads.open_file(upload)
    except FileNotFoundError:
        current_app.logger.error(
            "stored file %s of upload %s is missing", upload.stored_name, upload.public_id
        )
        abort(404, "This file is no longer available.")
    response = send_file(
        stream,
        mimetype=upload.content_type,
        as_attachment=True,
        download_name=upload.original_name,
        etag=upload.sha256,
        last_modified=upload.created_at,
        conditional=True,
        max_age=0,
    )
    if response.status_code == 200:
        response.content_length = upload.size
    # Exactly the stored type (werkzeug would add a second charset to "text/plain; charset=").
    response.headers["Content-Type"] = upload.content_type
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "sandbox"
    # Only the browser may keep it, and it asks again (a 304 when unchanged) before reusing it,
    # so a download never outlives the access that allowed it.
    response.cache_control.public = False
    response.cache_control.private = True
    response.cache_control.no_cache = True
    response.vary.add("Cookie")
    return response


@bp.get("/files/<pid:upload_id>")
@org_required()
def member_file(upload_id: str):
    return _send(uploads.for_member(current_org().id, upload_id))


@bp.get("/portal/files/<pid:upload_id>")
def applicant_file(upload_id: str):
    applicant = current_applicant()
    if applicant is None:
        abort(404)
    return _send(uploads.for_applicant(applicant, upload_id))
