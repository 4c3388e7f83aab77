"""CSRF protection, switched on as in production: plain forms and htmx requests."""

from __future__ import annotations

import html
import io
import re
from pathlib import Path

import pytest
from sqlalchemy import func, select

from plutomi.extensions import db
from plutomi.models import (
    Answer,
    Applicant,
    ApplicantStatus,
    Invite,
    Membership,
    Opening,
    OpeningState,
    Org,
    OutboxMessage,
    Question,
    QuestionType,
    Stage,
    Upload,
    User,
)
from tests.conftest import PASSWORD, flashed, owner_of
from tests.test_applications import link_in

CSRF_MESSAGE = "This form had expired or came from another site."


@pytest.fixture
def csrf_app(make_app, app):
    """An app with CSRF checks on; `app` keeps the test's own context for reading the database."""
    return make_app(WTF_CSRF_ENABLED=True)


def form_token(page: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)


def header_token(page: str) -> str:
    """The token htmx sends with every request: app.js reads it from #csrf-token."""
    return html.unescape(re.search(r'<span id="csrf-token" data-token="([^"]*)"', page).group(1))


def login(client, email: str) -> None:
    token = form_token(client.get("/login").text)
    response = client.post(
        "/login", data={"email": email, "password": PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 302, response.text


def users() -> int:
    return db.session.scalar(select(func.count()).select_from(User))


def assert_csrf_page(response) -> None:
    """Our own 400: a page, or for an htmx partial's request a flash that swaps nothing."""
    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert CSRF_MESSAGE in response.text
    if response.request.headers.get("HX-Request"):
        assert response.headers["HX-Reswap"] == "none"
        [shown, *_] = flashed(response)
        assert shown["category"] == "error" and shown["message"].startswith(CSRF_MESSAGE)
        assert "<html" not in response.text
    else:
        assert "<h1>Bad request</h1>" in response.text
    assert "Traceback" not in response.text
    # Our words, not the library's ("The CSRF token is missing.", "... is invalid.").
    assert "The CSRF" not in response.text


def test_posts_without_a_token_get_our_own_400_page(csrf_app, make_org):
    org = make_org()
    client = csrf_app.test_client()
    email = owner_of(org).email

    assert_csrf_page(client.post("/login", data={"email": email, "password": PASSWORD}))
    assert client.get("/openings").status_code == 302  # not logged in
    signup = {"name": "Ada", "email": "ada@example.com", "password": PASSWORD, "org_name": "A"}
    assert_csrf_page(client.post("/signup", data=signup))
    assert users() == 1
    # A wrong token is no better than none.
    assert_csrf_page(client.post("/signup", data={**signup, "csrf_token": "forged"}))
    assert users() == 1


def test_an_api_style_client_gets_the_error_as_json(csrf_app):
    response = csrf_app.test_client().post(
        "/login", data={"email": "a@example.com"}, headers={"Accept": "application/json"}
    )
    assert response.status_code == 400
    assert response.json["error"]["message"].startswith(CSRF_MESSAGE)


def test_login_and_signup_work_with_the_token_of_their_form(csrf_app, make_org):
    org = make_org()
    client = csrf_app.test_client()
    login(client, owner_of(org).email)
    assert client.get("/openings").status_code == 200

    newcomer = csrf_app.test_client()
    page = newcomer.get("/signup")
    response = newcomer.post(
        "/signup",
        data={
            "name": "Ada",
            "email": "ada@example.com",
            "password": PASSWORD,
            "org_name": "Ada Co",
            "csrf_token": form_token(page.text),
        },
    )
    assert response.status_code == 302
    assert newcomer.get("/openings").status_code == 200
    assert db.session.scalar(select(Org.name).where(Org.name == "Ada Co")) == "Ada Co"


def test_a_token_of_another_session_is_refused(csrf_app):
    token = form_token(csrf_app.test_client().get("/login").text)
    response = csrf_app.test_client().post(
        "/login", data={"email": "a@example.com", "password": PASSWORD, "csrf_token": token}
    )
    assert_csrf_page(response)


def test_an_htmx_post_with_the_header_token_is_accepted(csrf_app, make_org):
    org = make_org("Acme")
    client = csrf_app.test_client()
    login(client, owner_of(org).email)
    page = client.get("/settings/members").text
    token = header_token(page)
    assert token == form_token(page)

    hx = {"HX-Request": "true"}
    data = {"email": "hx@example.com", "role": "viewer"}
    refused = client.post("/settings/invites", data=data, headers=hx)
    assert_csrf_page(refused)
    assert db.session.scalar(select(func.count()).select_from(Invite)) == 0

    response = client.post("/settings/invites", data=data, headers={**hx, "X-CSRFToken": token})
    assert response.status_code == 200
    assert "<html" not in response.text
    assert db.session.scalar(select(Invite.email)) == "hx@example.com"
    # A plain form post (no htmx) may carry the token in the header as well.
    response = client.post("/logout", headers={"X-CSRFToken": token})
    assert response.status_code == 302
    assert client.get("/openings").status_code == 302


def test_the_forms_of_the_org_pages_carry_working_tokens(csrf_app, make_org):
    org = make_org("Acme", slug="acme")
    owner = csrf_app.test_client()
    login(owner, owner_of(org).email)

    page = owner.get("/settings").text
    response = owner.post(
        "/settings", data={"name": "Acme 2", "slug": "acme-2", "csrf_token": form_token(page)}
    )
    assert response.status_code == 302
    page = owner.get("/settings/members").text
    response = owner.post(
        "/settings/invites",
        data={"email": "new@example.com", "role": "recruiter", "csrf_token": form_token(page)},
    )
    assert response.status_code == 302

    # The invitee signs up from the link with the token of the invite page.
    link = re.search(r"/invites/[\w-]+", _last_mail_text()).group(0)
    invitee = csrf_app.test_client()
    assert_csrf_page(invitee.post(link, data={"name": "New", "password": PASSWORD}))
    page = invitee.get(link).text
    response = invitee.post(
        link, data={"name": "New", "password": PASSWORD, "csrf_token": form_token(page)}
    )
    assert response.status_code == 302
    user = db.session.scalar(select(User).where(User.email == "new@example.com"))
    assert db.session.scalar(select(Membership.role).where(Membership.user_id == user.id)) == (
        "recruiter"
    )

    # The org switcher and "new org" forms too.
    page = invitee.get("/orgs/new").text
    response = invitee.post(
        "/orgs/new", data={"org_name": "Side Co", "csrf_token": form_token(page)}
    )
    assert response.status_code == 302
    page = invitee.get("/openings").text
    switcher = re.search(r'<form[^>]*id="org-switcher".*?</form>', page, re.S).group(0)
    response = invitee.post(
        "/orgs/switch", data={"org": org.public_id, "csrf_token": form_token(switcher)}
    )
    assert response.status_code == 302
    assert "<h1>Acme 2</h1>" in invitee.get("/settings").text


def _last_mail_text() -> str:
    db.session.expire_all()
    row = db.session.scalar(select(OutboxMessage).order_by(OutboxMessage.id.desc()))
    return row.payload["text"]


# --- the applicants' pages and the opening editor -------------------------------------------

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def count(model) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model))


