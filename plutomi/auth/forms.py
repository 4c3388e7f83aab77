from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, Length

from plutomi.services.passwords import MAX_LENGTH, MIN_LENGTH

_password = [DataRequired(), Length(max=MAX_LENGTH)]


class SignupForm(FlaskForm):
    name = StringField("Your name", validators=[DataRequired(), Length(max=120)])
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField(
        "Password", validators=_password, description=f"At least {MIN_LENGTH} characters."
    )
    org_name = StringField(
        "Organisation",
        validators=[DataRequired(), Length(max=120)],
        description="Your company, team or programme. You can rename it later.",
    )


class InviteSignupForm(FlaskForm):
    name = StringField("Your name", validators=[DataRequired(), Length(max=120)])
    password = PasswordField(
        "Password", validators=_password, description=f"At least {MIN_LENGTH} characters."
    )


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=_password)
    remember = BooleanField("Remember me for 30 days")
    next = HiddenField()


class ForgotForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])


class ResetForm(FlaskForm):
    password = PasswordField(
        "New password", validators=_password, description=f"At least {MIN_LENGTH} characters."
    )


class ProfileForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=120)])


class PasswordForm(FlaskForm):
    current_password = PasswordField("Current password", validators=_password)
    new_password = PasswordField(
        "New password", validators=_password, description=f"At least {MIN_LENGTH} characters."
    )
