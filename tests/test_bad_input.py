"""Bad input to every form gets a 4xx with a clear message, never a 500, and changes nothing saved.

The forms: login (POST /login), logout (POST /logout), the patient search (POST /patients with
`q` and the pager's hidden `page`; a POST so that names stay out of URLs) and the plain list's
page number (GET /patients?page=). Every field gets the same matrix: empty, missing, blank, too
long for its field (a megabyte where the body limit allows it, else tens of KB; bodies over the
limit are tests/test_form_limits.py's), invalid UTF-8 (percent-encoded %FF%FE, and literal 0xff
bytes), a null byte, HTML/script and SQL injection strings, and for `page` values that are not
a page number.

What "right" means here:
- invalid form content is a 400 whose page names the problem in words a person can act on;
- a *wrong* password (an injection string is just a wrong password) is a 401 and one failed
  attempt for the address tried; an empty, oversized or unreadable password is a 400 and is
  *not* a failed attempt;
- a search for an injection string is an ordinary search (names like O'Brien have quotes): it
  matches nothing, and its echo on the page is escaped;
- every response carries the security headers and never a traceback or unescaped markup;
- the saved rows (staff accounts, memberships, clinics, patients, failed-login counts) are the
  same afterwards, but for the one failure a wrong-password attempt adds.

Input that is not text (invalid UTF-8, control characters such as NUL) has no validator message
yet; these tests accept any of BAD_CHARACTER_PHRASES, the wording proposed for that validation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus, urlsplit

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from proms.admin.models import Clinic, Patient
from proms.auth.models import AuditEvent, ClinicMembership, LoginThrottle, Role, StaffUser
from proms.auth.services import email_sha256
from proms.db import db
from proms.errors import MESSAGES
from tests.helpers import PASSWORD, World, add_patient, csrf_token, login

Value = str | bytes | None  # str: typed text; bytes: sent exactly as given; None: left out

MB = 1024 * 1024
SCRIPT = "<script>alert(1)</script>"
SQL_OR = "' OR 1=1 --"
SQL_DROP = '"; DROP TABLE patient; --'
NUL = "\x00"
PCT_INVALID_UTF8 = b"%FF%FE"  # percent-encoded bytes that are not UTF-8
RAW_INVALID_UTF8 = b"\xff\xfe"  # the same bytes, literally

EMAIL = "clinician@a.example.org"

# The messages people see (from the forms' validators and proms/errors.py).
ENTER_EMAIL = "Enter your email address."
ENTER_PASSWORD = "Enter your password."
INVALID_EMAIL = "Enter a valid email address"
EMAIL_TOO_LONG = "An email address has at most 254 characters."
PASSWORD_TOO_LONG = "That password is too long."
NO_MATCH = "That email and password do not match an active account."
SEARCH_TOO_LONG = "Search for at most 100 characters."
NO_SUCH_PAGE = "no such page"
NOT_A_NUMBER = "Not a valid integer value."
CSRF_MESSAGE = "This form has expired or was not sent from this site."
ORIGIN_MESSAGE = "This form was sent from another site and was refused."
TOO_LARGE = str(MESSAGES[413])
# Text that is not text: any of these (the first two are the proposed validator wording).
BAD_CHARACTER_PHRASES = ("cannot be used", "could not be read", str(MESSAGES[400]))

# Page numbers that are not page numbers, with what the page may say about them.
PAGE_PHRASES = (NO_SUCH_PAGE, NOT_A_NUMBER)
BAD_PAGES: dict[str, tuple[Value, tuple[str, ...]]] = {
    "word": ("abc", PAGE_PHRASES),
    "decimal": ("1.5", PAGE_PHRASES),
    "exponent": ("1e3", PAGE_PHRASES),
    "zero": ("0", (NO_SUCH_PAGE,)),
    "negative": ("-1", (NO_SUCH_PAGE,)),
    "huge": (str(10**30), (NO_SUCH_PAGE,)),
    "32kb": ("9" * 32_768, PAGE_PHRASES),  # larger bodies: tests/test_form_limits.py
    "superscript-digit": ("\u00b2", PAGE_PHRASES),
    "pct-invalid-utf8": (PCT_INVALID_UTF8, (*PAGE_PHRASES, *BAD_CHARACTER_PHRASES)),
    "raw-invalid-utf8": (RAW_INVALID_UTF8, BAD_CHARACTER_PHRASES),
    "nul": (f"1{NUL}", (*PAGE_PHRASES, *BAD_CHARACTER_PHRASES)),
    "sql-or": ("1" + SQL_OR, PAGE_PHRASES),
    "script": (SCRIPT, PAGE_PHRASES),
}

LEAK_MARKERS = ("Traceback", 'File "', "sqlalchemy", "psycopg", "sqlite3", "werkzeug")


@pytest.fixture(autouse=True)
def _errors_as_pages(app: Flask) -> None:
    """Let an unexpected exception become the 500 page a person would see (TESTING propagates)."""
    app.config["PROPAGATE_EXCEPTIONS"] = False


# Checks shared by every case -------------------------------------------------------------------


def assert_safe_response(response: TestResponse) -> str:
    """Security headers, no server error, no traceback, no unescaped markup. Returns the body."""
    body = response.get_data(as_text=True)
    assert response.status_code < 500, body[:2000]
    csp = response.headers.get("Content-Security-Policy", "")
    assert csp
    assert "'unsafe-inline'" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers.get("X-Content-Type-Options") == "nosniff"
    assert response.headers.get("Referrer-Policy") == "no-referrer"
    for marker in LEAK_MARKERS:
        assert marker not in body, marker
    assert SCRIPT not in body
    return body


def assert_says(body: str, phrases: tuple[str, ...]) -> None:
    """The page says at least one of the phrases (ignoring case)."""
    assert any(phrase.lower() in body.lower() for phrase in phrases), (phrases, body[:3000])


def listed_patients(world: World, body: str) -> set[int]:
    """The ids of the world's patients that the page links to."""
    everyone = world.patients_a + world.patients_b
    return {p.id for p in everyone if f'href="/patients/{p.id}"' in body}


