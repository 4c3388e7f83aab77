from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, Length

from plutomi.models import Role

# SelectChoice, not (value, label) tuples: WTForms 3.3 deprecates those, 3.4 drops them.
ROLE_CHOICES = [SelectChoice(r.value, r.label) for r in reversed(Role)]


class OrgForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    slug = StringField(
        "Public slug",
        validators=[DataRequired(), Length(max=63)],
        description="Your job board lives at /jobs/<slug>. Lower-case letters, digits and dashes.",
    )


class NewOrgForm(FlaskForm):
    org_name = StringField("Name", validators=[DataRequired(), Length(max=120)])


class InviteForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    role = SelectField("Role", choices=ROLE_CHOICES, default=Role.RECRUITER.value)


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=ROLE_CHOICES)
