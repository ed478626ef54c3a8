"""Every coordinator/admin form answers hostile input with a 4xx, never a 500, and saves nothing.

The cases are generated, not listed: for every rule of the `admin` blueprint (and the two
password pages) that accepts POST, the test reads the form from the page that shows it (its
own page, or any page of the workspace whose form posts to it), then sends variants of what a
browser would send, with a valid CSRF token: every field empty, every field missing, unknown
extra fields, and field by field (one field of each shape: `timepoints-0-key` stands for every
row) values of the wrong kind for its input type: 10,000 characters, RTL marks, emoji and NUL,
numbers out of range, impossible dates and times, a field sent twice, a choice not offered.
The URL's ids are swapped, one at a time, for clinic B's objects and for ids beyond int64
(both 404). The import upload also gets hostile files and a tampered signed preview.

For each response: no 500 and no traceback; a 4xx leaves every saved row of the tables below
as it was (read on a connection of its own). A 2xx/3xx is input the form accepts: that is
allowed only for the (endpoint, variant) pairs in ACCEPTED, each with the reason it is valid.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from flask import Flask, got_request_exception
from flask.testing import FlaskClient
from itsdangerous import URLSafeTimedSerializer
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.routing import Rule
from werkzeug.test import encode_multipart

from proms.admin.enrollment import enroll
from proms.admin.models import Enrollment
from proms.admin.protocol_editing import save_edit, spec_of
from proms.auth import tokens
from proms.auth.models import Role, StaffUser
from proms.auth.services import grant
from proms.db import Base, db, utcnow
from proms.scheduling.models import Notification
from tests.helpers import World, csrf_token

TABLES = (
    "patient",
    "enrollment",
    "assessment",
    "notification",
    "protocol",
    "protocol_timepoint",
    "clinic",
    "staff_user",
    "clinic_membership",
    "treatment_session",
    "survey_response",
    "survey_answer",
    "password_token",
)
PASSWORD_PAGES = ("auth.set_password", "auth.change_password")
LEAK_MARKERS = ("Traceback", 'File "', "sqlalchemy.", "psycopg", "sqlite3.")
BEYOND_INT64 = str(2**63 + 1)
LONG = "x" * 10_000
UNICODE = "\u202eabc\u200f \U0001f600 \x00 Zo\u00eb \u0645\u0631\u062d\u0628\u0627"
NUMBERS = ("-1", "0", str(2**63), "1e400", "NaN")
DATES = ("2026-02-30", "0000-01-01", "9999-12-31")
TIMES = ("25:61",)
NOT_A_CHOICE = "not-one-of-the-choices"
TEXT_KINDS = {"text", "textarea", "email", "tel", "password", "search", "url", "hidden"}
CHOICE_KINDS = {"select", "radio", "checkbox", "submit"}

# Forms of a button alone (their CSRF token), not shown in the seeded state.
BUTTONS = {
    "admin.install_bundled_protocol": "shown while a clinic lacks the bundled protocol",
    "admin.opt_in": "shown once the patient has opted out",
    "admin.mark_message_sent": "shown for a failed or uncertain message",
    "admin.resend_message": "shown for a failed or uncertain message",
    "admin.send_message_now": "shown for an invitation held back while its questionnaire is open",
    "admin.reset_two_step": "shown once the staff member has set up two-step sign-in",
}
# Input that a form rightly accepts, by (endpoint, variant): why, and whether it may change rows.
ACCEPTED: dict[tuple[str, str], tuple[str, bool]] = {
    ("admin.move_version", "all-empty"): ("no enrollment chosen moves every active course", True),
    ("admin.move_version", "all-missing"): ("no enrollment chosen moves every active course", True),
    ("admin.edit_patient", "all-missing"): ("a field not sent keeps its saved value", False),
}


# Reading forms from a page ---------------------------------------------------------------------


@dataclass
class Group:
    """The controls of one name: its kind, the values offered, what a browser sends."""

    name: str
    kind: str
    choices: list[str] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)


@dataclass
class Form:
    action: str
    multipart: bool
    groups: dict[str, Group] = field(default_factory=dict)

    def add(self, name: str, kind: str, value: str, sent: bool) -> None:
        group = self.groups.setdefault(name, Group(name, kind))
        if kind in CHOICE_KINDS:
            group.choices.append(value)
        if sent:
            group.sent.append(value)


class FormParser(HTMLParser):
    """The forms of a page: each field's name, input type, choices and default."""

    def __init__(self, page_path: str) -> None:
        super().__init__()
        self.page_path = page_path
        self.forms: list[Form] = []
        self._select: tuple[str, list[str], list[str]] | None = None
        self._textarea: tuple[str, list[str]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            action = urlsplit(a.get("action") or self.page_path).path
            multipart = a.get("enctype") == "multipart/form-data"
            self.forms.append(Form(action, multipart))
        elif not self.forms or ("name" not in a and tag != "option"):
            return
        elif tag == "input":
            self._input(a)
        elif tag == "button" and a.get("type", "submit") == "submit":
            form = self.forms[-1]
            first = not any(g.kind == "submit" for g in form.groups.values())
            form.add(a["name"], "submit", a.get("value", ""), first)
        elif tag == "select":
            self._select = (a["name"], [], [])
        elif tag == "option" and self._select is not None:
            self._select[1].append(a.get("value", ""))
            if "selected" in a:
                self._select[2].append(a.get("value", ""))
        elif tag == "textarea":
            self._textarea = (a["name"], [])

    def _input(self, a: dict[str, str]) -> None:
        kind = a.get("type", "text")
        if kind in ("checkbox", "radio"):
            self.forms[-1].add(a["name"], kind, a.get("value", "on"), "checked" in a)
        elif kind == "submit":
            self.forms[-1].add(a["name"], kind, a.get("value", ""), False)
        else:
            self.forms[-1].add(a["name"], kind, a.get("value", ""), kind != "file")

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._textarea[1].append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "select" and self._select is not None:
            name, options, selected = self._select
            form = self.forms[-1]
            for value in options:
                form.add(name, "select", value, False)
            form.groups[name].sent = selected[:1] or options[:1]
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            self.forms[-1].add(self._textarea[0], "textarea", "".join(self._textarea[1]), True)
            self._textarea = None


def forms_on(client: FlaskClient, path: str) -> list[Form]:
    page = client.get(path)
    if page.status_code != 200:
        return []
    parser = FormParser(path)
    parser.feed(page.get_data(as_text=True))
    return parser.forms


# What the database holds -----------------------------------------------------------------------


def saved_rows() -> dict[str, dict[str, str]]:
    """Each table's rows, by a hash of the row (read on a connection of its own)."""
    rows: dict[str, dict[str, str]] = {}
    with db.engine.connect() as connection:
        for name in TABLES:
            table = Base.metadata.tables[name]
            found = connection.execute(sa.select(table).order_by(*table.primary_key.columns))
            texts = [repr(tuple(row)) for row in found]
            rows[name] = {hashlib.sha256(t.encode()).hexdigest(): t for t in texts}
    return rows


def changes(before: dict[str, dict[str, str]], after: dict[str, dict[str, str]]) -> list[str]:
    """The tables whose rows differ, each with one row as it was and as it is (shortened)."""
    found = []
    for name in TABLES:
        if before[name].keys() != after[name].keys():
            old = next((t for h, t in before[name].items() if h not in after[name]), "-")
            new = next((t for h, t in after[name].items() if h not in before[name]), "-")
            found.append(f"{name}: {old[:300]} => {new[:300]}")
    return found


# The variants ----------------------------------------------------------------------------------

Data = MultiDict[str, Any]


@dataclass
class Variant:
    name: str
    data: Data
    path: str
    expect_404: bool = False
    plausible: bool = False  # input a form may rightly accept (free text that looks odd)


def shape(name: str) -> str:
    """`timepoints-3-key` and `q12` have the shapes `timepoints-N-key` and `qN`."""
    return re.sub(r"\d+", "N", name)


# What a person types into a field the page leaves empty, by the field's shape: a form filled
# in, so that a wrong value in one field meets the checks behind the form's own.
TYPED = {
    "mrn": "Z9",
    "given_name": "Ann",
    "family_name": "Lee",
    "time_zone": "America/New_York",
    "anchor_on": (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=5)).isoformat(),
    "email": "new.person@example.org",
    "full_name": "New Person",
    "roles": "coordinator",
    "slug": "new-course",
    "name": "New course",
    "timepoints-N-key": "baseline",
    "timepoints-N-label": "Baseline",
    "timepoints-N-offset_days": "0",
    "new_password": "a new password 42",
    "confirm": "a new password 42",
    "reason": "Moved away",
}