def _committed(statement: sa.Executable) -> list[dict[str, Any]]:
    with db.engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(statement)]


def saved_rows() -> dict[str, Any]:
    """Everything these forms could change, as stored."""
    throttles = _committed(
        sa.select(
            LoginThrottle.email_sha256, LoginThrottle.failed_count, LoginThrottle.locked_until
        )
    )
    return {
        "staff": _committed(sa.select(StaffUser.__table__).order_by(StaffUser.id)),
        "memberships": _committed(
            sa.select(ClinicMembership.__table__).order_by(ClinicMembership.id)
        ),
        "clinics": _committed(sa.select(Clinic.__table__).order_by(Clinic.id)),
        "patients": _committed(sa.select(Patient.__table__).order_by(Patient.id)),
        "patient_count": _committed(sa.select(sa.func.count()).select_from(Patient))[0],
        # Failed logins, per address attempted: {sha256: (count, locked until)}.
        "throttles": {
            row["email_sha256"]: (row["failed_count"], row["locked_until"]) for row in throttles
        },
    }


def with_one_more_failure(rows: dict[str, Any], email: str) -> dict[str, Any]:
    """The saved rows after one wrong password for `email` (below the lockout threshold)."""
    key = email_sha256(email)
    count, _ = rows["throttles"].get(key, (0, None))
    return {**rows, "throttles": {**rows["throttles"], key: (count + 1, None)}}


def form_body(fields: Mapping[str, Value]) -> bytes:
    parts = []
    for name, value in fields.items():
        if value is None:
            continue
        raw = value if isinstance(value, bytes) else quote_plus(value).encode("ascii")
        parts.append(name.encode("ascii") + b"=" + raw)
    return b"&".join(parts)


def post_form(
    client: FlaskClient, path: str, fields: Mapping[str, Value], token: str | None
) -> TestResponse:
    """A urlencoded POST sent byte for byte; the CSRF token goes in the body (as a browser's).

    A body that is not UTF-8 cannot be read at all, token included, so its token also goes in the
    X-CSRFToken header: the request then reaches the form, which is what is being tested.
    """
    body = form_body({**fields, "csrf_token": token})
    headers = {}
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        if token is not None:
            headers["X-CSRFToken"] = token
    return client.post(
        path, data=body, content_type="application/x-www-form-urlencoded", headers=headers
    )


def is_signed_in(client: FlaskClient) -> bool:
    response = client.get("/patients")
    assert response.status_code in (200, 302)
    return response.status_code == 200


# The login form ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoginCase:
    fields: dict[str, Value]  # changes to a correct login (EMAIL, PASSWORD)
    status: int
    phrases: tuple[str, ...]  # the page says at least one of these

    @property
    def is_failed_attempt(self) -> bool:
        return self.status == 401


