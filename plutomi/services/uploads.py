"""Files applicants upload: checked, stored under a random name, and found again for download.

What is accepted is decided from the file's content (its first bytes, and for DOCX its zip
directory) as well as from its name's extension, and the two must agree; the type we store and
later serve is ours, never the one the browser claimed. The original name is kept for display
and as the download name only; on disk a file is a random name.

The file and the row: check() reads and checks a file before anything is written; store() saves
a checked file, then adds and flushes the Upload row; the caller commits. If that transaction
rolls back (or the session closes without a commit), the saved file is deleted again by a
session hook below; delete() likewise removes the file only once the transaction that deleted
the row commits. A process killed between saving and committing still leaves an orphaned file
with no row: harmless (nobody can name it), and the price of never having a row without its
file.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import logging
import os
import secrets
import tempfile
import unicodedata
import zipfile
from dataclasses import dataclass
from typing import BinaryIO

from flask import current_app
from sqlalchemy import event, select
from sqlalchemy.orm import Session
from werkzeug.datastructures import FileStorage

from plutomi.extensions import db
from plutomi.models import Applicant, Question, Upload
from plutomi.services.errors import Invalid
from plutomi.services.lookups import by_public_id
from plutomi.storage import Storage, get_storage

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
MAX_NAME = 255


@dataclass(frozen=True)
class Kind:
    label: str
    extension: str  # the one the stored file gets
    content_type: str


PDF = Kind("PDF", ".pdf", "application/pdf")
PNG = Kind("PNG", ".png", "image/png")
JPEG = Kind("JPEG", ".jpg", "image/jpeg")
WEBP = Kind("WEBP", ".webp", "image/webp")
DOCX = Kind(
    "DOCX",
    ".docx",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
)
TXT = Kind("TXT", ".txt", "text/plain; charset=utf-8")

# The allowlist, by the name's extension.
BY_EXTENSION = {
    ".pdf": PDF,
    ".png": PNG,
    ".jpg": JPEG,
    ".jpeg": JPEG,
    ".webp": WEBP,
    ".docx": DOCX,
    ".txt": TXT,
}
# What a file input offers to pick (its accept=); the content is checked whatever was picked.
ACCEPT = ",".join(BY_EXTENSION)
_LABELS = list(dict.fromkeys(kind.label for kind in BY_EXTENSION.values()))
# "PDF, PNG, JPEG, WEBP, DOCX or TXT": the kinds a file question's field names.
KINDS = f"{', '.join(_LABELS[:-1])} or {_LABELS[-1]}"
ACCEPTED = f"Only {', '.join(_LABELS[:-1])} and {_LABELS[-1]} files are accepted."


def _field(question: Question) -> str:
    return f"q_{question.public_id}"


def display_name(filename: str | None) -> str:
    """The name as the user's system called it, safe to show and to send back as a download
    name: no folders (of any system), no control or invisible formatting characters (such as a
    right-to-left override that disguises an extension), at most 255 characters."""
    name = unicodedata.normalize("NFC", filename or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c) not in ("Cc", "Cf", "Cs", "Zl", "Zp"))
    name = " ".join(name.split()).strip(". ")
    if len(name) > MAX_NAME:
        stem, ext = os.path.splitext(name)
        ext = ext if len(ext) <= 16 else ""
        name = stem[: MAX_NAME - len(ext)] + ext
    return name or "upload"


def _sniff(head: bytes, body: BinaryIO, is_text: bool) -> Kind | None:
    """What the content is, from its bytes alone."""
    if head.startswith(b"%PDF-"):
        return PDF
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head.startswith(b"PK\x03\x04"):
        # Only the zip's directory is read, never a member: a zip bomb costs nothing here.
        body.seek(0)
        try:
            with zipfile.ZipFile(body) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError, ValueError):
            return None
        if "[Content_Types].xml" in names and any(n.startswith("word/") for n in names):
            return DOCX
        return None
    if is_text:
        return TXT
    return None


def _copy_checked(stream: BinaryIO, out: BinaryIO, max_mb: int, field: str):
    """Copy at most max_mb megabytes, hashing and checking for UTF-8 text on the way; stops
    reading as soon as the limit is passed."""
    limit = int(max_mb * 1024 * 1024)
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    is_text = True
    head = b""
    size = 0
    while chunk := stream.read(CHUNK):
        size += len(chunk)
        if size > limit:
            raise Invalid(f"Files can be at most {max_mb} MB.", field)
        if len(head) < 64:
            head = (head + chunk)[:64]
        digest.update(chunk)
        if is_text:
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError:
                is_text = False
            is_text = is_text and b"\x00" not in chunk
        out.write(chunk)
    if is_text:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            is_text = False
    return size, digest.hexdigest(), head, is_text


@dataclass
class CheckedFile:
    """A file that passed check(): its content spooled aside until store() keeps it."""

    name: str
    kind: Kind
    size: int
    sha256: str
    body: BinaryIO


def check(question: Question, file: FileStorage | None) -> CheckedFile:
    """Read and check a file before anything is written, so that its problems are reported
    with the other answers' (an application refused for another answer writes no file).

    Raises Invalid (field "q_<question public id>") when no file was given, it is empty, too
    large, of a type we do not accept, or its content does not match its name's extension.
    """
    field = _field(question)
    if file is None or not file.filename:
        raise Invalid("Choose a file to upload.", field)
    name = display_name(file.filename)
    extension = os.path.splitext(name)[1].lower()
    claimed = BY_EXTENSION.get(extension)
    if claimed is None:
        raise Invalid(ACCEPTED, field)

    max_mb = current_app.config["MAX_UPLOAD_MB"]
    with contextlib.ExitStack() as closing:
        body = closing.enter_context(tempfile.SpooledTemporaryFile(max_size=1024 * 1024))
        size, sha256, head, is_text = _copy_checked(file.stream, body, max_mb, field)
        if size == 0:
            raise Invalid("That file is empty.", field)
        kind = _sniff(head, body, is_text)
        if kind is not claimed:
            raise Invalid(f"The file's content does not match its name ({extension}).", field)
        closing.pop_all()  # a checked file stays open until store() keeps it
    return CheckedFile(name, kind, size, sha256, body)


def store(applicant: Applicant, question: Question, checked: CheckedFile) -> Upload:
    """Save a file that check() passed and add its Upload row (flushed, not committed)."""
    storage = get_storage()
    stored_name = f"{secrets.token_hex(16)}{checked.kind.extension}"
    with checked.body as body:
        body.seek(0)
        storage.save(stored_name, body)
    _pending(db.session).saved.append((storage, stored_name))

    upload = Upload(
        org_id=applicant.org_id,
        applicant_id=applicant.id,
        question_id=question.id,
        original_name=checked.name,
        stored_name=stored_name,
        content_type=checked.kind.content_type,
        size=checked.size,
        sha256=checked.sha256,
    )
    db.session.add(upload)
    db.session.flush()
    return upload


def delete(upload: Upload) -> None:
    """Delete the row now (no commit) and its file once that deletion is committed."""
    _pending(db.session).deleted.append((get_storage(), upload.stored_name))
    db.session.delete(upload)
    db.session.flush()


def open_file(upload: Upload) -> BinaryIO:
    """The upload's bytes; FileNotFoundError if the file is gone from the storage."""
    return get_storage().open(upload.stored_name)