def base_data(form: Form, token: str) -> Data:
    """What a browser sends for the form filled in: its defaults, typed text, first choices."""
    data: Data = MultiDict([("csrf_token", token)])
    for group in form.groups.values():
        sent = group.sent
        if group.name == "csrf_token":
            continue
        if not any(sent) and shape(group.name) in TYPED:
            sent = [TYPED[shape(group.name)]]
        elif not sent and group.kind == "radio":
            sent = group.choices[:1]
        for value in sent:
            data.add(group.name, value)
    return data


def with_value(data: Data, name: str, values: list[str]) -> Data:
    changed = data.copy()
    changed.setlist(name, values)
    return changed


def values_for(group: Group) -> dict[str, tuple[list[str], bool]]:
    """The wrong values for one field, by its input type, and whether a form may accept them."""
    first = (group.sent or group.choices or ["1"])[0]
    free_text = group.kind in ("text", "textarea")
    wrong: dict[str, tuple[list[str], bool]] = {}
    if group.kind in CHOICE_KINDS:
        # A lone checkbox is a yes/no field: any value it sends means "checked"; so does a
        # button's (its value is its label, unless the view reads it: then a 4xx).
        boolean = group.kind == "submit" or (group.kind == "checkbox" and len(group.choices) == 1)
        wrong["not-a-choice"] = ([NOT_A_CHOICE], boolean)
        wrong["int64-choice"] = ([str(2**63)], boolean)
    if group.kind in TEXT_KINDS | {"number"}:
        wrong["10k"] = ([LONG], False)
        wrong["unicode"] = ([UNICODE], False)
    if group.kind in TEXT_KINDS - {"password"} | {"number", "time"}:
        for n, value in enumerate(NUMBERS):
            small = group.kind == "number" and value in ("-1", "0")
            wrong[f"number{n}"] = ([value], free_text or small)
    if group.kind in ("date", "text"):
        wrong.update({f"date{n}": ([v], free_text) for n, v in enumerate(DATES)})
        wrong["10k"] = ([LONG], False)
    if group.kind in ("time", "text"):
        wrong.update({f"time{n}": ([v], free_text) for n, v in enumerate(TIMES)})
    if group.kind != "checkbox":
        # A field sent twice: forms read the first value (this form's own), and so may accept it.
        second = NOT_A_CHOICE if group.kind in CHOICE_KINDS else first + "1"
        wrong["twice"] = ([first, second], True)
    return wrong