def _login_cases() -> list[Any]:
    unreadable_email = (INVALID_EMAIL, *BAD_CHARACTER_PHRASES)
    # A body with literal 0xff cannot be decoded, so all its fields are missing (or refused).
    undecodable = (ENTER_EMAIL, *BAD_CHARACTER_PHRASES)
    cases = {
        # email
        "email-empty": LoginCase({"email": ""}, 400, (ENTER_EMAIL,)),
        "email-missing": LoginCase({"email": None}, 400, (ENTER_EMAIL,)),
        "email-blank": LoginCase({"email": "   "}, 400, (ENTER_EMAIL,)),
        # A megabyte is refused as a body before the form is read (tests/test_form_limits.py).
        "email-1mb": LoginCase({"email": "a" * MB}, 413, (TOO_LARGE,)),
        "email-4kb": LoginCase({"email": "a" * 4096}, 400, (EMAIL_TOO_LONG,)),
        "email-4kb-address": LoginCase(
            {"email": "a" * (4096 - len("@a.example.org")) + "@a.example.org"},
            400,
            (EMAIL_TOO_LONG,),
        ),
        "email-pct-invalid-utf8": LoginCase(
            {"email": b"clinician" + PCT_INVALID_UTF8 + b"%40a.example.org"}, 400, unreadable_email
        ),
        "email-raw-invalid-utf8": LoginCase(
            {"email": b"clinician" + RAW_INVALID_UTF8 + b"%40a.example.org"}, 400, undecodable
        ),
        "email-nul": LoginCase({"email": f"clinician{NUL}@a.example.org"}, 400, unreadable_email),
        "email-script": LoginCase({"email": EMAIL + SCRIPT}, 400, (INVALID_EMAIL,)),
        "email-script-alone": LoginCase({"email": SCRIPT}, 400, (INVALID_EMAIL,)),
        "email-sql-or": LoginCase({"email": EMAIL + SQL_OR}, 400, (INVALID_EMAIL,)),
        "email-sql-drop": LoginCase({"email": EMAIL + SQL_DROP}, 400, (INVALID_EMAIL,)),
        # A quote is allowed in an address: this one is well formed and matches no account.
        "email-sql-valid-address": LoginCase(
            {"email": "clinician'--@a.example.org"}, 401, (NO_MATCH,)
        ),
        # password
        "password-empty": LoginCase({"password": ""}, 400, (ENTER_PASSWORD,)),
        "password-missing": LoginCase({"password": None}, 400, (ENTER_PASSWORD,)),
        "password-blank": LoginCase({"password": "   "}, 400, (ENTER_PASSWORD,)),
        "password-1mb": LoginCase({"password": "a" * MB}, 413, (TOO_LARGE,)),
        "password-4kb": LoginCase({"password": "a" * 4096}, 400, (PASSWORD_TOO_LONG,)),
        "password-4kb-right-prefix": LoginCase(
            {"password": PASSWORD + "a" * (4096 - len(PASSWORD))}, 400, (PASSWORD_TOO_LONG,)
        ),
        "password-pct-invalid-utf8": LoginCase(
            {"password": PCT_INVALID_UTF8 + quote_plus(PASSWORD).encode()},
            400,
            BAD_CHARACTER_PHRASES,
        ),
        "password-raw-invalid-utf8": LoginCase(
            {"password": RAW_INVALID_UTF8 + quote_plus(PASSWORD).encode()}, 400, undecodable
        ),
        "password-nul": LoginCase({"password": PASSWORD + NUL}, 400, BAD_CHARACTER_PHRASES),
        # Injection strings are well-formed (wrong) passwords: a failed attempt, nothing more.
        "password-script": LoginCase({"password": SCRIPT}, 401, (NO_MATCH,)),
        "password-sql-or": LoginCase({"password": SQL_OR}, 401, (NO_MATCH,)),
        "password-sql-drop": LoginCase({"password": SQL_DROP}, 401, (NO_MATCH,)),
        # both
        "both-empty": LoginCase({"email": "", "password": ""}, 400, (ENTER_EMAIL,)),
        "both-missing": LoginCase({"email": None, "password": None}, 400, (ENTER_EMAIL,)),
        "both-sql-or": LoginCase({"email": SQL_OR, "password": SQL_OR}, 400, (INVALID_EMAIL,)),
    }
    return [pytest.param(case, id=name) for name, case in cases.items()]