def for_member(org_id: int, upload_public_id: str) -> Upload:
    """An upload of that org, for its members; NotFound for any other org's."""
    scope = select(Upload).where(Upload.org_id == org_id)
    return by_public_id(scope, Upload, upload_public_id, "There is no such file in this org.")


def for_applicant(applicant: Applicant, upload_public_id: str) -> Upload:
    """One of that applicant's own uploads; NotFound for everyone else's."""
    scope = select(Upload).where(
        Upload.applicant_id == applicant.id, Upload.org_id == applicant.org_id
    )
    upload = by_public_id(scope, Upload, upload_public_id, "There is no such file.")
    return upload


# --- keeping files and rows together -------------------------------------------------------


@dataclass
class _Pending:
    saved: list[tuple[Storage, str]]
    deleted: list[tuple[Storage, str]]


_KEY = "plutomi.uploads"


def _pending(session) -> _Pending:
    info = session.info
    if _KEY not in info:
        info[_KEY] = _Pending([], [])
    return info[_KEY]


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    pending = session.info.pop(_KEY, None)
    if pending is None:
        return
    for storage, name in pending.deleted:
        try:
            storage.delete(name)
        except OSError:
            log.exception("could not delete the stored file %s", name)


@event.listens_for(Session, "after_transaction_end")
def _after_transaction_end(session: Session, transaction) -> None:
    # after_commit has already taken what a commit kept; what is left belongs to a transaction
    # that ended without one (rolled back or closed): its new files have no row, remove them.
    if transaction.parent is not None or _KEY not in session.info:
        return
    pending = session.info.pop(_KEY)
    for storage, name in pending.saved:
        try:
            storage.delete(name)
        except OSError:
            log.exception("could not delete the stored file %s", name)
