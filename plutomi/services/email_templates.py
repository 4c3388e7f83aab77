"""Org email templates: a subject and a plain-text body with variables, sent by rules.

Templates are Jinja, written by an org's admins and rendered in a sandbox. check() allows only
what an email needs: the variables in VARIABLES, {% if %} with comparisons and tests, and a few
text filters. Loops, calls, attribute access, arithmetic and includes are refused when a template
is saved, so a template can neither reach Python objects nor make a huge text from a short one;
the sandbox still guards rendering as a second wall.

send() is called by the rules engine inside its own transaction: it renders the template now and
writes an "email" outbox row (plutomi.mailer sends it after commit), or, for an applicant who
unsubscribed and a template that is not essential, records that the email was skipped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache

from flask import current_app
from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from plutomi.extensions import db
from plutomi.models import (
    Applicant,
    EmailTemplate,
    Membership,
    Org,
    OutboxMessage,
    Role,
    Rule,
    Stage,
    utcnow,
)
from plutomi.services import applications, mail, unsubscribes  # rules imports us at use
from plutomi.services.errors import Invalid, InvalidFields
from plutomi.services.events import Actor, record, record_applicant
from plutomi.services.fields import CONTROL_CHARACTER, clean_name, has_control_characters
from plutomi.services.lookups import by_public_id
from plutomi.services.orgs import require

log = logging.getLogger(__name__)

VARIABLES: dict[str, str] = {
    "applicant_name": "The applicant's full name.",
    "applicant_email": "The applicant's email address.",
    "opening_name": "The opening they applied to.",
    "stage_name": "The stage they are in (for a rule, the stage it belongs to).",
    "portal_link": "A private link to their application; no password needed.",
    "org_name": "Your organisation's name.",
    "unsubscribe_link": "Stops all but essential email from your organisation.",
}
NAME_MAX = 120
SUBJECT_MAX = 200
BODY_MAX = 20_000
FILTERS = ("capitalize", "default", "lower", "title", "trim", "upper")

# What a template may hold: text, variables, {% if %} and the expressions an if needs.
_ALLOWED = (
    nodes.Template,
    nodes.Output,
    nodes.TemplateData,
    nodes.Name,
    nodes.Const,
    nodes.If,
    nodes.CondExpr,
    nodes.Filter,
    nodes.Test,
    nodes.And,
    nodes.Or,
    nodes.Not,
    nodes.Compare,
    nodes.Operand,
    nodes.Concat,
    nodes.Tuple,
    nodes.List,
)
_REFUSED_WHAT = {
    nodes.For: "A loop ({% for %})",
    nodes.Call: "Calling a function",
    nodes.Getattr: "Reading an attribute (.name)",
    nodes.Getitem: "Reading an item ([...])",
    nodes.Assign: "{% set %}",
    nodes.AssignBlock: "{% set %}",
    nodes.Macro: "A macro",
    nodes.CallBlock: "{% call %}",
    nodes.FilterBlock: "{% filter %}",
    nodes.Include: "Including another template",
    nodes.Extends: "Extending another template",
    nodes.Import: "Importing another template",
    nodes.FromImport: "Importing another template",
    nodes.Scope: "{% autoescape %}",
    nodes.EvalContextModifier: "{% autoescape %}",
    nodes.With: "{% with %}",
}
_FILTER_LIST = ", ".join(f"|{name}" for name in FILTERS)


class _Environment(SandboxedEnvironment):
    def is_safe_attribute(self, obj, attr, value) -> bool:
        # Templates may read no attribute at all (check() refuses them); this holds even for a
        # template that was never checked.
        return False


# Plain text: no autoescape; StrictUndefined makes a missing variable an error, never "".
_env = _Environment(autoescape=False, undefined=StrictUndefined, keep_trailing_newline=True)
# No range(), lipsum(), dict(), cycler() ...: a template sees its variables and nothing else.
_env.globals.clear()
_env.filters = {name: _env.filters[name] for name in (*FILTERS, "d")}


SAMPLE = {
    "applicant_name": "Alex Sample",
    "applicant_email": "alex.sample@example.com",
    "opening_name": "Delivery Driver",
    "stage_name": "Document Upload",
}


def _sample_context(org_name: str) -> dict[str, str]:
    base = current_app.config["BASE_URL"]
    return {
        **SAMPLE,
        "org_name": org_name,
        "portal_link": f"{base}/portal/sample-link",
        "unsubscribe_link": f"{base}/unsubscribe/sample-link",
    }


# --- checking -------------------------------------------------------------------------------


def _parse(source: str, field: str) -> nodes.Template:
    try:
        return _env.parse(source)
    except TemplateSyntaxError as exc:
        message = (exc.message or "this is not valid template syntax").rstrip(".")
        raise Invalid(f"Line {exc.lineno}: {message}.", field) from exc


def _at(node: nodes.Node) -> str:
    # Some nodes ({% autoescape %}'s) carry no line number.
    return f"Line {node.lineno}: " if getattr(node, "lineno", None) else ""


def _refuse_constructs(tree: nodes.Template, field: str) -> None:
    for node in tree.find_all(nodes.Node):
        if isinstance(node, nodes.Filter) and node.name not in _env.filters:
            raise Invalid(
                f"{_at(node)}the filter |{node.name} is not available in email "
                f"templates. Use one of: {_FILTER_LIST}.",
                field,
            )
        if not isinstance(node, _ALLOWED):
            what = next(
                (text for kind, text in _REFUSED_WHAT.items() if isinstance(node, kind)),
                f"This kind of expression ({type(node).__name__})",
            )
            raise Invalid(
                f"{_at(node)}{what} is not available in email templates. Use the "
                f"variables, {{% if %}} and the filters {_FILTER_LIST}.",
                field,
            )


def _check_source(source: str, field: str) -> frozenset[str]:
    tree = _parse(source, field)
    _refuse_constructs(tree, field)
    used = meta.find_undeclared_variables(tree)
    unknown = sorted(used - VARIABLES.keys())
    if unknown:
        raise Invalid(
            f"Unknown variable {{{{ {unknown[0]} }}}}. Use one of: {', '.join(VARIABLES)}.", field
        )
    return frozenset(used)


def _clean_subject(subject: str | None) -> str:
    subject = (subject or "").strip()
    if not subject:
        raise Invalid("Write a subject.", "subject")
    if "\n" in subject or "\r" in subject:
        raise Invalid("Keep the subject on one line.", "subject")
    if len(subject) > SUBJECT_MAX:
        raise Invalid(f"Use at most {SUBJECT_MAX} characters ({len(subject)} now).", "subject")
    if has_control_characters(subject):
        raise Invalid(CONTROL_CHARACTER, "subject")
    return subject


def _clean_body(body: str | None) -> str:
    body = (body or "").replace("\r\n", "\n").replace("\r", "\n").strip()
    if not body:
        raise Invalid("Write the email's text.", "body")
    if len(body) > BODY_MAX:
        raise Invalid(f"Use at most {BODY_MAX:,} characters ({len(body):,} now).", "body")
    # Line breaks and tabs are the layout of plain text; other control characters are refused.
    if has_control_characters(body.replace("\n", "").replace("\t", "")):
        raise Invalid(CONTROL_CHARACTER, "body")
    return body


def check(subject: str | None, body: str | None) -> tuple[str, str]:
    """The subject and body as stored, or InvalidFields with a message per field: limits,
    syntax (naming the line), only known variables and allowed constructs, and a trial render
    for the sample applicant (which finds, say, text compared with a number)."""
    errors: dict[str, str] = {}
    cleaned: dict[str, str] = {}
    for field, clean, source in (("subject", _clean_subject, subject), ("body", _clean_body, body)):
        try:
            cleaned[field] = clean(source)
            _check_source(cleaned[field], field)
        except Invalid as exc:
            errors[field] = exc.message
    if not errors:
        try:
            _render(cleaned["subject"], cleaned["body"], _sample_context("Your organisation"))
        except Invalid as exc:
            errors[exc.field or "body"] = exc.message
    if errors:
        raise InvalidFields(errors)
    return cleaned["subject"], cleaned["body"]


# --- rendering ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Compiled:
    template: Template
    variables: frozenset[str]


@lru_cache(maxsize=512)
def _compile(source: str, field: str) -> _Compiled:
    """Parsed, checked and compiled once per process: a rule sends the same template often."""
    variables = _check_source(source, field)
    return _Compiled(_env.from_string(source), variables)


def _render_one(source: str, field: str, context: dict[str, str]) -> str:
    try:
        return _compile(source, field).template.render(context)
    except TemplateError as exc:
        # SecurityError, a missing variable...: never a crash of the transaction that sends.
        raise Invalid(f"This template cannot be rendered: {exc.message or exc}", field) from exc
    except (TypeError, ValueError, ArithmeticError) as exc:
        # A comparison of text with a number, say: Python's own error, told as the template's.
        raise Invalid(f"This template cannot be rendered: {exc}", field) from exc


def _render(subject: str, body: str, context: dict[str, str]) -> tuple[str, str]:
    subject_text = _render_one(subject, "subject", context)
    text = _render_one(body, "body", context)
    # A header is one line whatever the variables hold.
    return " ".join(subject_text.split()), text.strip() + "\n"


def _context(
    applicant: Applicant, stage: Stage | None, *, portal_link: str, unsubscribe_link: str
) -> dict[str, str]:
    org = db.session.get(Org, applicant.org_id)
    return {
        "applicant_name": applicant.name,
        "applicant_email": applicant.email,
        "opening_name": applicant.opening.name,
        "stage_name": (stage or applicant.stage).name,
        "portal_link": portal_link,
        "org_name": org.name,
        "unsubscribe_link": unsubscribe_link,
    }


def render(
    template: EmailTemplate,
    applicant: Applicant,
    stage: Stage | None = None,
    *,
    portal_link: str,
    unsubscribe_link: str,
) -> tuple[str, str]:
    """(subject, text) for one applicant; Invalid if the template cannot be rendered."""
    context = _context(applicant, stage, portal_link=portal_link, unsubscribe_link=unsubscribe_link)
    return _render(template.subject, template.body, context)


def preview(org: Org, subject: str | None, body: str | None) -> tuple[str, str]:
    """What the template gives for a sample applicant of org, or InvalidFields (as check())."""
    subject, body = check(subject, body)
    try:
        return _render(subject, body, _sample_context(org.name))
    except Invalid as exc:
        raise InvalidFields({exc.field or "body": exc.message}) from exc


# --- sending --------------------------------------------------------------------------------


def _skip(
    template: EmailTemplate,
    applicant: Applicant,
    actor: Actor,
    reason: str,
    why: str | None,
    **extra,
) -> None:
    details = {"why": why} if why else {}
    record_applicant(
        "applicant.email_skipped",
        applicant,
        actor=actor,
        reason=reason,
        template=template.public_id,
        template_name=template.name,
        **details,
        **extra,
    )


def send(
    template: EmailTemplate,
    applicant: Applicant,
    *,
    actor: Actor,
    stage: Stage | None = None,
    why: str | None = None,
) -> OutboxMessage | None:
    """Render the template for the applicant and write its outbox row, in the caller's
    transaction (nothing is committed here). An applicant who unsubscribed gets only essential
    templates: otherwise an applicant.email_skipped event is written and None returned.
    why (why it is sent: "entered the stage") goes on to the applicant.emailed event."""
    if not template.essential and unsubscribes.is_unsubscribed(applicant):
        _skip(template, applicant, actor, "unsubscribed", why)
        return None
    unsubscribe_link = unsubscribes.link_for(applicant)
    try:
        used = _compile(template.subject, "subject").variables
        used |= _compile(template.body, "body").variables
        # A fresh magic link only when the email shows one: each is a live credential.
        portal_link = applications.portal_url(applicant) if "portal_link" in used else ""
        subject, text = render(
            template, applicant, stage, portal_link=portal_link, unsubscribe_link=unsubscribe_link
        )
    except Invalid as exc:
        # Saved templates were checked, so this is rare; it must not undo the change that
        # sent it (an application, a move), so it is told on the timeline instead.
        log.warning("email template %s cannot render: %s", template.public_id, exc.message)
        _skip(template, applicant, actor, "template_error", why, error=exc.message)
        return None
    return mail.queue(
        applicant.email,
        subject,
        text,
        org_id=applicant.org_id,
        template=template.public_id,
        applicant_id=applicant.id,
        # Essential mail is sent whatever the applicant chose, so it offers no unsubscribe.
        unsubscribe=None if template.essential else unsubscribe_link,
        **({"why": why} if why else {}),
    )


# --- the org's templates --------------------------------------------------------------------

NOT_FOUND = "No such email template."
NAME_TAKEN = "Another template has this name."


def list_for(org: Org) -> list[EmailTemplate]:
    return list(
        db.session.scalars(
            select(EmailTemplate)
            .where(EmailTemplate.org_id == org.id)
            .order_by(func.lower(EmailTemplate.name), EmailTemplate.id)
        )
    )


def get(actor: Membership, template_id: str) -> EmailTemplate:
    """One of the actor's org's templates; another org's is NotFound, like a made-up id."""
    return by_public_id(
        select(EmailTemplate).where(EmailTemplate.org_id == actor.org_id),
        EmailTemplate,
        template_id,
        NOT_FOUND,
    )