def stored_files(app) -> int:
    folder = Path(app.config["UPLOAD_DIR"])
    return sum(1 for _ in folder.iterdir()) if folder.exists() else 0


@pytest.fixture
def job(make_org, make_opening):
    """A published opening at /jobs/acme/driver: its first stage asks for a CV (a file) and,
    optionally, a phone number, which the portal then asks for."""
    org = make_org("Acme", slug="acme")
    opening = make_opening(org, name="Driver", stages=("Apply", "Review"))
    opening.slug = "driver"
    stage = opening.stages[0]
    cv = Question(
        org_id=org.id,
        opening_id=opening.id,
        stage_id=stage.id,
        key="cv",
        type=QuestionType.FILE,
        label="CV",
        required=True,
        position=0,
    )
    phone = Question(
        org_id=org.id,
        opening_id=opening.id,
        stage_id=stage.id,
        key="phone",
        type=QuestionType.SHORT_TEXT,
        label="Phone",
        position=1,
    )
    db.session.add_all([cv, phone])
    db.session.commit()
    return org, opening, cv, phone


def _application(cv: Question, token: str | None = None) -> dict:
    data = {
        "name": "Ada Okafor",
        "email": "ada@example.com",
        f"q_{cv.public_id}": (io.BytesIO(PDF), "cv.pdf"),
    }
    if token:
        data["csrf_token"] = token
    return data


def _applied(client, cv: Question) -> str:
    """Apply (with the form's token) and return the portal page, signed in as the applicant."""
    token = form_token(client.get("/jobs/acme/driver").text)
    response = client.post(
        "/jobs/acme/driver", data=_application(cv, token), content_type="multipart/form-data"
    )
    assert response.status_code == 302, response.text
    return client.get("/portal").text


def test_applying_with_a_file_needs_the_forms_token(csrf_app, job):
    _, _, cv, _ = job
    client = csrf_app.test_client()
    page = client.get("/jobs/acme/driver").text
    files = stored_files(csrf_app)

    refused = client.post(
        "/jobs/acme/driver", data=_application(cv), content_type="multipart/form-data"
    )
    assert_csrf_page(refused)
    forged = client.post(
        "/jobs/acme/driver", data=_application(cv, "forged"), content_type="multipart/form-data"
    )
    assert_csrf_page(forged)
    assert (count(Applicant), count(Upload), count(OutboxMessage)) == (0, 0, 0)
    assert stored_files(csrf_app) == files

    response = client.post(
        "/jobs/acme/driver",
        data=_application(cv, form_token(page)),
        content_type="multipart/form-data",
    )
    assert response.status_code == 302, response.text
    assert (count(Applicant), count(Upload), count(OutboxMessage)) == (1, 1, 1)
    assert stored_files(csrf_app) == files + 1


