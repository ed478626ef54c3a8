"""One code sent by several browsers at the same moment signs in one of them, on SQLite and
PostgreSQL alike (the last time step used moves by a compare-and-set); so does a recovery code.

A real threaded server, every SQL statement slowed a little so the requests interleave.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

import pytest
from flask import Flask

from proms.auth import mfa
from proms.auth.models import Role
from proms.db import db
from tests.helpers import PASSWORD, World, enrol_if_required, next_code
from tests.live import Browser, Server, at_once, serve

ADMIN = "admin@a.example.org"
BROWSERS = 3


@pytest.fixture
def server(make_app: Callable[..., Flask]) -> Iterator[Server]:
    app = make_app(SESSION_COOKIE_SECURE=False, LOGIN_RATE_LIMIT="10000 per minute")
    with serve(app) as live, app.app_context():
        yield live


def waiting_for_a_code(server: Server) -> list[Browser]:
    browsers = []
    for _ in range(BROWSERS):
        browser = server.browser()
        browser.get("/login")
        reply = browser.post("/login", {"email": ADMIN, "password": PASSWORD})
        assert reply.location == "/login/code"
        browser.get("/login/code")
        browsers.append(browser)
    return browsers


def test_a_code_sent_at_once_signs_in_once(server: Server, world: World) -> None:
    enrol_if_required(ADMIN)
    browsers = waiting_for_a_code(server)
    code = next_code(ADMIN)
    with server.slow_database():
        replies = at_once(*(partial(b.post, "/login/code", {"code": code}) for b in browsers))
    assert sorted(reply.status for reply in replies) == [302] + [401] * (BROWSERS - 1)
    signed_in = [b.get("/patients").status for b in browsers]
    assert sorted(signed_in) == [200] + [302] * (BROWSERS - 1)


def test_a_recovery_code_sent_at_once_signs_in_once(server: Server, world: World) -> None:
    enrol_if_required(ADMIN)
    user = world.user("a", Role.ADMIN)
    codes = mfa.new_recovery_codes(db.session, user, now=user.created_at)
    db.session.commit()
    browsers = waiting_for_a_code(server)
    with server.slow_database():
        replies = at_once(*(partial(b.post, "/login/code", {"code": codes[0]}) for b in browsers))
    assert sorted(reply.status for reply in replies) == [302] + [401] * (BROWSERS - 1)
    assert mfa.unused_recovery_codes(db.session, user) == mfa.RECOVERY_CODE_COUNT - 1