def _clean(
    org_id: int, name: str | None, subject: str | None, body: str | None, own_id: int | None
) -> tuple[str, str, str]:
    """Every field's problem at once, so a form shows them all in one go."""
    errors: dict[str, str] = {}
    try:
        name = clean_name(name or "", "name", NAME_MAX)
    except Invalid as exc:
        errors["name"] = exc.message
    else:
        taken = db.session.scalar(
            select(EmailTemplate.id).where(
                EmailTemplate.org_id == org_id,
                func.lower(EmailTemplate.name) == name.lower(),
                EmailTemplate.id != (own_id or 0),
            )
        )
        if taken is not None:
            errors["name"] = NAME_TAKEN
    try:
        subject, body = check(subject, body)
    except InvalidFields as exc:
        errors.update(exc.errors)
    if errors:
        raise InvalidFields(errors)
    return name, subject, body


def _commit() -> None:
    try:
        db.session.commit()
    except IntegrityError as exc:
        # Two admins saving the same name at once: the unique constraint decides.
        db.session.rollback()
        raise Invalid(NAME_TAKEN, "name") from exc


def create(
    actor: Membership, name: str, subject: str, body: str, essential: bool = False
) -> EmailTemplate:
    require(actor, Role.ADMIN)
    name, subject, body = _clean(actor.org_id, name, subject, body, None)
    row = EmailTemplate(
        org_id=actor.org_id, name=name, subject=subject, body=body, essential=bool(essential)
    )
    db.session.add(row)
    db.session.flush()
    record(
        "email_template.created",
        actor=Actor.user(actor.user),
        org_id=actor.org_id,
        template=row.public_id,
        name=row.name,
        essential=row.essential,
    )
    _commit()
    return row


