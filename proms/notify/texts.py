"""What the messages say: an email (subject, text, HTML) or a text, in the patient's language.

A message can be read by anyone who sees the patient's phone or mailbox, so it says who is asking
(the clinic), what to open (the link), until when, and how to stop, and nothing about the
patient's health: no diagnosis, treatment, medicine, questionnaire name or score, and the first
name at most. tests/notify/test_texts.py checks every kind in every language for health words.

Sentences are gettext strings here (translations/*/LC_MESSAGES/messages.po); the HTML layout is
templates/notify/email.html. Render inside an app context (the dispatcher's): the language is
forced per message with Flask-Babel, whatever the surrounding request or command uses.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass

from babel import Locale
from babel.dates import format_date
from flask import current_app, render_template
from flask_babel import force_locale, get_locale, gettext
from markupsafe import escape

from proms.notify import gsm
from proms.templating import phone

KINDS = ("invite", "reminder", "new_link")
CHANNELS = ("email", "sms")


@dataclass(frozen=True, slots=True)
class MessageContext:
    """The plain values a message is made of (the dispatcher reads them from the database)."""

    kind: str  # "invite", "reminder" or "new_link"
    language: str  # one of the app's LANGUAGES, e.g. "en" or "es"
    first_name: str | None
    clinic_name: str
    # Shown in emails: already formatted (proms.templating.phone with the clinic's zone) or
    # E.164, which is then shown in international format ("+1 216-555-0100").
    clinic_phone: str | None
    link: str
    closes_on: dt.date  # the last local day the questions are open
    unsubscribe_url: str | None = None  # emails: the one-click unsubscribe address


@dataclass(frozen=True, slots=True)
class Rendered:
    """A rendered message. Emails have a subject and HTML; texts have their segment count."""

    text: str
    subject: str | None = None
    html: str | None = None
    segments: int | None = None
    encoding: str | None = None  # texts: "GSM-7" or "UCS-2"


def render(context: MessageContext, channel: str) -> Rendered:
    """The message for `channel` ("email" or "sms") in the patient's language."""
    if context.kind not in KINDS:
        raise ValueError(f"unknown message kind {context.kind!r}; expected one of {KINDS}")
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}; expected one of {CHANNELS}")
    languages = current_app.config["LANGUAGES"]
    if context.language not in languages:
        raise ValueError(f"unknown language {context.language!r}; expected one of {languages}")
    with force_locale(context.language):
        return _email(context) if channel == "email" else _sms(context)


def _(message: str, **values: str) -> str:
    """Flask-Babel's gettext in the forced language, typed (the catalog's keyword `_`)."""
    return str(gettext(message, **values))


# Text messages -----------------------------------------------------------------------------------


def _sms(context: MessageContext) -> Rendered:
    """The text with the first name if that costs no extra segment, else without it."""
    values = {"clinic": context.clinic_name, "link": context.link, "date": _short_date(context)}
    name = _first_name(context.first_name)
    candidates = [_sms_with_name(context.kind, name=name, **values)] if name else []
    candidates.append(_sms_without_name(context.kind, **values))
    # min() keeps the first of equals: the one with the name when it fits as well.
    text = min(candidates, key=lambda candidate: gsm.segments(candidate)[1])
    encoding, count = gsm.segments(text)
    return Rendered(text=text, segments=count, encoding=encoding)


def _sms_with_name(kind: str, **values: str) -> str:
    # Each text should fit one 160-character segment; a letter outside the GSM alphabet (such as
    # á í ó ú) cuts a segment to 70 characters, hence the note to translators on each one.
    if kind == "invite":
        # TRANSLATORS: a text message: keep it short; avoid á í ó ú (é ñ ü are fine).
        return _(
            "%(clinic)s: %(name)s, how are you? %(link)s Answer by %(date)s. Reply STOP to stop",
            **values,
        )
    if kind == "reminder":
        # TRANSLATORS: a text message: keep it short; avoid á í ó ú (é ñ ü are fine).
        return _(
            "%(clinic)s: %(name)s, a reminder: %(link)s Answer by %(date)s. Reply STOP to stop",
            **values,
        )
    # TRANSLATORS: a text message: keep it short; avoid á í ó ú (é ñ ü are fine).
    return _(
        "%(clinic)s: new link for %(name)s: %(link)s Answer by %(date)s. Reply STOP to stop",
        **values,
    )


def _sms_without_name(kind: str, **values: str) -> str:
    if kind == "invite":
        # TRANSLATORS: a text message: keep it short; avoid á í ó ú (é ñ ü are fine).
        return _(
            "%(clinic)s: how are you? %(link)s Answer by %(date)s. Reply STOP to stop", **values
        )
    if kind == "reminder":
        # TRANSLATORS: a text message: keep it short; avoid á í ó ú (é ñ ü are fine).
        return _(
            "%(clinic)s: a reminder: %(link)s Answer by %(date)s. Reply STOP to stop", **values
        )
    # TRANSLATORS: a text message: keep it short; avoid á í ó ú (é ñ ü are fine).
    return _("%(clinic)s: your new link: %(link)s Answer by %(date)s. Reply STOP to stop", **values)


# Emails ------------------------------------------------------------------------------------------


# Stand-ins for what differs between the emails of one batch: an email is rendered once per
# kind, language, clinic and closing day (translation lookups and Jinja cost some 0.3 ms), then
# each message's name and links are put in its place.
NAME, LINK, UNSUBSCRIBE = "\x00name\x00", "\x00link\x00", "\x00unsubscribe\x00"