def variants(form: Form, path: str, token: str) -> Iterator[Variant]:
    base = base_data(form, token)
    # A sub-form's own token (`day1-csrf_token`) is not checked once the request's token was.
    fields = [g for g in form.groups.values() if not g.name.endswith("csrf_token")]
    fields = [g for g in fields if g.kind != "file"]
    everything = [g.name for g in fields]
    buttons_only = all(g.kind == "submit" for g in fields)  # these are the form itself
    yield Variant("all-empty", _setall(base, everything, ""), path, plausible=buttons_only)
    missing = MultiDict([("csrf_token", token)])
    yield Variant("all-missing", missing, path, plausible=buttons_only)
    unicode = _setall(base, everything, UNICODE)
    yield Variant("all-unicode", unicode, path, plausible=buttons_only)
    extra = base.copy()
    extra.add("unknown_field", "1")
    extra.add("timepoints-99-key", "x")
    yield Variant("extra-fields", extra, path, plausible=True)
    seen: set[str] = set()
    for group in fields:
        if shape(group.name) in seen:
            continue
        seen.add(shape(group.name))
        for label, (values, plausible) in values_for(group).items():
            data = with_value(base, group.name, values)
            yield Variant(f"{group.name}={label}", data, path, plausible=plausible)


def _setall(base: Data, names: list[str], value: str) -> Data:
    data = base.copy()
    for name in names:
        data.setlist(name, [value])
    return data