def update(
    actor: Membership,
    template_id: str,
    name: str,
    subject: str,
    body: str,
    essential: bool = False,
) -> EmailTemplate:
    require(actor, Role.ADMIN)
    row = get(actor, template_id)
    name, subject, body = _clean(actor.org_id, name, subject, body, row.id)
    new = {"name": name, "subject": subject, "body": body, "essential": bool(essential)}
    changed = [field for field, value in new.items() if getattr(row, field) != value]
    if not changed:
        return row
    for field, value in new.items():
        setattr(row, field, value)
    row.updated_at = utcnow()
    record(
        "email_template.updated",
        actor=Actor.user(actor.user),
        org_id=actor.org_id,
        template=row.public_id,
        name=row.name,
        essential=row.essential,
        changed=changed,
    )
    _commit()
    return row


def rules_using(template: EmailTemplate) -> list[Rule]:
    """The org's rules with an action that sends this template (an org has tens of rules)."""
    rules = db.session.scalars(
        select(Rule).where(Rule.org_id == template.org_id).order_by(Rule.name)
    )
    return [
        rule
        for rule in rules
        if any(
            isinstance(action, dict)
            and action.get("type") == "email"
            and action.get("template") == template.public_id
            for action in rule.actions or []
        )
    ]


def delete(actor: Membership, template_id: str) -> str:
    """Delete the template unless a rule sends it; returns its name (for the page to tell)."""
    require(actor, Role.ADMIN)
    row = get(actor, template_id)
    if using := rules_using(row):
        # A rule would otherwise fire into nothing; the admin decides what it sends instead.
        raise Invalid(
            f"The rule “{using[0].name}” sends this template. Change or delete that rule first.",
            "template",
        )
    record(
        "email_template.deleted",
        actor=Actor.user(actor.user),
        org_id=actor.org_id,
        template=row.public_id,
        name=row.name,
    )
    name = row.name
    db.session.delete(row)
    db.session.commit()
    return name