def test_asking_for_a_magic_link_needs_the_token(csrf_app, job):
    _, _, cv, _ = job
    _applied(csrf_app.test_client(), cv)
    sent = count(OutboxMessage)

    client = csrf_app.test_client()
    page = client.get("/jobs/acme/driver").text
    data = {"link_email": "ada@example.com"}
    assert_csrf_page(client.post("/jobs/acme/driver/link", data=data))
    portal_page = client.get("/portal").text  # signed out: the "lost the email?" form
    assert_csrf_page(client.post("/portal/link", data={"email": "ada@example.com"}))
    assert count(OutboxMessage) == sent

    response = client.post("/jobs/acme/driver/link", data={**data, "csrf_token": form_token(page)})
    assert response.status_code == 200 and "Check your email" in response.text
    response = client.post(
        "/portal/link", data={"email": "ada@example.com", "csrf_token": form_token(portal_page)}
    )
    assert response.status_code == 200 and "Check your email" in response.text
    assert count(OutboxMessage) == sent + 2


def test_saving_a_portal_answer_by_htmx_needs_the_header_token(csrf_app, job):
    _, _, cv, phone = job
    client = csrf_app.test_client()
    page = _applied(client, cv)
    url = f"/portal/answers/{phone.public_id}"
    assert f'hx-post="{url}"' in page
    hx = {"HX-Request": "true"}
    data = {f"q_{phone.public_id}": "0113 496 0000"}

    assert_csrf_page(client.post(url, data=data, headers=hx))
    assert_csrf_page(client.post(url, data=data, headers={**hx, "X-CSRFToken": "forged"}))
    assert db.session.scalar(select(Answer).where(Answer.question_id == phone.id)) is None

    response = client.post(url, data=data, headers={**hx, "X-CSRFToken": header_token(page)})
    assert response.status_code == 200, response.text
    assert "Saved" in response.text and "<html" not in response.text
    db.session.expire_all()
    answer = db.session.scalar(select(Answer).where(Answer.question_id == phone.id))
    assert answer.value == "0113 496 0000"


def test_following_a_portal_link_needs_its_pages_token(csrf_app, job):
    """Another site cannot sign its visitor into an application of its choosing."""
    _, _, cv, _ = job
    _applied(csrf_app.test_client(), cv)
    mail = db.session.scalar(select(OutboxMessage).order_by(OutboxMessage.id.desc()))
    link = link_in(mail)
    visitor = csrf_app.test_client()
    assert_csrf_page(visitor.post(link))
    assert "Ada Okafor" not in visitor.get("/portal").text
    response = visitor.post(link, data={"csrf_token": form_token(visitor.get(link).text)})
    assert response.status_code == 302
    assert "Ada Okafor" in visitor.get("/portal").text


def test_withdrawing_needs_the_token(csrf_app, job):
    _, _, cv, _ = job
    client = csrf_app.test_client()
    page = _applied(client, cv)

    assert_csrf_page(client.post("/portal/withdraw", data={"reason": "Found a job"}))
    db.session.expire_all()
    assert db.session.scalar(select(Applicant.status)) == ApplicantStatus.ACTIVE

    response = client.post(
        "/portal/withdraw", data={"reason": "Found a job", "csrf_token": form_token(page)}
    )
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.scalar(select(Applicant.status)) == ApplicantStatus.WITHDRAWN


def test_the_opening_editors_forms_need_their_tokens(csrf_app, make_org):
    org = make_org("Acme")
    client = csrf_app.test_client()
    login(client, owner_of(org).email)

    # Creating an opening.
    page = client.get("/openings").text
    assert_csrf_page(client.post("/openings", data={"name": "Picker"}))
    assert count(Opening) == 0
    response = client.post("/openings", data={"name": "Picker", "csrf_token": form_token(page)})
    assert response.status_code == 302
    opening = db.session.scalar(select(Opening))
    assert opening.state == OpeningState.DRAFT

    # Adding stages.
    url = f"/openings/{opening.public_id}"
    page = client.get(f"{url}/edit").text
    assert_csrf_page(client.post(f"{url}/stages", data={"stage_name": "Apply"}))
    assert count(Stage) == 0
    for name in ("Apply", "Review"):
        response = client.post(
            f"{url}/stages", data={"stage_name": name, "csrf_token": form_token(page)}
        )
        assert response.status_code == 302, response.text
    first, second = (s.public_id for s in db.session.scalars(select(Stage).order_by(Stage.id)))

    # Reordering by drag: htmx posts the order with the page's token (#csrf-token).
    page = client.get(f"{url}/edit").text
    hx = {"HX-Request": "true"}
    order = {"order": f"{second},{first}"}

    def names() -> list[str]:
        db.session.expire_all()
        return list(db.session.scalars(select(Stage.name).order_by(Stage.position)))

    assert_csrf_page(client.post(f"{url}/stages/order", data=order, headers=hx))
    assert names() == ["Apply", "Review"]
    response = client.post(
        f"{url}/stages/order", data=order, headers={**hx, "X-CSRFToken": header_token(page)}
    )
    assert response.status_code == 200, response.text
    assert 'id="stages"' in response.text and "<html" not in response.text
    assert names() == ["Review", "Apply"]