# The world the forms act on --------------------------------------------------------------------


@dataclass
class Seeds:
    """URL values per argument: clinic A's object, and clinic B's (None: no such thing)."""

    args: dict[str, tuple[Any, Any]]
    by_endpoint: dict[tuple[str, str], Any]

    def url(self, app: Flask, rule: Rule, **swap: Any) -> str:
        missing = set(rule.arguments) - set(self.args)
        assert not missing, f"{rule.endpoint}: add a seed for the URL argument(s) {missing}"
        values = {
            a: self.by_endpoint.get((rule.endpoint, a), self.args[a][0]) for a in rule.arguments
        }
        values.update(swap)
        with app.test_request_context():
            from flask import url_for

            return url_for(rule.endpoint, **values)


def _enrolled(world: World, clinic: str) -> Enrollment:
    patient = (world.patients_a if clinic == "a" else world.patients_b)[0]
    protocol = world.protocol_a if clinic == "a" else world.protocol_b
    anchor = utcnow().date() + dt.timedelta(days=4)
    return enroll(db.session, patient, protocol, anchor, now=utcnow())


def _first_message(enrollment: Enrollment) -> int:
    return min(n.id for a in enrollment.assessments for n in _messages_of(a.id))


def _messages_of(assessment_id: int) -> list[Notification]:
    query = sa.select(Notification).where(Notification.assessment_id == assessment_id)
    return list(db.session.scalars(query))


def _seed(world: World) -> Seeds:
    admin = world.user("a", Role.ADMIN)
    grant(db.session, admin, world.clinic_a, Role.COORDINATOR)
    enrollment_a, enrollment_b = _enrolled(world, "a"), _enrolled(world, "b")
    first_a = min(enrollment_a.assessments, key=lambda a: a.opens_at)
    first_b = min(enrollment_b.assessments, key=lambda a: a.opens_at)
    # A second version, so that "move courses to the latest version" has somewhere to go.
    spec = spec_of(world.protocol_a)
    latest = save_edit(db.session, world.protocol_a, replace(spec, name=spec.name + " 2"), admin)
    raw = tokens.mint(
        db.session, world.user("a", Role.CLINICIAN), purpose=tokens.Purpose.RESET, now=utcnow()
    )
    db.session.commit()
    return Seeds(
        args={
            "clinic_id": (world.clinic_a.id, world.clinic_b.id),
            "user_id": (world.user("a", Role.CLINICIAN).id, world.user("b", Role.CLINICIAN).id),
            "patient_id": (world.patients_a[0].id, world.patients_b[0].id),
            "enrollment_id": (enrollment_a.id, enrollment_b.id),
            "assessment_id": (first_a.id, first_b.id),
            "protocol_id": (world.protocol_a.id, world.protocol_b.id),
            "day": (1, 9999),
            "token": (raw, "x" * 43),
            "notification_id": (_first_message(enrollment_a), _first_message(enrollment_b)),
        },
        by_endpoint={("admin.edit_protocol", "protocol_id"): latest.id},
    )


# The endpoints ---------------------------------------------------------------------------------


def _post_rules(app: Flask) -> list[Rule]:
    return sorted(
        (
            rule
            for rule in app.url_map.iter_rules()
            if (rule.endpoint.startswith("admin.") or rule.endpoint in PASSWORD_PAGES)
            and "POST" in (rule.methods or ())
        ),
        key=lambda rule: rule.endpoint,
    )


def _endpoints() -> list[str]:
    from proms import create_app
    from tests.helpers import app_config

    return [rule.endpoint for rule in _post_rules(create_app(app_config("sqlite://")))]


def _form_pages(app: Flask, seeds: Seeds) -> Iterator[str]:
    """Every page of the workspace that may show a form, for the routes that only take POST."""
    for rule in app.url_map.iter_rules():
        if "GET" not in (rule.methods or ()):
            continue
        if rule.endpoint.startswith("admin.") or rule.endpoint == "care.patient":
            yield seeds.url(app, rule)


