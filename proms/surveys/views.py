"""Patient pages: the link, the welcome page, one question per screen, review, thank you."""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    current_app,
    g,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import get_locale
from sqlalchemy import exists, select
from werkzeug.wrappers import Response

from proms.auth.roles import public
from proms.catalog.services import deployment_registry
from proms.db import db, utcnow
from proms.instruments.errors import NotSendableError
from proms.outcomes.models import Alert, AlertStatus, AlertTier, Score
from proms.security import limiter
from proms.surveys import identity as identity_check
from proms.surveys import links
from proms.surveys import services as survey
from proms.surveys import session as survey_session
from proms.surveys.forms import (
    IdentityForm,
    NewLinkForm,
    StartForm,
    SubmitAnswersForm,
    question_form_class,
)
from proms.surveys.models import AccessToken

log = logging.getLogger(__name__)
bp = Blueprint("surveys", __name__, url_prefix="/s")


def _link_limit() -> str:
    return str(current_app.config["LINK_RATE_LIMIT"])


def _identity_limit() -> str:
    return str(current_app.config["IDENTITY_RATE_LIMIT"])


def _use_language_of(check: links.LinkCheck) -> None:
    """Patient pages speak the patient's language and show the clinic's name."""
    g.survey_clinic = check.clinic
    if check.assessment is not None:
        g.patient_language = check.assessment.enrollment.patient.language


def _state_page(check: links.LinkCheck, token: str | None = None) -> ResponseReturnValue:
    """The friendly page of a link that cannot be used right now (nothing about the patient)."""
    opens_on = None
    if check.state is links.LinkState.NOT_YET_OPEN and check.assessment is not None:
        zone = ZoneInfo(check.assessment.enrollment.patient.time_zone)
        opens_on = check.assessment.opens_at.astimezone(zone).date()
    body = render_template(
        "surveys/state.html",
        state=check.state.value,
        clinic=check.clinic,
        opens_on=opens_on,
        window_open=check.window_open,
        token=token if check.can_request_new_link else None,
        new_link_form=NewLinkForm() if check.can_request_new_link else None,
    )
    return body, check.status_code


@bp.route("/<token>", methods=["GET"])
@public
@limiter.limit(_link_limit)
def landing(token: str) -> ResponseReturnValue:
    """Opening a link changes nothing: mail scanners and previews fetch links too."""
    check = links.check_token(links.find_token(db.session, token), utcnow())
    log.info("survey link opened: %s (%s)", check.state.value, links.token_hint(token))
    _use_language_of(check)
    if check.state is not links.LinkState.OK:
        return _state_page(check, token)
    assert check.assessment is not None
    registry = deployment_registry(db.session)
    count = survey.planned_question_count(registry, check.assessment)
    return render_template(
        "surveys/welcome.html",
        clinic=check.clinic,
        question_count=count,
        minutes=max(1, round(count * survey.SECONDS_PER_QUESTION / 60)),
        form=StartForm(),
        token=token,
    )


@bp.route("/<token>", methods=["POST"])
@public
@limiter.limit(_link_limit)
def start(token: str) -> ResponseReturnValue:
    """ "Start": trade the link for the survey cookie and continue on URLs without it."""
    now = utcnow()
    found = links.find_token(db.session, token)
    check = links.check_token(found, now)
    _use_language_of(check)
    if check.state is not links.LinkState.OK:
        return _state_page(check, token)
    assert found is not None
    assert check.assessment is not None
    try:
        plan = survey.start(
            db.session,
            deployment_registry(db.session),
            check.assessment,
            now=now,
            env=current_app.config["ENV"],
        )
    except NotSendableError:
        db.session.rollback()
        log.error(
            "survey refused: an instrument has no official wording (%s)", links.token_hint(token)
        )
        return render_template("surveys/unavailable.html", clinic=check.clinic), 503
    found.last_used_at = now
    db.session.commit()
    needs_check = check.assessment.enrollment.protocol.requires_identity_check
    target = url_for("surveys.identity") if needs_check else _resume_url(plan)
    response = redirect(target, 303)
    return survey_session.write(
        response, survey_session.SurveySession(found.id, identity_checked=not needs_check)
    )


@bp.route("/<token>/new-link", methods=["POST"])
@public
@limiter.limit(_link_limit)
def new_link(token: str) -> ResponseReturnValue:
    now = utcnow()
    found = links.find_token(db.session, token)
    check = links.check_token(found, now)
    _use_language_of(check)
    if check.state is links.LinkState.OK:
        return redirect(url_for("surveys.landing", token=token), 303)  # it still works
    if not check.can_request_new_link or found is None:
        return _state_page(check)
    links.request_new_link(db.session, found, now=now)
    db.session.commit()
    return render_template("surveys/new_link_sent.html", clinic=check.clinic)