@pytest.mark.parametrize("case", _login_cases())
def test_login_form_bad_input(client: FlaskClient, world: World, case: LoginCase) -> None:
    before = saved_rows()
    fields: dict[str, Value] = {"email": EMAIL, "password": PASSWORD, **case.fields}

    response = post_form(client, "/login", fields, csrf_token(client))

    body = assert_safe_response(response)
    assert response.status_code == case.status, body[:3000]
    assert_says(body, case.phrases)
    attempted = fields["email"]
    if case.is_failed_attempt:
        assert isinstance(attempted, str)
        assert saved_rows() == with_one_more_failure(before, attempted)
    else:
        assert saved_rows() == before
    assert not is_signed_in(client)


def test_login_bad_input_is_not_a_failed_attempt(client: FlaskClient, world: World) -> None:
    """Enough invalid forms to lock an account several times over leave it unlocked, uncounted."""
    for password in ["", "   ", "a" * MB, "a" * 4096, PCT_INVALID_UTF8, PASSWORD + NUL] * 5:
        post_form(client, "/login", {"email": EMAIL, "password": password}, csrf_token(client))
    response = login(client, EMAIL)
    assert response.status_code == 302
    rows = _committed(
        sa.select(AuditEvent.action).where(AuditEvent.action.in_(["login.failed", "login.locked"]))
    )
    assert rows == []


# The logout form ---------------------------------------------------------------------------------


def _logout_cases() -> list[Any]:
    # Unreadable text may be refused before the token is even looked at.
    unreadable = (CSRF_MESSAGE, *BAD_CHARACTER_PHRASES)
    cases: dict[str, tuple[Value, tuple[str, ...]]] = {
        "token-empty": ("", (CSRF_MESSAGE,)),
        "token-missing": (None, (CSRF_MESSAGE,)),
        "token-32kb": ("a" * 32_768, (CSRF_MESSAGE,)),
        "token-pct-invalid-utf8": (PCT_INVALID_UTF8, unreadable),
        "token-raw-invalid-utf8": (RAW_INVALID_UTF8, unreadable),
        "token-nul": (NUL, unreadable),
        "token-script": (SCRIPT, (CSRF_MESSAGE,)),
        "token-sql-or": (SQL_OR, (CSRF_MESSAGE,)),
        "token-sql-drop": (SQL_DROP, (CSRF_MESSAGE,)),
    }
    return [pytest.param(*case, id=name) for name, case in cases.items()]


@pytest.mark.parametrize(("token", "phrases"), _logout_cases())
def test_logout_form_bad_input(
    world: World,
    staff_client: Callable[[StaffUser], FlaskClient],
    token: Value,
    phrases: tuple[str, ...],
) -> None:
    client = staff_client(world.user("a", Role.CLINICIAN))
    before = saved_rows()

    body = form_body({"csrf_token": token})
    response = client.post("/logout", data=body, content_type="application/x-www-form-urlencoded")

    page = assert_safe_response(response)
    assert response.status_code == 400
    assert_says(page, phrases)
    assert saved_rows() == before  # the session token was not rotated
    assert is_signed_in(client)
    assert _committed(sa.select(AuditEvent.id).where(AuditEvent.action == "logout")) == []


def test_logout_with_a_token_of_another_session_is_refused(
    world: World, staff_client: Callable[[StaffUser], FlaskClient]
) -> None:
    victim = staff_client(world.user("a", Role.CLINICIAN))
    attacker = staff_client(world.user("b", Role.CLINICIAN))
    before = saved_rows()
    foreign_token = csrf_token(attacker, "/patients")

    response = victim.post("/logout", data={"csrf_token": foreign_token})

    assert CSRF_MESSAGE in assert_safe_response(response)
    assert response.status_code == 400
    assert saved_rows() == before
    assert is_signed_in(victim)


def test_logout_by_get_is_refused(
    world: World, staff_client: Callable[[StaffUser], FlaskClient]
) -> None:
    client = staff_client(world.user("a", Role.CLINICIAN))
    response = client.get("/logout")
    assert response.status_code == 405
    assert str(MESSAGES[405]) in assert_safe_response(response)
    assert is_signed_in(client)


# The patient search form (POST /patients) and the list's page number (GET /patients?page=) ------