def _forms_for(client: FlaskClient, app: Flask, rule: Rule, seeds: Seeds, path: str) -> list[Form]:
    """The distinct forms that post to `path`: on its own page, else on any other page."""
    pages = [path] if "GET" in (rule.methods or ()) else []
    found: dict[frozenset[str], Form] = {}
    for page in [*pages, *_form_pages(app, seeds)]:
        for form in forms_on(client, page):
            if form.action == path:
                found.setdefault(frozenset(shape(n) for n in form.groups), form)
        if found:
            break
    if not found and rule.endpoint in BUTTONS:
        return [Form(path, False, {"csrf_token": Group("csrf_token", "hidden")})]
    assert found, f"no page shows a form that posts to {path} ({rule.endpoint})"
    return list(found.values())


def _url_variants(app: Flask, rule: Rule, seeds: Seeds, base: Data) -> Iterator[Variant]:
    """Each URL argument in turn: clinic B's object, then a value beyond int64 (both 404)."""
    for arg in rule.arguments:
        foreign = seeds.args[arg][1]
        yield Variant(f"{arg}=clinic-b", base, seeds.url(app, rule, **{arg: foreign}), True)
        if arg == "token":
            yield Variant("token=10k", base, seeds.url(app, rule, token=LONG), True)
            continue
        marker = 987_654_321  # a valid id, replaced in the URL by one beyond int64
        path = seeds.url(app, rule, **{arg: marker}).replace(str(marker), BEYOND_INT64)
        yield Variant(f"{arg}=beyond-int64", base, path, True)


# Files for the import ---------------------------------------------------------------------------

PROTOCOL = "ketamine-infusion-course"
HEADER = "mrn,given_name,family_name,birth_date,email,phone,timezone,language,protocol,anchor_date"


def _import_files() -> dict[str, bytes]:
    row = f"Z1,Ann,Lee,1970-01-01,ann@example.org,,,,{PROTOCOL},2035-01-08"
    return {
        "empty": b"",
        "binary": bytes(range(256)) * 64,
        "utf16": f"{HEADER}\n{row}\n".encode("utf-16"),
        "3mb": (f"{HEADER}\n" + f"{row}\n" * 40_000).encode()[: 3 * 1024 * 1024],
        "10000-columns": (",".join(f"c{n}" for n in range(10_000)) + "\n").encode(),
        "header-only": f"{HEADER}\n".encode(),
        "quoted-newline": f'{HEADER}\nZ2,"An\nn",Lee,,,,,,{PROTOCOL},2035-01-08\n'.encode(),
        "nul": f"{HEADER}\nZ3,A\x00n,Lee,,,,,,{PROTOCOL},2035-01-08\n".encode(),
        "far-dates": f"{HEADER}\nZ4,Ann,Lee,,,,,,{PROTOCOL},9999-12-31\n".encode(),
    }


def _import_variants(app: Flask, token: str, world: World, admin: StaffUser) -> Iterator[Variant]:
    for name, content in _import_files().items():
        upload = FileStorage(io.BytesIO(content), f"{name}.csv", content_type="text/csv")
        data: Data = MultiDict([("csrf_token", token), ("file", upload)])
        yield Variant(f"file={name}", data, "/import")
    signer = URLSafeTimedSerializer(app.secret_key or "", salt="import")
    good = signer.dumps({"clinic": world.clinic_a.id, "user": admin.id, "csv": HEADER + "\n"})
    payloads = {
        "tampered": good[:10] + ("A" if good[10] != "A" else "B") + good[11:],
        "clinic-b": signer.dumps({"clinic": world.clinic_b.id, "user": admin.id, "csv": ""}),
        "not-a-dict": signer.dumps([1, 2]),
        "10k": LONG,
    }
    for name, payload in payloads.items():
        data = MultiDict([("csrf_token", token), ("payload", payload)])
        yield Variant(f"payload={name}", data, "/import")


# The test ---------------------------------------------------------------------------------------


@pytest.fixture
def errors(app: Flask) -> Iterator[list[BaseException]]:
    """Unexpected exceptions become the 500 page (as in production), and are kept for the report."""
    app.config["PROPAGATE_EXCEPTIONS"] = False
    seen: list[BaseException] = []

    def keep(sender: Flask, exception: BaseException, **extra: Any) -> None:
        seen.append(exception)

    got_request_exception.connect(keep, app)
    yield seen
    got_request_exception.disconnect(keep, app)


