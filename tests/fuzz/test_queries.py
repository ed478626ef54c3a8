"""Every page, fuzzed through its query string and its URL's text arguments: never a server
error, and a GET never changes anything saved.

The pages come from the URL map (every GET route but static files); the query keys from the
GET forms on each page (filters, pagers) plus every `request.args.get("...")` in proms/, plus
arbitrary ones. A URL argument that is text (a link's token) is sometimes replaced by arbitrary
text; numeric arguments are the routes' converters' business (anything else is a 404).
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given, note
from hypothesis import strategies as st

from tests.fuzz.formclasses import hidden_fields, query_field_names
from tests.fuzz.harness import (
    Fuzzed,
    PageField,
    PageForm,
    changed_tables,
    check_response,
    draw_request,
    fingerprint,
    page_forms,
    send,
)
from tests.fuzz.settings import scaled
from tests.fuzz.targets import admin, anonymous, build_url, survey_checked
from tests.fuzz.values import text_value
from tests.fuzz.world import FuzzWorld

PROMS = Path(__file__).resolve().parents[2] / "proms"
ARGS_IN_SOURCE = re.compile(r"request\.args\.get\(\s*\"([^\"]+)\"")
ANONYMOUS_ENDPOINTS = {"auth.login", "auth.set_password", "health.healthz"}


def query_keys_in_source() -> set[str]:
    """Every query key a view reads by name."""
    keys: set[str] = set()
    for path in PROMS.rglob("*.py"):
        keys.update(ARGS_IN_SOURCE.findall(path.read_text(encoding="utf-8")))
    return keys


def test_the_source_scan_finds_the_query_keys() -> None:
    """The scan above still matches how views read the query string."""
    assert {"next", "from", "part", "unsaved", "filter"} <= query_keys_in_source()


def get_routes(app: Flask) -> list[str]:
    return sorted(
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if "GET" in (rule.methods or ()) and rule.endpoint != "static"
    )


def test_every_page_takes_any_query_without_failing_or_changing_anything(
    app: Flask, fuzz_world: FuzzWorld
) -> None:
    app.config["PROPAGATE_EXCEPTIONS"] = True
    clients: dict[str, FlaskClient] = {
        "staff": admin(app, fuzz_world),
        "patient": survey_checked(app, fuzz_world),
        "anonymous": anonymous(app, fuzz_world),
    }
    values = {
        **fuzz_world.url_values(),
        "token": fuzz_world.survey_token,
    }
    tokens = {
        "auth.set_password": fuzz_world.password_token,
        "surveys.unsubscribe": fuzz_world.unsubscribe_token,
    }
    pages: dict[str, tuple[str, str, PageForm]] = {}
    source_keys = sorted(query_keys_in_source())
    for endpoint in get_routes(app):
        who = (
            "anonymous"
            if endpoint in ANONYMOUS_ENDPOINTS
            else "patient"
            if endpoint.startswith("surveys.")
            else "staff"
        )
        url = build_url(app, endpoint, {**values, "token": tokens.get(endpoint, values["token"])})
        names = set(source_keys) | query_field_names()
        for form in page_forms(clients[who], url):
            if form.method == "GET":
                names |= form.names() | hidden_fields(form.names())
        fields = [PageField(name, "text") for name in sorted(names)]
        pages[endpoint] = (who, url, PageForm(url, "GET", "", fields))
    saved = {"rows": fingerprint()}

    @scaled(len(pages) / 8)  # about one query per page per default example count
    @given(data=st.data())
    def visit(data: st.DataObject) -> None:
        endpoint = data.draw(st.sampled_from(sorted(pages)), label="page")
        who, url, form = pages[endpoint]
        request: Fuzzed = draw_request(data, form, method="GET")
        if "token" in app.url_map._rules_by_endpoint[endpoint][0].arguments and data.draw(
            st.booleans(), label="fuzz the token"
        ):
            token = data.draw(text_value, label="token")
            prefix = url.rsplit("/", 1)[0]
            request.path = prefix + "/" + quote(token.encode("utf-8", "surrogatepass"), safe="")
        request.pairs = [(k, v) for k, v in request.pairs if k != "csrf_token"]
        note(f"{who}: {request.describe()}")
        response = send(clients[who], request, None)
        check_response(response, request)
        after = fingerprint()
        changed = changed_tables(saved["rows"], after)
        assert not changed, f"GET {endpoint} changed {changed}: {request.describe()}"

    visit()


@pytest.mark.parametrize("path", ["/s/q/0", "/s/q/99999999999999999999", "/s/review/0"])
def test_numbers_out_of_range_in_survey_urls(app: Flask, fuzz_world: FuzzWorld, path: str) -> None:
    """Integer URL arguments past what a page has: a redirect or a 404, not a failure."""
    response = survey_checked(app, fuzz_world).get(path)
    assert response.status_code in (303, 404), response.status_code