class _Current:
    """The survey of this request's cookie, or the response to send instead."""

    def __init__(self) -> None:
        self.response: ResponseReturnValue | None = None
        self.survey = survey_session.read(
            request.cookies.get(survey_session.cookie_name(current_app))
        )
        self.token: AccessToken | None = None
        if self.survey is None:
            self.response = render_template("surveys/session_ended.html"), 403
            return
        self.token = links.get_token(db.session, self.survey.token_id)
        self.check = links.check_token(self.token, utcnow())
        _use_language_of(self.check)
        if self.check.state is links.LinkState.COMPLETED and request.endpoint != "surveys.done":
            # An answer posted after the answers were sent is not saved: the page says so.
            late = request.method == "POST" and request.endpoint == "surveys.question"
            self.response = redirect(url_for("surveys.done", unsaved=1 if late else None), 303)
        elif self.check.state not in (links.LinkState.OK, links.LinkState.COMPLETED):
            self.response = _state_page(self.check)
        elif not self.survey.identity_checked and request.endpoint != "surveys.identity":
            self.response = redirect(url_for("surveys.identity"), 303)

    @property
    def assessment(self):  # type: ignore[no-untyped-def]
        return self.check.assessment


def _renewed(body: ResponseReturnValue, current: _Current) -> Response:
    """The response, with the survey cookie renewed when due (sliding expiry)."""
    response = make_response(body)
    assert current.survey is not None
    return survey_session.renew(response, current.survey, utcnow())


def survey_page(view: Callable[..., ResponseReturnValue]) -> Callable[..., ResponseReturnValue]:
    """A page of a started survey: the cookie's survey, or the page that says why not.

    The view receives the current survey first; what it returns goes out with the survey
    cookie renewed when due (or written, when the view changed the survey).
    """

    @functools.wraps(view)
    def page(*args: Any, **kwargs: Any) -> ResponseReturnValue:
        current = _Current()
        if current.response is not None:
            return current.response
        return _renewed(view(current, *args, **kwargs), current)

    return page


def _resume_url(plan: survey.SurveyPlan) -> str:
    number = plan.first_unanswered()
    return url_for("surveys.question", number=number) if number else url_for("surveys.review")


@bp.route("/check", methods=["GET", "POST"])
@public
@limiter.limit(_identity_limit, methods=["POST"])
@survey_page
def identity(current: _Current) -> ResponseReturnValue:
    """The optional date-of-birth check before the first question."""
    assert current.survey is not None
    assert current.token is not None
    plan = survey.load_plan(current.assessment)
    if current.survey.identity_checked:
        return redirect(_resume_url(plan), 303)
    patient = current.assessment.enrollment.patient
    zone = ZoneInfo(patient.time_zone)
    now = utcnow()
    form = IdentityForm()
    locked_until = identity_check.locked_until(current.token, now)
    if locked_until is not None:
        retry_at = locked_until.astimezone(zone)
        return render_template("surveys/identity.html", form=form, retry_at=retry_at), 429
    if request.method == "GET" or not form.validate():
        status = 400 if request.method == "POST" else 200
        return render_template("surveys/identity.html", form=form, retry_at=None), status
    try:
        given = dt.date(form.year.data, form.month.data, form.day.data)  # type: ignore[arg-type]
    except ValueError:
        given = None
    result = identity_check.check_birth_date(
        db.session,
        current.token,
        patient,
        given,
        now=now,
        policy=identity_check.IdentityPolicy.from_config(current_app.config),
    )
    db.session.commit()
    if result.outcome is identity_check.IdentityOutcome.CONFIRMED:
        current.survey = survey_session.SurveySession(current.token.id, identity_checked=True)
        return redirect(_resume_url(plan), 303)
    log.info("survey identity check failed (%s)", current.token.id)
    if result.outcome is identity_check.IdentityOutcome.LOCKED:
        assert result.locked_until is not None
        retry_at = result.locked_until.astimezone(zone)
        return render_template("surveys/identity.html", form=form, retry_at=retry_at), 429
    form.form_errors.append("mismatch")
    return render_template("surveys/identity.html", form=form, retry_at=None), 400


