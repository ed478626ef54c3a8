"""`proms demo`: load synthetic demonstration data, idempotently.

Every step looks up what it would create by a natural key (clinic slug, staff email, protocol
slug and version, patient MRN) and only adds what is missing, so running it twice changes nothing.
The data come from seeded random generators: the same seed gives the same people, answers and
scores.

A new patient arrives with a whole history up to today, the one a clinic would have: courses
enrolled before they began, infusion days given or missed, invitations and reminders sent,
questionnaires answered (or not) inside their windows, and a second course for most of those
who came back. Answers follow a latent trajectory per course and domain (patients who improve,
stay the same or get worse) and are submitted the way the survey submits them, scored by the
same `record_submission`, so the scores, their change from baseline and the alerts are the real
engine's. `docs/demo.md` describes the cohort and the figures it gives.

The parts: `people` (clinics, staff, patients, their courses), `cohort` (the shape: trajectories
and the answers drawn from them), `history` (messages, answers, scores, alerts, up to now).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import click
from flask import Flask, current_app
from sqlalchemy.orm import Session

from proms.auth import mfa
from proms.db import db, utcnow
from proms.demo.context import DemoContext, DemoReport
from proms.demo.history import close_windows, load_answers, load_withdrawals
from proms.demo.people import (
    DEMO_ADMIN_TOTP_SECRET,
    DEMO_CLINICS,
    DEMO_STAFF,
    load_clinics,
    load_patients,
    load_protocols,
    load_returning_courses,
    load_staff,
)

__all__ = [
    "DEMO_ADMIN_TOTP_SECRET",
    "DEMO_CLINICS",
    "DEMO_STAFF",
    "STEPS",
    "DemoReport",
    "init_app",
    "load_demo",
]

STEPS: list[Callable[[DemoContext], None]] = [
    load_clinics,
    load_staff,
    load_protocols,
    load_patients,
    load_returning_courses,
    load_answers,
    load_withdrawals,
    close_windows,
]


def load_demo(
    session: Session, *, now: dt.datetime, seed: int = 2021, size: float = 1.0
) -> DemoReport:
    """Run every demo step in order (flush only; the caller commits).

    `size` scales the number of patients per clinic (tests load a small cohort).
    """
    report = DemoReport()
    ctx = DemoContext(
        session=session, today=now.date(), now=now, seed=seed, report=report, size=size
    )
    for step in STEPS:
        step(ctx)
        session.flush()
    return report


@click.group("demo", invoke_without_command=True)
@click.option("--seed", default=2021, show_default=True, help="Random seed of the synthetic data.")
@click.option(
    "--size",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0.0, min_open=True, max=10.0),
    help="Patients per clinic as a share of the full demo (1 = 220 patients).",
)
@click.pass_context
def demo_command(context: click.Context, seed: int, size: float) -> None:
    """Load demonstration data (idempotent; refused in production).

    `proms demo code` prints the demo admin's current sign-in code instead.
    """
    if context.invoked_subcommand is not None:
        return
    if current_app.config["ENV"] == "production":
        raise click.ClickException(
            "Demo data has well-known passwords: it is refused with PROMS_ENV=production."
        )
    report = load_demo(db.session, now=utcnow(), seed=seed, size=size)
    db.session.commit()
    added = (
        ", ".join(f"{n} {what}" for what, n in report.added.items()) or "nothing (already loaded)"
    )
    click.echo(f"Demo data: added {added}.")
    click.echo("Demo logins (development only):")
    for email, password, role, clinic in report.logins:
        click.echo(f"  {email:<34} {password:<24} {role:<12} {clinic}")
    click.echo(
        "The admin also enters a code after the password: run `proms demo code` for it, or add"
        f" the key {mfa.grouped(DEMO_ADMIN_TOTP_SECRET)} to an authenticator app."
    )


@demo_command.command("code")
def demo_code_command() -> None:
    """Print the demo admin's two-step sign-in code now (from the demo's public key)."""
    now = utcnow()
    step = mfa.time_step(now)
    left = mfa.STEP_SECONDS - int(now.timestamp()) % mfa.STEP_SECONDS
    click.echo(mfa.code_at(DEMO_ADMIN_TOTP_SECRET, step))
    click.echo(
        f"The code of admin@demo.example.org, good for about {left} more seconds "
        "(and the 30 after); each code signs in once.",
        err=True,
    )


def init_app(app: Flask) -> None:
    app.cli.add_command(demo_command)