@dataclass(frozen=True)
class SearchCase:
    fields: dict[str, Value]  # the posted search form: q, and the pager's hidden page
    status: int
    phrases: tuple[str, ...]
    matches_all: bool = False  # 200 with every clinic-A patient; otherwise no patient at all


def _search_cases() -> list[Any]:
    cases = {
        # An empty or missing search is the whole list, not an error.
        "q-empty": SearchCase({"q": ""}, 200, ("3 patients",), matches_all=True),
        "q-missing": SearchCase({}, 200, ("3 patients",), matches_all=True),
        "q-blank": SearchCase({"q": "   "}, 200, ("3 patients",), matches_all=True),
        "q-1mb": SearchCase({"q": "a" * MB}, 413, (TOO_LARGE,)),
        "q-32kb": SearchCase({"q": "a" * 32_768}, 400, (SEARCH_TOO_LONG,)),
        "q-101-characters": SearchCase({"q": "a" * 101}, 400, (SEARCH_TOO_LONG,)),
        "q-pct-invalid-utf8": SearchCase(
            {"q": b"Test" + PCT_INVALID_UTF8}, 400, BAD_CHARACTER_PHRASES
        ),
        "q-raw-invalid-utf8": SearchCase(
            {"q": b"Test" + RAW_INVALID_UTF8}, 400, BAD_CHARACTER_PHRASES
        ),
        "q-nul": SearchCase({"q": f"Test{NUL}"}, 400, BAD_CHARACTER_PHRASES),
        # Injection strings are searched for as text: no match, and echoed escaped.
        "q-script": SearchCase({"q": SCRIPT}, 200, ("0 patients matching", "&lt;script&gt;")),
        "q-sql-or": SearchCase({"q": SQL_OR}, 200, ("0 patients matching",)),
        "q-sql-drop": SearchCase({"q": SQL_DROP}, 200, ("0 patients matching",)),
        "q-like-percent": SearchCase({"q": "%"}, 200, ("0 patients matching",)),
        "q-like-underscore": SearchCase({"q": "_"}, 200, ("0 patients matching",)),
        # The hidden page field of the search pager.
        "page-empty": SearchCase({"q": "", "page": ""}, 200, ("3 patients",), matches_all=True),
        **{
            f"page-{name}": SearchCase({"q": "Test", "page": value}, 400, phrases)
            for name, (value, phrases) in BAD_PAGES.items()
        },
        "both-bad": SearchCase({"q": "a" * 32_768, "page": "-1"}, 400, (SEARCH_TOO_LONG,)),
    }
    return [pytest.param(case, id=name) for name, case in cases.items()]


@pytest.mark.parametrize("case", _search_cases())
def test_patient_search_bad_input(
    world: World, staff_client: Callable[[StaffUser], FlaskClient], case: SearchCase
) -> None:
    client = staff_client(world.user("a", Role.CLINICIAN))
    before = saved_rows()

    response = post_form(client, "/patients", case.fields, csrf_token(client, "/patients"))

    body = assert_safe_response(response)
    assert response.status_code == case.status, body[:3000]
    assert_says(body, case.phrases)
    expected = {p.id for p in world.patients_a} if case.matches_all else set()
    assert listed_patients(world, body) == expected
    assert saved_rows() == before


def _page_cases() -> list[Any]:
    cases: dict[str, tuple[Value, int, tuple[str, ...]]] = {
        "empty": ("", 200, ("3 patients",)),
        "past-the-end": ("99", 404, ("There is nothing here.",)),
        **{name: (value, 400, phrases) for name, (value, phrases) in BAD_PAGES.items()},
    }
    return [pytest.param(*case, id=f"page-{name}") for name, case in cases.items()]


@pytest.mark.parametrize(("value", "status", "phrases"), _page_cases())
def test_patient_list_page_bad_input(
    world: World,
    staff_client: Callable[[StaffUser], FlaskClient],
    value: Value,
    status: int,
    phrases: tuple[str, ...],
) -> None:
    client = staff_client(world.user("a", Role.CLINICIAN))
    before = saved_rows()

    # Sent as a WSGI server hands it over: the raw query string, as latin-1 text.
    raw = form_body({"page": value}).decode("latin-1")
    response = client.get("/patients", environ_overrides={"QUERY_STRING": raw})

    body = assert_safe_response(response)
    assert response.status_code == status, body[:3000]
    assert_says(body, phrases)
    shown = listed_patients(world, body)
    assert shown <= {p.id for p in world.patients_a}
    if status == 400:
        assert shown == set()
    assert saved_rows() == before


