"""The secrets of emailed links stay out of sent email rows and of the access log."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from gunicorn.config import Config

from plutomi import access_log, mailer, secret_links

TOKEN = "phXJnkqyFig6QsfJm26rMkk50yh6JA5bSCvzvUNLlDM"  # as new_token() makes them: 43 characters


@pytest.mark.parametrize(
    ("path", "secret"),
    [
        (f"/portal/{TOKEN}", TOKEN),
        (f"/password/reset/{TOKEN}", TOKEN),
        (f"/invites/{TOKEN}", TOKEN),
        (f"/invites/{TOKEN}/logout", TOKEN),
        ("/unsubscribe/Im1reHE0cnM0NWp6ZnQ4cWki.aGRk9w.x7RZqY3mA1nC2bD", "aGRk9w"),
    ],
)
def test_every_kind_of_secret_link_loses_its_secret(path, secret):
    hidden = secret_links.hidden(f"Open https://jobs.example.com{path} now")
    assert secret not in hidden
    assert hidden.startswith("Open https://jobs.example.com/") and "[secret]" in hidden
    assert hidden.endswith(" now")


@pytest.mark.parametrize(
    "path",
    [
        "/portal",
        "/portal/answers/0ws9c69hk0jx5f24",
        "/portal/files/0ws9c69hk0jx5f24",
        "/portal/sign-out",
        "/password/forgot",
        "/jobs/acme/driver",
    ],
)
def test_the_portals_own_pages_and_other_links_stay_as_they_are(path):
    assert secret_links.hidden(path) == path


def test_a_sent_emails_payload_keeps_everything_but_the_secrets():
    payload = {"to": "a@example.com", "text": f"Continue: https://x.test/portal/{TOKEN}\n"}
    kept = mailer.without_secrets(payload)
    assert kept == {
        "to": "a@example.com",
        "text": "Continue: https://x.test/portal/(removed once sent)\n",
    }
    assert mailer.without_secrets({"to": "a@example.com", "text": "No links."}) is None


def test_the_access_log_leaves_out_secrets_in_the_path_and_the_referrer():
    logger = access_log.Logger(Config())
    environ = {
        "REQUEST_METHOD": "POST",
        "RAW_URI": f"/password/reset/{TOKEN}",
        "PATH_INFO": f"/password/reset/{TOKEN}",
        "QUERY_STRING": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "203.0.113.7",
        "HTTP_REFERER": f"https://jobs.example.com/password/reset/{TOKEN}",
    }
    response = SimpleNamespace(status="302 FOUND", headers=[], sent=0)
    request = SimpleNamespace(headers=[("REFERER", environ["HTTP_REFERER"])])
    atoms = logger.atoms(response, request, environ, timedelta(milliseconds=3))
    assert TOKEN not in repr(atoms)
    assert atoms["r"] == "POST /password/reset/[secret] HTTP/1.1"
    assert atoms["f"] == "https://jobs.example.com/password/reset/[secret]"
    assert atoms["h"] == "203.0.113.7"
