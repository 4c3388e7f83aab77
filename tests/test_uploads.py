"""Uploads: what is accepted (by content and name together), how files are kept, who may
download them. Real files in the test app's UPLOAD_DIR; no mocks of the storage."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import struct
import zipfile
import zlib
from pathlib import Path

import pytest
from flask import current_app
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage

from plutomi.config import max_content_length
from plutomi.extensions import db
from plutomi.models import Question, QuestionType, Role, Upload
from plutomi.services import uploads
from plutomi.services.errors import Invalid, NotFound
from plutomi.storage import LocalStorage, get_storage
from tests.conftest import Auth, flashed, owner_of

# --- tiny real files ---------------------------------------------------------------------

PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)


def _png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)  # 1x1, 8-bit RGB
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


# A 16x16 JPEG and WEBP (the test images of CPython's own email tests).
JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQEAAQABAAD/2wBDAAMCAgICAgMCAgIDAwMDBAYEBAQEBAgGBgUGCQgKCgkICQkKDA8MCgsOCwkJ"
    "DRENDg8QEBEQCgwSExIQEw8QEBD/2wBDAQMDAwQDBAgEBAgQCwkLEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ"
    "EBAQEBAQEBAQEBAQEBAQEBAQEBD/wAARCAAQABADASIAAhEBAxEB/8QAFgABAQEAAAAAAAAAAAAAAAAABwQF/8QAJBAA"
    "AQQBBAICAwAAAAAAAAAAAQIDBAYFBwgSExEiABQJMTL/xAAVAQEBAAAAAAAAAAAAAAAAAAAABv/EACMRAAECBQMFAAAA"
    "AAAAAAAAAAECEQMEBQYhABIxFRZhgeH/2gAMAwEAAhEDEQA/ABSm0mobc8HmExLUlRzzEWPkJWW+ulrsaUVAseUgslSl"
    "H9LKuPryIKuWPZdskzXmm3fX5m2nF4GlVxx/HOpx4ks51+MiU/Iaad7UcUo4tILoS4kqcWkezS0hO/HvuRp0rO6hWnWO"
    "1UisZVuFi4GFeyEpmGepa5S5SWVPuciFKRFLgSrwetnyPIB+Vb4N9mKhQMzo5po9XLdDs9d6ZVix2VEhiL9kuNPxw2gE"
    "KcDQ/rs8AuA8VAe0vdl7VOYn+27flGAUgmITjbhSmCg3BYlyeWDkMolvw4KOp1KM6iCNvngZHwetf//Z"
)
WEBP = base64.b64decode(
    "UklGRqgBAABXRUJQVlA4WAoAAAAQAAAADwAADwAAQUxQSMMAAAABJ6KokSTleucYX+ffKpmImP90cY3gJjDi4Yt3Msj"
    "BEVyDKzDosHgVjnhRNcEIDAJPkqBqsFUZHNa2bUYvTsZ2PLbtd/uvKa4hov9J0f2PkPe6REkkGzolkTTzFG0Ox9PlFiD0"
    "CxS+kOGDtxoynjaCfx0pfk52CPuInrOR75lzRugygtv4zEiy90UwfSD9NheMITJWLaXWayO8XeOlWRXVnIGk2W6WdYoYM"
    "Q+KqixQNPowgt+6a1BSKbUtz+lUFAoBAAAAVlA4IL4AAACQAgCdASoQABAAAwA0JbACdDBPCIUMfAMdCCz96AD+/XSg/Q"
    "KbH4r3Q3ycN/bSDK/T/zVo4u6nvclvG/SqxWOuup+XhN9BojvaW+Tv+MvxvX/hr/o/5Qns9LtmX/+qKdl/yWznhuasl7nk"
    "xvSTI4xf3Y85VSB/lU/8Ofj/b9JrA+ifvIOYZm2x1RP/dhfmsf5diuSfR7+z+r/+HR3zEo/+XM/B+vkYw73Pzx+ROaAB/Z"
    "oBSzEs3rzZe6qsAAAA"
)


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


DOCX = _zip(
    {
        "[Content_Types].xml": b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats'
        b'.org/package/2006/content-types"/>',
        "_rels/.rels": b'<?xml version="1.0"?><Relationships/>',
        "word/document.xml": b'<?xml version="1.0"?><w:document xmlns:w="http://schemas.'
        b'openxmlformats.org/wordprocessingml/2006/main"><w:body/></w:document>',
    }
)
TXT = "Licence number: DL-123\nÉmilie Ørsted — ok ✓\n".encode()
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 48 + b"PE\x00\x00"
HTML = b"<!doctype html><html><script>alert(document.cookie)</script></html>"


def file(data: bytes, name: str, content_type: str = "application/pdf") -> FileStorage:
    return FileStorage(stream=io.BytesIO(data), filename=name, content_type=content_type)


@pytest.fixture
def world(make_org, make_opening, make_applicant):
    org = make_org("Uploads Org")
    opening = make_opening(org, stages=("Documents", "Review"))
    stage = opening.stages[0]
    question = Question(
        org_id=org.id,
        opening_id=opening.id,
        stage_id=stage.id,
        key="licence",
        type=QuestionType.FILE.value,
        label="Driving licence",
        position=0,
    )
    db.session.add(question)
    db.session.commit()
    applicant = make_applicant(opening, name="Ada Upload")
    other = make_applicant(opening, name="Bo Other")
    return org, question, applicant, other


def upload_dir() -> Path:
    return Path(current_app.config["UPLOAD_DIR"])


def on_disk() -> list[str]:
    return sorted(os.listdir(upload_dir())) if upload_dir().exists() else []


def stored(data: bytes, name: str, world) -> Upload:
    _, question, applicant, _ = world
    upload = uploads.store(applicant, question, uploads.check(question, file(data, name)))
    db.session.commit()
    return upload


# --- what is accepted --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "name", "content_type"),
    [
        (PDF, "licence.pdf", "application/pdf"),
        (_png(), "scan.PNG", "image/png"),
        (JPEG, "photo.jpg", "image/jpeg"),
        (JPEG, "photo.jpeg", "image/jpeg"),
        (WEBP, "photo.webp", "image/webp"),
        (
            DOCX,
            "cv.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
        (TXT, "notes.txt", "text/plain; charset=utf-8"),
    ],
)
def test_accepted_types_are_stored_with_their_hash(world, data, name, content_type):
    upload = stored(data, name, world)
    assert upload.original_name == name
    assert upload.content_type == content_type
    assert upload.size == len(data)
    assert upload.sha256 == hashlib.sha256(data).hexdigest()
    assert upload.question_id == world[1].id
    assert upload.org_id == world[0].id
    assert (upload_dir() / upload.stored_name).read_bytes() == data
    with get_storage().open(upload.stored_name) as fh:
        assert fh.read() == data


def test_the_type_is_ours_not_the_browsers(world):
    _, question, applicant, _ = world
    given = file(PDF, "a.pdf", content_type="text/html")
    upload = uploads.store(applicant, question, uploads.check(question, given))
    assert upload.content_type == "application/pdf"


def _refused(world, data: bytes | None, name: str | None) -> Invalid:
    _, question, _, _ = world
    given = None if data is None else file(data, name)
    count = select(func.count()).select_from(Upload)
    before = db.session.scalar(count), on_disk()
    with pytest.raises(Invalid) as caught:
        uploads.check(question, given)
    assert caught.value.field == f"q_{question.public_id}"
    db.session.rollback()
    assert (db.session.scalar(count), on_disk()) == before
    return caught.value


def test_no_file_and_an_empty_file_are_refused(world):
    assert _refused(world, None, None).message == "Choose a file to upload."
    assert _refused(world, b"", "").message == "Choose a file to upload."
    assert _refused(world, b"", "empty.pdf").message == "That file is empty."
    assert _refused(world, b"", "empty.txt").message == "That file is empty."


@pytest.mark.parametrize(
    "name", ["setup.exe", "page.html", "image.svg", "archive.zip", "noextension", "x.pdf.exe"]
)
def test_unknown_extensions_are_refused(world, name):
    message = _refused(world, PDF, name).message
    assert message == "Only PDF, PNG, JPEG, WEBP, DOCX and TXT files are accepted."


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (EXE, "licence.pdf"),
        (HTML, "licence.pdf"),
        (PDF, "photo.png"),
        (_png(), "photo.jpg"),
        (JPEG, "licence.pdf"),
        (_zip({"a.txt": b"hi"}), "cv.docx"),  # a zip, but not a Word document
        (b"PK\x03\x04 not really a zip", "cv.docx"),
        (DOCX, "notes.txt"),
        (EXE, "notes.txt"),
        (b"caf\xe9 latin-1", "notes.txt"),  # not UTF-8
        (b"text with a \x00 NUL", "notes.txt"),
        (TXT, "licence.pdf"),
    ],
)
def test_content_that_does_not_match_the_name_is_refused(world, data, name):
    extension = os.path.splitext(name)[1]
    message = _refused(world, data, name).message
    assert message == f"The file's content does not match its name ({extension})."


def test_too_large_is_refused_without_reading_the_rest(world, monkeypatch):
    monkeypatch.setitem(current_app.config, "MAX_UPLOAD_MB", 1)
    limit = 1024 * 1024
    # Exactly the limit is fine.
    assert stored(b"%PDF-" + b"0" * (limit - 5), "big.pdf", world).size == limit

    class Endless(io.RawIOBase):
        """A stream that never ends: the check must stop on its own."""

        read_bytes = 0

        def readable(self):
            return True

        def readinto(self, buffer):
            buffer[:] = b"%" * len(buffer)
            self.read_bytes += len(buffer)
            return len(buffer)

    endless = Endless()
    _, question, _, _ = world
    with pytest.raises(Invalid) as caught:
        uploads.check(question, FileStorage(stream=endless, filename="huge.txt"))
    assert caught.value.message == "Files can be at most 1 MB."
    assert limit < endless.read_bytes <= limit + uploads.CHUNK
    assert _refused(world, b"%PDF-" + b"0" * limit, "big.pdf").message == (
        "Files can be at most 1 MB."
    )


# --- names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("../../etc/passwd.pdf", "passwd.pdf"),
        ("C:\\Users\\ada\\y.pdf", "y.pdf"),
        ("/absolute/path/licence.pdf", "licence.pdf"),
        ("li\x00ce\x1bnce\r\n.pdf", "licence.pdf"),
        ("invoice\u202efdp.exe.pdf", "invoicefdp.exe.pdf"),  # no right-to-left override
        ("  spaced   out .pdf ", "spaced out .pdf"),
        ("Führerschein.pdf", "Führerschein.pdf"),
    ],
)
def test_the_original_name_is_kept_for_display_only(world, given, shown):
    upload = stored(PDF, given, world)
    assert upload.original_name == shown
    assert re.fullmatch(r"[0-9a-f]{32}\.pdf", upload.stored_name)
    names = on_disk()
    assert upload.stored_name in names
    assert not any(shown in name or "passwd" in name for name in names)
    assert not (upload_dir().parent / "etc").exists()


def test_a_long_name_is_cut_to_255_keeping_its_extension(world):
    upload = stored(PDF, "a" * 400 + ".pdf", world)
    assert len(upload.original_name) == 255
    assert upload.original_name.endswith("aaa.pdf")


def test_stored_names_are_random(world):
    first = stored(PDF, "same.pdf", world)
    second = stored(PDF, "same.pdf", world)
    assert first.stored_name != second.stored_name
    assert first.sha256 == second.sha256
    assert first.public_id != second.public_id


# --- files and rows stay together --------------------------------------------------------


def test_a_rolled_back_upload_leaves_no_file(world):
    _, question, applicant, _ = world
    upload = uploads.store(applicant, question, uploads.check(question, file(PDF, "a.pdf")))
    name = upload.stored_name
    assert get_storage().exists(name)
    db.session.rollback()
    assert not get_storage().exists(name)
    assert db.session.scalar(select(func.count()).select_from(Upload)) == 0


def test_delete_removes_the_file_only_when_committed(world):
    upload = stored(PDF, "a.pdf", world)
    name = upload.stored_name
    uploads.delete(upload)
    assert get_storage().exists(name)
    db.session.rollback()
    assert get_storage().exists(name)
    upload = db.session.scalar(select(Upload).where(Upload.stored_name == name))
    uploads.delete(upload)
    db.session.commit()
    assert not get_storage().exists(name)
    assert db.session.scalar(select(func.count()).select_from(Upload)) == 0


def test_lookups_are_scoped(world, make_org):
    org, _, applicant, other = world
    upload = stored(PDF, "a.pdf", world)
    assert uploads.for_member(org.id, upload.public_id) == upload
    assert uploads.for_applicant(applicant, upload.public_id) == upload
    other_org = make_org("Elsewhere")
    with pytest.raises(NotFound):
        uploads.for_member(other_org.id, upload.public_id)
    with pytest.raises(NotFound):
        uploads.for_applicant(other, upload.public_id)
    with pytest.raises(NotFound):
        uploads.for_member(org.id, "x" * 16)


# --- the storage -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["", "../escape", "a/b", "a\\b", ".hidden", "..", "a..b", "nul\x00", "é.pdf", "x" * 200]
)
def test_local_storage_refuses_unsafe_names(tmp_path, name):
    storage = LocalStorage(tmp_path / "files")
    for call in (
        lambda: storage.save(name, io.BytesIO(b"x")),
        lambda: storage.open(name),
        lambda: storage.delete(name),
        lambda: storage.exists(name),
    ):
        with pytest.raises(ValueError):
            call()
    assert not (tmp_path / "escape").exists()


def test_local_storage_never_leaves_half_a_file(tmp_path):
    storage = LocalStorage(tmp_path / "deep" / "files")
    storage.save("one.txt", io.BytesIO(b"first"))
    assert storage.exists("one.txt")

    class Broken(io.RawIOBase):
        calls = 0

        def readable(self):
            return True

        def readinto(self, buffer):
            self.calls += 1
            if self.calls > 2:
                raise OSError("disk went away")
            buffer[:4] = b"half"
            return 4

    with pytest.raises(OSError):
        storage.save("two.txt", Broken())
    with pytest.raises(OSError):
        storage.save("one.txt", Broken())
    assert not storage.exists("two.txt")
    with storage.open("one.txt") as fh:
        assert fh.read() == b"first"
    assert sorted(os.listdir(tmp_path / "deep" / "files")) == ["one.txt"]
    storage.delete("one.txt")
    storage.delete("one.txt")  # already gone is fine
    assert not storage.exists("one.txt")
    with pytest.raises(FileNotFoundError):
        storage.open("one.txt")


# --- downloads ---------------------------------------------------------------------------


def _assert_download(response, data: bytes, name: str, content_type: str) -> None:
    assert response.status_code == 200
    assert response.get_data() == data
    assert response.headers["Content-Type"] == content_type
    assert response.headers["Content-Length"] == str(len(data))
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert name in disposition
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Security-Policy"] == "sandbox"
    assert response.headers["Cache-Control"] == "no-cache, max-age=0, private"
    response.close()


def test_members_of_the_org_download_with_safe_headers(app, world, make_member):
    org, *_ = world
    upload = stored(HTML.replace(b"<!doctype", b"plain text, not a page <!doctype"), "x.txt", world)
    for user in (owner_of(org), make_member(org, Role.VIEWER)):
        client = app.test_client()
        Auth(client).login(user.email)
        response = client.get(f"/files/{upload.public_id}")
        _assert_download(
            response,
            get_storage().open(upload.stored_name).read(),
            "x.txt",
            "text/plain; charset=utf-8",
        )
        # Asked again with its ETag: not modified, still checked for access.
        again = client.get(
            f"/files/{upload.public_id}", headers={"If-None-Match": f'"{upload.sha256}"'}
        )
        assert again.status_code == 304
        again.close()


def test_a_download_keeps_a_non_ascii_name(app, world):
    org, *_ = world
    upload = stored(PDF, "Führerschein.pdf", world)
    client = app.test_client()
    Auth(client).login(owner_of(org).email)
    response = client.get(f"/files/{upload.public_id}")
    assert "filename*=UTF-8''F%C3%BChrerschein.pdf" in response.headers["Content-Disposition"]
    response.close()


def test_a_member_of_another_org_gets_404(app, world, make_org):
    upload = stored(PDF, "secret-licence.pdf", world)
    stranger = owner_of(make_org("Stranger Org"))
    client = app.test_client()
    Auth(client).login(stranger.email)
    for headers in ({}, {"HX-Request": "true"}):
        response = client.get(f"/files/{upload.public_id}", headers=headers)
        assert response.status_code == 404
        assert "secret-licence" not in response.text
        assert "Content-Disposition" not in response.headers
    # Nor through the applicants' door.
    assert client.get(f"/portal/files/{upload.public_id}").status_code == 404


def test_anonymous_visitors_are_sent_to_login(client, world):
    upload = stored(PDF, "a.pdf", world)
    response = client.get(f"/files/{upload.public_id}")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")
    htmx = client.get(f"/files/{upload.public_id}", headers={"HX-Request": "true"})
    assert htmx.status_code == 204
    assert htmx.headers["HX-Redirect"].startswith("/login")
    # The applicants' door without an applicant signed in: nothing there.
    assert client.get(f"/portal/files/{upload.public_id}").status_code == 404


def test_the_applicant_downloads_their_own_file_and_no_one_elses(app, world):
    _, question, applicant, other = world
    upload = stored(PDF, "licence.pdf", world)
    theirs = uploads.store(other, question, uploads.check(question, file(_png(), "theirs.png")))
    db.session.commit()

    client = app.test_client()
    with client.session_transaction() as session:
        session["applicant"] = applicant.public_id
    _assert_download(
        client.get(f"/portal/files/{upload.public_id}"), PDF, "licence.pdf", "application/pdf"
    )
    assert client.get(f"/portal/files/{theirs.public_id}").status_code == 404
    assert client.get("/portal/files/" + "x" * 16).status_code == 404
    # An applicant is not a member: the members' door sends them to log in.
    assert client.get(f"/files/{upload.public_id}").status_code == 302

    with client.session_transaction() as session:
        session["applicant"] = other.public_id
    assert client.get(f"/portal/files/{upload.public_id}").status_code == 404
    response = client.get(f"/portal/files/{theirs.public_id}")
    assert response.status_code == 200
    response.close()


def test_a_file_missing_from_storage_is_a_clear_404(app, world):
    org, *_ = world
    upload = stored(PDF, "a.pdf", world)
    (upload_dir() / upload.stored_name).unlink()
    client = app.test_client()
    Auth(client).login(owner_of(org).email)
    response = client.get(f"/files/{upload.public_id}")
    assert response.status_code == 404
    assert "This file is no longer available." in response.text


# --- the request size limit --------------------------------------------------------------


def test_the_request_limit_follows_max_upload_mb(make_app):
    assert max_content_length(10) == 11 * 1024 * 1024
    small = make_app(MAX_UPLOAD_MB=1)
    assert small.config["MAX_CONTENT_LENGTH"] == 2 * 1024 * 1024


@pytest.mark.parametrize("htmx", [False, True])
def test_a_too_large_request_gets_our_413_page(make_app, htmx):
    small = make_app(MAX_UPLOAD_MB=1)
    headers = {"HX-Request": "true"} if htmx else {}
    response = small.test_client().post(
        "/login",
        data={"email": "a@example.com", "file": (io.BytesIO(b"x" * (3 * 1024 * 1024)), "a.pdf")},
        headers=headers,
    )
    assert response.status_code == 413
    assert response.mimetype == "text/html"
    message = "That upload is larger than the 1 MB allowed. Choose a smaller file."
    assert message in response.text
    if htmx:
        # The form stays as it was, with what was typed in it; the message is a flash.
        assert response.headers["HX-Reswap"] == "none"
        assert flashed(response) == [{"category": "error", "message": message}]
    else:
        assert "Too large" in response.text and "error-page" in response.text