@bp.route("/q/<int:number>", methods=["GET", "POST"])
@public
@survey_page
def question(current: _Current, number: int) -> ResponseReturnValue:
    plan = survey.load_plan(current.assessment)
    asked = plan.question(number)
    if asked is None:
        return redirect(_resume_url(plan), 303)
    back_to_review = request.args.get("from") == "review"
    part = _review_part_arg() if back_to_review else None
    form_class = question_form_class(asked.item)
    if request.method == "GET":
        form = form_class(
            formdata=None, data={"answer": None if asked.value is None else str(asked.value)}
        )
        return _question_page(plan, asked, form, back_to_review, part)

    form = form_class()
    if form.skip.data:
        value = None
    elif form.validate():
        value = {str(option.value): option.value for option in asked.item.options}[form.answer.data]
    else:
        return _question_page(plan, asked, form, back_to_review, part, status=400)
    try:
        survey.save_answer(db.session, asked, value, now=utcnow())
    except survey.AlreadySubmitted:
        # Sent from another tab or device in the meantime: say that this change was not saved.
        db.session.rollback()
        return redirect(url_for("surveys.done", unsaved=1), 303)
    db.session.commit()
    following = plan.question(number + 1)
    if back_to_review or following is None:
        return redirect(_review_url(part), 303)
    return redirect(url_for("surveys.question", number=number + 1), 303)


def _question_page(plan, asked, form, back_to_review, part, status=200):  # type: ignore[no-untyped-def]
    previous = asked.number - 1 if asked.number > 1 else None
    body = render_template(
        "surveys/question.html",
        plan=plan,
        question=asked,
        form=form,
        previous=previous,
        back_to_review=back_to_review,
        review_part=part,
        review_url=_review_url(part),
    )
    return body, status


@bp.route("/review", methods=["GET"])
@public
@survey_page
def review(current: _Current) -> ResponseReturnValue:
    """Send, or look over one questionnaire at a time: the whole list is 3,500 px on a phone."""
    plan = survey.load_plan(current.assessment)
    return render_template("surveys/review.html", plan=plan, form=SubmitAnswersForm())


@bp.route("/review/<int:part>", methods=["GET"])
@public
@survey_page
def review_part(current: _Current, part: int) -> ResponseReturnValue:
    """One questionnaire's answers, each with a link to change it."""
    plan = survey.load_plan(current.assessment)
    shown = plan.part(part)
    if shown is None:
        return redirect(url_for("surveys.review"), 303)
    return render_template("surveys/review_part.html", plan=plan, part=shown)


def _review_url(part: int | None) -> str:
    """Where a change made from the review goes back to: its questionnaire, or the summary."""
    if part is not None:
        return url_for("surveys.review_part", part=part)
    return url_for("surveys.review")


def _review_part_arg() -> int | None:
    """The review part a question was opened from (?part=N), when it is a number."""
    value = request.args.get("part", "")
    return int(value) if value.isdigit() and len(value) < 4 else None


@bp.route("/submit", methods=["POST"])
@public
@survey_page
def submit(current: _Current) -> ResponseReturnValue:
    try:
        survey.submit(db.session, deployment_registry(db.session), current.assessment, now=utcnow())
    except survey.SurveyError:
        db.session.rollback()
        return _state_page(current.check)
    db.session.commit()
    return redirect(url_for("surveys.done"), 303)


@bp.route("/done", methods=["GET"])
@public
@survey_page
def done(current: _Current) -> ResponseReturnValue:
    if current.check.state is not links.LinkState.COMPLETED:
        # Not sent yet: there is nothing to thank for; carry on where the patient stopped.
        return redirect(_resume_url(survey.load_plan(current.assessment)), 303)
    clinic = current.check.clinic
    scores = []
    if clinic is not None and clinic.show_patient_scores:
        scores = list(
            db.session.scalars(
                select(Score).where(Score.assessment_id == current.assessment.id).order_by(Score.id)
            )
        )
    # Titles as the patient saw them (the snapshot answered, in the patient's language).
    titles = {
        response.instrument.code: response.instrument.title
        for response in current.assessment.responses
    }
    # Answers that raised an urgent alert (not yet dealt with): the patient is told to call
    # the clinic, without naming the alert or any score.
    urgent = db.session.scalar(
        select(
            exists().where(
                Alert.assessment_id == current.assessment.id,
                Alert.tier == AlertTier.URGENT,
                Alert.status != AlertStatus.RESOLVED,
            )
        )
    )
    language = str(get_locale() or "en")
    return render_template(
        "surveys/done.html",
        clinic=clinic,
        scores=scores,
        titles=titles,
        unsaved_change=request.args.get("unsaved") == "1",
        urgent=bool(urgent),
        next_steps=clinic.next_steps(language) if clinic is not None else None,
    )
