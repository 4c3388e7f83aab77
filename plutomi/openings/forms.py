from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    FloatField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional

from plutomi.models import QuestionType
from plutomi.services.openings import QuestionInput

TYPE_CHOICES = [SelectChoice(t.value, t.label) for t in QuestionType]


class NumberField(FloatField):
    """A FloatField for people: 70 rather than 70.0, and "Enter a number." for anything else."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("invalid_value_message", "Enter a number.")
        super().__init__(*args, **kwargs)

    def _value(self) -> str:
        # What was typed goes back as typed; a stored whole number shows without its ".0".
        if not self.raw_data and isinstance(self.data, float) and self.data.is_integer():
            return str(int(self.data))
        return super()._value()


class NewOpeningForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=200)])


class OpeningForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=200)])
    slug = StringField(
        "Slug",
        validators=[DataRequired(), Length(max=63)],
        description="Part of the public link. Lower-case letters, digits and dashes.",
    )
    description = TextAreaField(
        "Description", description="Markdown: **bold**, lists, [links](https://example.com)."
    )


class CloneForm(FlaskForm):
    clone_name = StringField("Name of the copy", validators=[DataRequired(), Length(max=200)])


class StageForm(FlaskForm):
    stage_name = StringField("New stage", validators=[DataRequired(), Length(max=120)])


class QuestionForm(FlaskForm):
    label = StringField("Question", validators=[DataRequired(), Length(max=300)])
    key = StringField(
        "Key",
        validators=[Length(max=64)],
        description="Stable name for rules and exports; left empty, it comes from the question.",
    )
    type = SelectField("Type", choices=TYPE_CHOICES, default=QuestionType.SHORT_TEXT.value)
    required = BooleanField("Required")
    show_on_card = BooleanField(
        "Show on board cards", description="The answer shows on the board's cards; at most three."
    )
    help_text = TextAreaField("Help text", validators=[Length(max=2000)])
    options = TextAreaField(
        "Options", description="For single and multiple choice: one per line, at least 2."
    )
    min_value = NumberField(
        "Minimum",
        validators=[Optional()],
        description="Number: the smallest value; text: the fewest characters.",
    )
    max_value = NumberField(
        "Maximum",
        validators=[Optional()],
        description="Number: the largest value; text: the most characters.",
    )

    def to_input(self) -> QuestionInput:
        return QuestionInput(
            label=self.label.data or "",
            type=self.type.data or "",
            key=self.key.data or "",
            required=bool(self.required.data),
            show_on_card=bool(self.show_on_card.data),
            help_text=self.help_text.data or "",
            options=(self.options.data or "").splitlines(),
            min_value=self.min_value.data,
            max_value=self.max_value.data,
        )

    def fill(self, question) -> None:
        self.label.data, self.key.data, self.type.data = question.label, question.key, question.type
        self.required.data, self.help_text.data = question.required, question.help_text
        self.show_on_card.data = question.show_on_card
        self.options.data = "\n".join(question.options or [])
        self.min_value.data, self.max_value.data = question.min_value, question.max_value