PAYLOAD_RE = re.compile(r'name="payload" type="hidden" value="([^"]+)"')


@dataclass
class Run:
    """One endpoint's requests, and what went wrong."""

    endpoint: str
    client: FlaskClient
    token: str
    errors: list[BaseException]
    multipart: bool
    problems: list[str] = field(default_factory=list)
    count: int = 0

    def send(self, case: Variant) -> tuple[int, str]:
        case.data.setlist("csrf_token", [self.token])
        before = saved_rows()
        del self.errors[:]
        if self.multipart:  # encoded here, in memory: the client would spool 3 MB to a file
            boundary, encoded = encode_multipart(case.data)
            kind = f"multipart/form-data; boundary={boundary}"
            response = self.client.post(case.path, data=encoded, content_type=kind)
        else:
            response = self.client.post(case.path, data=case.data)
        self.count += 1
        body = response.get_data(as_text=True)
        self.check(case, response.status_code, body, changes(before, saved_rows()))
        return response.status_code, body

    def check(self, case: Variant, status: int, body: str, changed: list[str]) -> None:
        where = f"{case.name} -> {status}"
        if status >= 500 or self.errors:
            self.problems.append(f"{where}: {self.errors[0]!r:.300}" if self.errors else where)
        if leaked := [m for m in LEAK_MARKERS if m in body]:
            self.problems.append(f"{where}: the page shows {leaked}")
        if case.expect_404 and status != 404:
            self.problems.append(f"{where}: expected 404")
        if 400 <= status < 500 and changed:
            self.problems.append(f"{where}: changed {changed}")
        reason, may_change = ACCEPTED.get((self.endpoint, case.name), ("", case.plausible))
        if status < 400 and not (reason or case.plausible):
            self.problems.append(f"{where}: accepted (changed {changed or 'nothing'})")
        elif status < 400 and changed and not may_change:
            self.problems.append(f"{where}: accepted, and changed {changed}")


def _signed_in(
    client: FlaskClient, staff_client: Callable[[StaffUser], FlaskClient], admin: StaffUser
) -> tuple[FlaskClient, str]:
    """The client and a CSRF token, signing in again if a success signed the admin out."""
    if client.get("/password").status_code != 200:
        client = staff_client(admin)
    return client, csrf_token(client, "/password")


@pytest.mark.parametrize("endpoint", _endpoints())
def test_hostile_input_is_a_4xx_that_changes_nothing(
    endpoint: str,
    app: Flask,
    world: World,
    staff_client: Callable[[StaffUser], FlaskClient],
    errors: list[BaseException],
) -> None:
    app.config["LOGIN_RATE_LIMIT"] = "10000 per minute"  # the limit is tests/security's
    seeds = _seed(world)
    admin = world.user("a", Role.ADMIN)
    rule = next(r for r in _post_rules(app) if r.endpoint == endpoint)
    client = staff_client(admin)
    path = seeds.url(app, rule)
    forms = _forms_for(client, app, rule, seeds, path)
    token = csrf_token(client, "/password")
    cases = [v for form in forms for v in variants(form, path, token)]
    cases += _url_variants(app, rule, seeds, base_data(forms[0], token))
    if endpoint == "admin.import_enrollments":
        cases += _import_variants(app, token, world, admin)
    # Input that may rightly be saved goes last, so the rest meets the state as seeded.
    cases.sort(key=lambda case: case.plausible or (endpoint, case.name) in ACCEPTED)
    run = Run(endpoint, client, token, errors, forms[0].multipart)
    for case in cases:
        status, body = run.send(case)
        if status < 400:
            run.client, run.token = _signed_in(run.client, staff_client, admin)
        if (payload := PAYLOAD_RE.search(body)) and case.name.startswith("file="):
            confirm = MultiDict([("payload", payload.group(1))])
            run.send(Variant(f"{case.name}+confirm", confirm, case.path, plausible=case.plausible))
    assert not run.problems, f"{endpoint}, {run.count} requests:\n" + "\n".join(run.problems)
