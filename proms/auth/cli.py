"""`proms staff ...`: staff accounts from the command line."""

from __future__ import annotations

import click
from flask import current_app
from sqlalchemy import select

from proms.admin.models import Clinic
from proms.auth import mfa, services, tokens
from proms.auth.models import Role
from proms.auth.passwords import hasher_from_config, password_problem
from proms.db import db, utcnow

ROLE_CHOICE = click.Choice([role.value for role in Role])


def _clinic_or_fail(name: str) -> Clinic:
    """A clinic by short name, or by exact full name."""
    clinic = db.session.scalar(select(Clinic).where(Clinic.slug == name)) or db.session.scalar(
        select(Clinic).where(Clinic.name == name)
    )
    if clinic is None:
        raise click.UsageError(
            f"No clinic {name!r}. Create it first with `proms clinic create`, "
            "or check `proms clinic list`."
        )
    return clinic


def cli_audit(
    action: str, staff_email: str, *, clinic_id: int | None = None, **detail: str
) -> None:
    """Audit a command-line change: who ran it (the operating-system user) and on whom."""
    services.record_event(
        db.session,
        action,
        actor_email=services.cli_actor(),
        clinic_id=clinic_id,
        detail={"via": "cli", "staff_email": staff_email, **detail},
    )


def _password_ok(value: str) -> str:
    if problem := password_problem(value):
        raise click.BadParameter(problem)
    return value


@click.group(help="Staff accounts.")
def staff() -> None:
    pass


@staff.command("create")
@click.option("--email", required=True, help="Login email address.")
@click.option("--role", type=ROLE_CHOICE, required=True, help="Role in the clinic.")
@click.option("--clinic", "clinic_name", required=True, help="Clinic short name (or full name).")
@click.option("--name", "full_name", default="", help="Full name shown in the audit log.")
@click.password_option(
    "--password",
    prompt="Password",
    help="Asked for when not given (safer than the command line).",
    callback=lambda _ctx, _param, value: _password_ok(value),
)
def create(email: str, role: str, clinic_name: str, full_name: str, password: str) -> None:
    """Create a staff account with a role in one clinic."""
    clinic = _clinic_or_fail(clinic_name)
    try:
        user = services.create_staff(
            db.session,
            hasher_from_config(current_app.config),
            email=email,
            full_name=full_name or email,
            password=password,
            clinic=clinic,
            role=Role(role),
        )
    except services.AccountError as exc:
        raise click.ClickException(str(exc)) from exc
    cli_audit("staff.created", user.email, clinic_id=clinic.id, role=role)
    db.session.commit()
    click.echo(f"Created {user.email} ({role} at {clinic.name}).")


@staff.command("grant")
@click.option("--email", required=True)
@click.option("--role", type=ROLE_CHOICE, required=True)
@click.option("--clinic", "clinic_name", required=True)
def grant(email: str, role: str, clinic_name: str) -> None:
    """Give an existing staff member a role in a clinic."""
    user = services.find_staff(db.session, email)
    if user is None:
        raise click.ClickException(f"No staff account for {email}.")
    clinic = _clinic_or_fail(clinic_name)
    services.grant(db.session, user, clinic, Role(role))
    cli_audit("staff.granted", user.email, clinic_id=clinic.id, role=role)
    db.session.commit()
    click.echo(f"{user.email} is {role} at {clinic.name}.")


@staff.command("unlock")
@click.option("--email", required=True)
def unlock(email: str) -> None:
    """Clear the failed-login count and lock of an email address."""
    address = services.normalize_email(email)
    if not services.clear_throttle(db.session, address):
        click.echo(f"{address} has no failed logins to clear.")
        return
    cli_audit("staff.unlocked", address)
    db.session.commit()
    click.echo(f"Unlocked {address}.")


@staff.command("invite")
@click.option("--email", required=True, help="Login email address.")
@click.option(
    "--role", "roles", type=ROLE_CHOICE, required=True, multiple=True, help="Role (repeatable)."
)
@click.option("--clinic", "clinic_name", required=True, help="Clinic short name (or full name).")
@click.option("--name", "full_name", required=True, help="The staff member's full name.")
def invite(email: str, roles: tuple[str, ...], clinic_name: str, full_name: str) -> None:
    """Create an account and print a one-time link with which its owner sets the password."""
    clinic = _clinic_or_fail(clinic_name)
    chosen = [Role(value) for value in dict.fromkeys(roles)]
    try:
        user, raw = tokens.invite(
            db.session,
            hasher_from_config(current_app.config),
            clinic,
            email=email,
            full_name=full_name,
            roles=chosen,
            now=utcnow(),
        )
    except services.AccountError as exc:
        raise click.ClickException(f"{exc} Use `proms staff grant` to give it a role.") from exc
    url = tokens.password_link_url(current_app.config, raw)
    cli_audit("staff.invited", user.email, clinic_id=clinic.id, roles=",".join(chosen))
    db.session.commit()
    click.echo(f"Invited {user.email} ({', '.join(r.value for r in chosen)} at {clinic.name}).")
    click.echo(f"Give them this link; it works once, for {tokens.LINK_MAX_AGE.days} days:")
    click.echo(url)


@staff.command("reset-two-step")
@click.option("--email", required=True)
def reset_two_step(email: str) -> None:
    """Turn off an account's two-step sign-in and end its sessions (a lost phone, no admin left).

    For when no other admin can do it from the staff member's page: the only admin of a clinic
    who lost both the phone and the recovery codes. The next sign-in sets it up again.
    """
    user = services.find_staff(db.session, email)
    if user is None:
        raise click.ClickException(f"No staff account for {services.normalize_email(email)}.")
    mfa.reset(db.session, user)
    ended = services.end_all_sessions(user, "two_step_reset", now=utcnow())
    cli_audit("staff.two_step_reset", user.email, sessions_ended=str(ended))
    db.session.commit()
    click.echo(
        f"Two-step sign-in of {user.email} is off and {ended} session(s) ended; "
        "they set it up again at their next sign-in."
    )
