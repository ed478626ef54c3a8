"""The fuzzer covers every form: a new route that takes a POST, or a new WTForms form whose
fields no fuzzed page carries, fails here with its name until tests/fuzz/targets.py knows it.
"""

from __future__ import annotations

from flask import Flask

from tests.fuzz.formclasses import classes_of, field_names, form_classes, query_forms
from tests.fuzz.harness import PageForm, page_forms
from tests.fuzz.targets import (
    OWN_TESTS,
    TARGETS,
    WEBHOOKS,
    admin,
    build_url,
    survey_checked,
)
from tests.fuzz.test_queries import get_routes
from tests.fuzz.world import FuzzWorld

# The import's upload and confirmation: tests/fuzz/test_import.py posts them itself.
OWN_TEST_FORMS = {"UploadForm", "ConfirmForm"}


def test_every_route_that_takes_a_post_is_fuzzed(app: Flask) -> None:
    posted = {rule.endpoint for rule in app.url_map.iter_rules() if "POST" in (rule.methods or ())}
    fuzzed = {t.endpoint for t in TARGETS} | WEBHOOKS | OWN_TESTS
    assert not posted - fuzzed, f"add these to tests/fuzz/targets.py: {sorted(posted - fuzzed)}"
    assert not fuzzed - posted, f"no longer routes: {sorted(fuzzed - posted)}"


def test_every_form_class_is_fuzzed_through_a_page(app: Flask, fuzz_world: FuzzWorld) -> None:
    """Each form class is what some fuzzed page's form is (tests/fuzz/formclasses.py), a filter
    read from the query string (its fields are query keys in tests/fuzz/test_queries.py), or
    one without fields (a button and its CSRF token: its route is checked above)."""
    forms: list[PageForm] = []
    for target in TARGETS:
        client = target.client(app, fuzz_world)
        forms.append(target.form(app, client, fuzz_world))
    pages = {"staff": admin(app, fuzz_world), "patient": survey_checked(app, fuzz_world)}
    for endpoint in get_routes(app):
        try:
            url = build_url(app, endpoint, {**fuzz_world.url_values(), "token": "x"})
        except AssertionError:
            continue
        client = pages["patient"] if endpoint.startswith("surveys.") else pages["staff"]
        forms.extend(page_forms(client, url))
    fuzzed = {cls for form in forms for cls in classes_of(form.page_names())}
    missing = [
        f"{cls.__module__}.{cls.__name__} {sorted(field_names(cls))}"
        for cls in form_classes()
        if field_names(cls)
        and cls not in fuzzed
        and cls.__name__ not in OWN_TEST_FORMS | query_forms()
    ]
    assert not missing, f"forms no fuzzed page carries: {missing}"