def _email(context: MessageContext) -> Rendered:
    name = _first_name(context.first_name)
    subject, text, html = _email_template(
        context.kind,
        context.language,
        context.clinic_name,
        context.clinic_phone,
        context.closes_on,
        bool(name),
        bool(context.unsubscribe_url),
    )
    plain = {NAME: name, LINK: context.link, UNSUBSCRIBE: context.unsubscribe_url or ""}
    return Rendered(
        text=_fill(text, plain),
        subject=subject,
        html=_fill(html, {key: str(escape(value)) for key, value in plain.items()}),
    )


def _fill(template: str, values: dict[str, str]) -> str:
    for stand_in, value in values.items():
        template = template.replace(stand_in, value)
    return template


@functools.lru_cache(maxsize=512)
def _email_template(
    kind: str,
    language: str,
    clinic: str,
    clinic_phone: str | None,
    closes_on: dt.date,
    named: bool,
    unsubscribe: bool,
) -> tuple[str, str, str]:
    """Subject, text and HTML with stand-ins for the name and the links (the locale is forced)."""
    context = MessageContext(
        kind=kind,
        language=language,
        first_name=NAME if named else None,
        clinic_name=clinic,
        clinic_phone=clinic_phone,
        link=LINK,
        closes_on=closes_on,
        unsubscribe_url=UNSUBSCRIBE if unsubscribe else None,
    )
    parts = {
        "subject": _subject(kind, clinic),
        "greeting": _("Hello %(name)s,", name=NAME) if named else _("Hello,"),
        "lead": _lead(kind, clinic),
        "button": _("Answer the questions"),
        "open_until": _("Open until %(date)s.", date=_long_date(context)),
        "copy_link": _("If the button does not work, copy this address into your browser:"),
        "personal": _("This link is for you alone. Please do not share it."),
        "contact": (
            _(
                "Questions? Contact %(clinic)s: %(phone)s.",
                clinic=clinic,
                phone=phone(clinic_phone),
            )
            if clinic_phone
            else None
        ),
        "unsubscribe": _("Don't want these emails?"),
        "unsubscribe_link": _("Unsubscribe"),
        "automatic": _("This email was sent automatically. Replies are not read."),
    }
    text = _email_text(parts, context)
    html = render_template(
        "notify/email.html",
        lang=str(get_locale() or language),
        link=LINK,
        unsubscribe_url=UNSUBSCRIBE if unsubscribe else None,
        **parts,
    )
    return str(parts["subject"]), text, html


def _subject(kind: str, clinic: str) -> str:
    if kind == "invite":
        return _("Your follow-up questions from %(clinic)s", clinic=clinic)
    if kind == "reminder":
        return _("Reminder: your follow-up questions from %(clinic)s", clinic=clinic)
    return _("Your new link from %(clinic)s", clinic=clinic)


def _lead(kind: str, clinic: str) -> str:
    if kind == "invite":
        return _(
            "%(clinic)s would like to know how you have been. Your answers help the people "
            "looking after you.",
            clinic=clinic,
        )
    if kind == "reminder":
        return _(
            "A reminder: %(clinic)s would still like to know how you have been. Your answers "
            "help the people looking after you.",
            clinic=clinic,
        )
    return _(
        "Here is the new link you asked for. %(clinic)s would like to know how you have been.",
        clinic=clinic,
    )


def _email_text(parts: dict[str, str | None], context: MessageContext) -> str:
    """The plain-text alternative: the same sentences, the link on a line of its own."""
    paragraphs = [
        parts["greeting"],
        parts["lead"],
        f"{parts['button']}:\n{context.link}\n{parts['open_until']}",
        parts["personal"],
        parts["contact"],
        f"{parts['unsubscribe']} {parts['unsubscribe_link']}: {context.unsubscribe_url}"
        if context.unsubscribe_url
        else None,
        parts["automatic"],
    ]
    return "\n\n".join(paragraph for paragraph in paragraphs if paragraph) + "\n"


# Values ------------------------------------------------------------------------------------------


def _first_name(name: str | None) -> str:
    """The first name on one line (a stray newline must not break a message apart)."""
    return " ".join((name or "").split())


def _short_date(context: MessageContext) -> str:
    """The last open day as a text message says it: "Mar 12", "12 mar"."""
    return format_date(context.closes_on, _skeleton_pattern("MMMd"), locale=_locale())


def _long_date(context: MessageContext) -> str:
    """The last open day as an email says it: "Friday, March 12", "viernes, 12 de marzo"."""
    pattern = _skeleton_pattern("MMMMEd")
    return format_date(context.closes_on, _full_weekday(pattern), locale=_locale())


def _locale() -> Locale:
    return get_locale() or Locale.parse("en")


def _skeleton_pattern(skeleton: str) -> str:
    """The locale's own pattern for a skeleton (field order, punctuation, "de")."""
    return str(_locale().datetime_skeletons[skeleton].pattern)


def _full_weekday(pattern: str) -> str:
    """The pattern with the weekday written out ("EEEE"), leaving quoted literals alone."""
    pieces = re.split(r"('[^']*')", pattern)
    return "".join(
        piece if piece.startswith("'") else re.sub("E+", "EEEE", piece) for piece in pieces
    )
