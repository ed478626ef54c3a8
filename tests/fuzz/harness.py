"""The fuzzer's machinery: reading forms off pages, building requests, fingerprinting rows.

A form's fields are read from the page a person would fill it in on (every input, select,
textarea and named button, with the values the page gives them), so a field added to a form is
fuzzed without editing these tests. A generated request starts from the page's own values and
then, field by field, keeps the value, leaves the field out, repeats it, or replaces it with a
generated one (tests/fuzz/values.py); it goes as a urlencoded body (percent-encoded or raw
bytes), as multipart, as JSON, or as garbage, with a valid CSRF token, a wrong one or none.

The database fingerprint is every row of every table, hashed per table, apart from what an
invalid request may change by design: the audit log (every refusal is recorded), failed sign-in
counts, the identity check's failed tries, the cohort report's cache, and "last used/seen"
times.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote_from_bytes, urlsplit

import sqlalchemy as sa
from flask.testing import FlaskClient
from hypothesis import strategies as st
from werkzeug.test import TestResponse

from proms.db import Base, db
from tests.fuzz.values import Value, field_value, text_value

# Rows an invalid request changes by design (see the module docstring).
IGNORED_TABLES = {"audit_event", "login_throttle", "cohort_snapshot"}
IGNORED_COLUMNS = {
    "last_used_at",
    "last_seen_at",
    "last_login_at",
    "failed_identity_count",
    "identity_locked_until",
}


# Forms on pages --------------------------------------------------------------------------------


@dataclass
class PageField:
    name: str
    kind: str  # input type, "select", "textarea" or "button"
    values: list[str] = field(default_factory=list)  # the page's value(s) or the choices


@dataclass
class PageForm:
    action: str
    method: str
    enctype: str
    fields: list[PageField] = field(default_factory=list)

    def names(self) -> set[str]:
        return {f.name for f in self.fields}

    def page_names(self) -> set[str]:
        """The names the page itself gives (not those added from the form's class)."""
        return {f.name for f in self.fields if f.kind != "from class"}

    def token_field(self) -> str:
        """The CSRF field's name: csrf_token, or day1-csrf_token in a form with a prefix."""
        for f in self.fields:
            if f.name.endswith("csrf_token"):
                return f.name
        return "csrf_token"

    def token(self) -> str | None:
        for f in self.fields:
            if f.name.endswith("csrf_token") and f.values:
                return f.values[0]
        return None


class _FormParser(HTMLParser):
    def __init__(self, page_url: str) -> None:
        super().__init__(convert_charrefs=True)
        self.page_url = page_url
        self.forms: list[PageForm] = []
        self._form: PageForm | None = None
        self._select: PageField | None = None
        self._textarea: PageField | None = None

    def _field(self, name: str, kind: str) -> PageField:
        assert self._form is not None
        for existing in self._form.fields:
            if existing.name == name:
                return existing
        created = PageField(name, kind)
        self._form.fields.append(created)
        return created

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            action = a.get("action") or urlsplit(self.page_url).path
            self._form = PageForm(
                action=action,
                method=(a.get("method") or "get").upper(),
                enctype=a.get("enctype") or "application/x-www-form-urlencoded",
            )
            self.forms.append(self._form)
            return
        if self._form is None or not a.get("name"):
            return
        name = a["name"]
        if tag == "input":
            kind = a.get("type", "text").lower()
            target = self._field(name, kind)
            if kind in ("checkbox", "radio"):
                target.values.append(a.get("value", "on"))
            elif "value" in a and not target.values:
                target.values.append(a["value"])
        elif tag == "button":
            self._field(name, "button").values.append(a.get("value", ""))
        elif tag == "select":
            self._select = self._field(name, "select")
        elif tag == "textarea":
            self._textarea = self._field(name, "textarea")
            self._textarea.values.append("")
        elif tag == "option" and self._select is not None:
            self._select.values.append(a.get("value", ""))

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._textarea.values[-1] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None


def page_forms(client: FlaskClient, url: str) -> list[PageForm]:
    response = client.get(url)
    # A 410 page has forms too; /readyz answers 503 by design while the schema is not at head.
    assert response.status_code < 500 or url in DESIGNED_5XX, (url, response.status_code)
    parser = _FormParser(url)
    parser.feed(response.get_data(as_text=True))
    return parser.forms


def form_for(client: FlaskClient, page: str, action: str, method: str = "POST") -> PageForm:
    """The form on `page` that sends to `action` (its path, query ignored)."""
    forms = page_forms(client, page)
    for form in forms:
        if urlsplit(form.action).path == action and form.method == method:
            return form
    found = sorted({(f.method, f.action) for f in forms})
    raise AssertionError(f"no {method} form to {action} on {page}; found {found}")


# Generated requests ----------------------------------------------------------------------------

CSRF_MODES = ("valid",) * 6 + ("missing", "wrong")
TAINTS = ("\x00", "\x1b", "\u202e", "\ufffe", "\x7f", "\r\n")
# PROMS_FUZZ_WITHOUT=json (say) leaves an encoding out: for hunting other bugs past a known one.
ENCODINGS = tuple(
    encoding
    for encoding in ("percent",) * 4 + ("raw", "multipart", "multipart", "json", "garbage")
    if encoding not in os.environ.get("PROMS_FUZZ_WITHOUT", "").split(",")
)


@dataclass
class Fuzzed:
    """One generated request."""

    method: str
    path: str
    pairs: list[tuple[str, Value]]  # in order, repeats allowed
    csrf: str  # valid, missing or wrong
    encoding: str
    body: bytes = b""
    token_field: str = "csrf_token"

    def describe(self) -> str:
        shown = [(k, v if len(v) < 200 else f"{v[:50]!r}... ({len(v)})") for k, v in self.pairs]
        return f"{self.method} {self.path} csrf={self.csrf} encoding={self.encoding} {shown}"


def _field_choice(data: st.DataObject, page_field: PageField, extra_values: Sequence[str]) -> Any:
    own = [v for v in page_field.values if v is not None]
    choice = data.draw(
        st.sampled_from(["page", "page", "fuzz", "fuzz", "tainted", "missing", "repeat"]),
        label=f"{page_field.name}: how",
    )
    if choice == "missing":
        return []
    if choice == "tainted":
        # A value the form would take, with one character no form should store: it gets as far
        # as the database if nothing refuses it first (PostgreSQL refuses NUL with an error).
        base = data.draw(st.sampled_from([*own, *extra_values, "x"]), label=page_field.name)
        at = data.draw(st.integers(0, len(base)), label="at")
        bad = data.draw(st.sampled_from(TAINTS), label="taint")
        return [base[:at] + bad + base[at:]]
    if choice == "page" and (own or extra_values):
        return [data.draw(st.sampled_from([*own, *extra_values]), label=page_field.name)]
    if choice == "repeat":
        return data.draw(st.lists(field_value, min_size=2, max_size=4), label=page_field.name)
    return [data.draw(field_value, label=page_field.name)]


def draw_request(
    data: st.DataObject,
    form: PageForm,
    *,
    path: str | None = None,
    extra_values: Mapping[str, Sequence[str]] | None = None,
    extra_fields: Sequence[str] = (),
    method: str | None = None,
) -> Fuzzed:
    """A request to `form` with generated values; its CSRF token is added when it is sent."""
    pairs: list[tuple[str, Value]] = []
    fields = [f for f in form.fields if f.name != form.token_field()]
    fields += [PageField(name, "text") for name in extra_fields]
    for page_field in fields:
        extra = (extra_values or {}).get(page_field.name, ())
        for value in _field_choice(data, page_field, extra):
            pairs.append((page_field.name, value))
    # Fields no page has: names that are text too.
    for name in data.draw(st.lists(text_value, max_size=2), label="unknown fields"):
        pairs.append((name, data.draw(field_value, label="unknown value")))
    if pairs and data.draw(st.booleans(), label="shuffle"):
        pairs = data.draw(st.permutations(pairs), label="order")
    encoding = data.draw(st.sampled_from(ENCODINGS), label="encoding")
    body = data.draw(st.binary(max_size=200), label="garbage") if encoding == "garbage" else b""
    return Fuzzed(
        method=method or form.method,
        path=path or form.action,
        pairs=pairs,
        csrf=data.draw(st.sampled_from(CSRF_MODES), label="csrf"),
        encoding=encoding,
        body=body,
        token_field=form.token_field(),
    )


def _as_bytes(value: Value) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


def send(
    client: FlaskClient,
    request: Fuzzed,
    token: str | None,
    headers: Mapping[str, str] | None = None,
) -> TestResponse:
    """Send the request byte for byte, its CSRF token in the body and, when the body cannot
    carry it readably, in the X-CSRFToken header (so the request reaches the form)."""
    pairs = list(request.pairs)
    sent_headers = dict(headers or {})
    if request.csrf == "wrong":
        token = "Im" + "x" * 40 + ".fuzz"
    if request.csrf != "missing" and token is not None:
        pairs.append((request.token_field, token))
        if request.encoding in ("raw", "json", "garbage"):
            sent_headers["X-CSRFToken"] = token
    path, _, query = request.path.partition("?")
    if request.method == "GET":
        encoded = "&".join(
            quote_from_bytes(_as_bytes(k)) + "=" + quote_from_bytes(_as_bytes(v)) for k, v in pairs
        )
        url = path + "?" + "&".join(p for p in (query, encoded) if p)
        return client.get(url, headers=sent_headers)
    # Werkzeug's test client spools a multipart body over 500 KB to a temporary file that it
    # never closes (a ResourceWarning, not the app's): such bodies go urlencoded instead.
    size = sum(len(_as_bytes(k)) + len(_as_bytes(v)) for k, v in pairs)
    if request.encoding == "multipart" and size < 400_000:
        data: dict[str, Any] = {}
        for key, value in pairs:
            data.setdefault(_as_bytes(key).decode("utf-8", "replace"), []).append(
                _as_bytes(value).decode("utf-8", "replace")
            )
        return client.post(request.path, data=data, headers=sent_headers)
    if request.encoding == "json":
        document: dict[str, Any] = {}
        for key, value in pairs:
            text = _as_bytes(value).decode("utf-8", "replace")
            try:
                document[str(key)] = json.loads(text)
            except (ValueError, RecursionError):  # JSON nested past Python's stack: as text
                document[str(key)] = text
        return client.post(
            request.path,
            data=json.dumps(document),
            content_type="application/json",
            headers=sent_headers,
        )
    if request.encoding == "garbage":
        body = request.body
    elif request.encoding == "raw":
        body = b"&".join(_as_bytes(k) + b"=" + _as_bytes(v) for k, v in pairs)
    else:
        body = b"&".join(
            quote_from_bytes(_as_bytes(k)).encode() + b"=" + quote_from_bytes(_as_bytes(v)).encode()
            for k, v in pairs
        )
    return client.post(
        request.path,
        data=body,
        content_type="application/x-www-form-urlencoded",
        headers=sent_headers,
    )


# The saved rows --------------------------------------------------------------------------------


def fingerprint() -> dict[str, tuple[int, str]]:
    """Per table: (row count, hash of every row), as committed (bookkeeping left out)."""
    result: dict[str, tuple[int, str]] = {}
    with db.engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            if table.name in IGNORED_TABLES:
                continue
            columns = [c for c in table.columns if c.name not in IGNORED_COLUMNS]
            order = list(table.primary_key.columns) or columns
            rows = connection.execute(sa.select(*columns).order_by(*order)).all()
            digest = hashlib.sha256()
            for row in rows:
                digest.update(repr(tuple(row)).encode())
            result[table.name] = (len(rows), digest.hexdigest()[:16])
    return result


def changed_tables(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    return sorted(name for name in after if before.get(name) != after[name])


# Readiness answers 503 while the database is behind the code (tests build it with create_all,
# so it has no migration stamp): its answer, not a failure.
DESIGNED_5XX = {"/readyz": 503}
LEAK_MARKERS = ("Traceback (most recent call last)", "sqlalchemy.exc", "psycopg.errors")
TOKEN_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def check_response(response: TestResponse, request: Fuzzed) -> None:
    """Never a server error (but a designed 503), never a traceback on the page."""
    designed = DESIGNED_5XX.get(request.path.partition("?")[0])
    assert response.status_code < 500 or response.status_code == designed, (
        response.status_code,
        request.describe(),
    )
    body = response.get_data()
    for marker in LEAK_MARKERS:
        assert marker.encode() not in body, (marker, request.describe())
