"""Every form, fuzzed: never a server error, and nothing saved changes but through a request the
view accepted.

Each form (tests/fuzz/targets.py) gets its own world and browser, reads its fields off its page,
and receives generated requests (tests/fuzz/harness.py, tests/fuzz/values.py). After each one the
saved rows are fingerprinted: unless the view answered with one of the target's "accepted"
statuses (its redirect after a save), they must be what they were. A request without its CSRF
token, or with a wrong one, is refused with a 4xx and changes nothing, whatever else it carries.
"""

from __future__ import annotations

import pytest
from flask import Flask
from hypothesis import given, note
from hypothesis import strategies as st

from tests.fuzz.harness import (
    changed_tables,
    check_response,
    draw_request,
    fingerprint,
    send,
)
from tests.fuzz.settings import FUZZ
from tests.fuzz.targets import TARGETS, Target
from tests.fuzz.world import FuzzWorld


@pytest.mark.parametrize("target", TARGETS, ids=[t.endpoint for t in TARGETS])
def test_a_generated_post_never_fails_and_changes_nothing_unless_accepted(
    app: Flask, fuzz_world: FuzzWorld, target: Target
) -> None:
    app.config["PROPAGATE_EXCEPTIONS"] = True  # an exception fails the example with its traceback
    client = target.client(app, fuzz_world)
    form = target.form(app, client, fuzz_world)
    path = target.path(app, fuzz_world)
    saved = {"rows": fingerprint()}

    @FUZZ
    @given(data=st.data())
    def post(data: st.DataObject) -> None:
        request = draw_request(data, form, path=path, extra_values=target.extra_values)
        note(request.describe())
        response = send(client, request, form.token())
        check_response(response, request)
        after = fingerprint()
        if request.csrf != "valid":
            assert 400 <= response.status_code < 500, (response.status_code, request.describe())
        if request.csrf != "valid" or response.status_code not in target.accepted:
            changed = changed_tables(saved["rows"], after)
            assert not changed, f"{response.status_code} changed {changed}: {request.describe()}"
        saved["rows"] = after

    post()