def test_html_in_saved_names_is_shown_as_text(
    world: World, staff_client: Callable[[StaffUser], FlaskClient]
) -> None:
    patient = add_patient(world.clinic_a, "X1", given_name=SCRIPT, family_name=SQL_DROP)
    db.session.commit()
    client = staff_client(world.user("a", Role.CLINICIAN))
    searched = post_form(client, "/patients", {"q": "DROP"}, csrf_token(client, "/patients"))
    for response in (client.get("/patients"), client.get(f"/patients/{patient.id}"), searched):
        body = assert_safe_response(response)
        assert response.status_code == 200
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


# CSRF, origin and size, for every POST form ------------------------------------------------------


@dataclass(frozen=True)
class PostForm:
    path: str
    token_page: str  # a page that carries the form's CSRF token
    fields: dict[str, Value]  # a valid submission
    signed_in: bool


POST_FORMS = [
    pytest.param(
        PostForm("/login", "/login", {"email": EMAIL, "password": PASSWORD}, False), id="login"
    ),
    pytest.param(PostForm("/logout", "/patients", {}, True), id="logout"),
    pytest.param(PostForm("/patients", "/patients", {"q": "Test"}, True), id="search"),
]


@pytest.fixture
def client_for(
    world: World, client: FlaskClient, staff_client: Callable[[StaffUser], FlaskClient]
) -> Callable[[PostForm], FlaskClient]:
    """An anonymous client for the login form, a signed-in clinician for the others."""

    def factory(form: PostForm) -> FlaskClient:
        return staff_client(world.user("a", Role.CLINICIAN)) if form.signed_in else client

    return factory


def assert_nothing_happened(
    client: FlaskClient, form: PostForm, world: World, before: dict[str, Any], body: str
) -> None:
    assert saved_rows() == before
    assert is_signed_in(client) == form.signed_in
    assert listed_patients(world, body) == set()


@pytest.mark.parametrize("form", POST_FORMS)
def test_post_without_csrf_token_is_refused(
    form: PostForm, client_for: Callable[[PostForm], FlaskClient], world: World
) -> None:
    form_client = client_for(form)
    before = saved_rows()

    response = form_client.post(form.path, data=form.fields)  # valid, but for the token

    body = assert_safe_response(response)
    assert response.status_code == 400
    assert CSRF_MESSAGE in body
    assert_nothing_happened(form_client, form, world, before, body)


@pytest.mark.parametrize("origin", ["https://evil.example.org", "http://localhost.evil.example"])
@pytest.mark.parametrize("form", POST_FORMS)
def test_post_from_another_site_is_refused(
    form: PostForm, origin: str, client_for: Callable[[PostForm], FlaskClient], world: World
) -> None:
    form_client = client_for(form)
    token = csrf_token(form_client, form.token_page)
    before = saved_rows()

    response = form_client.post(
        form.path, data={**form.fields, "csrf_token": token}, headers={"Origin": origin}
    )

    body = assert_safe_response(response)
    assert response.status_code == 400
    assert ORIGIN_MESSAGE in body
    assert_nothing_happened(form_client, form, world, before, body)


def test_post_from_this_site_is_accepted(client: FlaskClient, world: World) -> None:
    """The origin check refuses other sites only (the test client's host is localhost)."""
    token = csrf_token(client)
    response = client.post(
        "/login",
        data={"email": EMAIL, "password": PASSWORD, "csrf_token": token},
        headers={"Origin": "http://localhost"},
    )
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/"  # signed in: the start page


@pytest.mark.parametrize("form", POST_FORMS)
def test_body_over_max_content_length_is_413(
    app: Flask, form: PostForm, client_for: Callable[[PostForm], FlaskClient], world: World
) -> None:
    form_client = client_for(form)
    token = csrf_token(form_client, form.token_page)
    limit = app.config["MAX_CONTENT_LENGTH"]
    before = saved_rows()

    body = form_body({**form.fields, "csrf_token": token, "padding": "a" * limit})
    assert len(body) > limit
    response = form_client.post(
        form.path, data=body, content_type="application/x-www-form-urlencoded"
    )

    page = assert_safe_response(response)
    assert response.status_code == 413
    assert TOO_LARGE in page
    assert_nothing_happened(form_client, form, world, before, page)
