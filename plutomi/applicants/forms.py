"""Forms of the applicant page. They carry the CSRF token and the field errors; the rules (length,
control characters, tag normalisation) live in the services, so the forms have no validators."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import StringField, TextAreaField

from plutomi.services import notes, tags


class NoteForm(FlaskForm):
    body = TextAreaField(
        "Note",
        description="Only members of this org see notes.",
        render_kw={"rows": 3, "maxlength": notes.MAX_LENGTH},
    )


class TagForm(FlaskForm):
    tag = StringField(
        "Add a tag",
        render_kw={
            "maxlength": tags.MAX_LENGTH,
            "list": "applicant-tag-options",
            "autocomplete": "off",
        },
    )
