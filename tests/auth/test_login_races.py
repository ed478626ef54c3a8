"""Failed sign-ins sent at the same moment all count, on SQLite and PostgreSQL alike.

A real threaded server gets several wrong passwords for one address released together, with
every SQL statement slowed a little so that they interleave in the database. Each must be
counted once: a lost count would let an attacker guess more often than the lockout allows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

import pytest
import sqlalchemy as sa
from flask import Flask

from proms.auth.models import LoginThrottle
from proms.auth.services import email_sha256
from proms.db import db
from tests.helpers import World
from tests.live import Browser, Server, at_once, serve

ATTEMPTS = 4  # one short of the lock (LOGIN_LOCK_AFTER is 5)


@pytest.fixture
def server(make_app: Callable[..., Flask]) -> Iterator[Server]:
    app = make_app(SESSION_COOKIE_SECURE=False, LOGIN_RATE_LIMIT="10000 per minute")
    with serve(app) as live, app.app_context():
        yield live


def failures(email: str) -> tuple[int, object]:
    with db.engine.connect() as connection:
        row = connection.execute(
            sa.select(LoginThrottle.failed_count, LoginThrottle.locked_until).where(
                LoginThrottle.email_sha256 == email_sha256(email)
            )
        ).one()
    return row.failed_count, row.locked_until


@pytest.mark.parametrize("email", ["clinician@a.example.org", "nobody@a.example.org"])
def test_wrong_passwords_sent_at_once_are_each_counted(
    server: Server, world: World, email: str
) -> None:
    browsers: list[Browser] = []
    for _ in range(ATTEMPTS):
        browser = server.browser()
        assert browser.get("/login").status == 200
        browsers.append(browser)
    form = {"email": email, "password": "not the password"}
    with server.slow_database():
        replies = at_once(*(partial(browser.post, "/login", form) for browser in browsers))
    assert sorted(reply.status for reply in replies) == [401] * ATTEMPTS
    assert failures(email) == (ATTEMPTS, None)

    # The next two, together again: the fifth locks the address, the sixth finds it locked
    # or locks it for longer; neither is lost.
    with server.slow_database():
        replies = at_once(*(partial(browser.post, "/login", form) for browser in browsers[:2]))
    assert {reply.status for reply in replies} <= {401, 429}, [r.body for r in replies]
    count, locked_until = failures(email)
    assert count in (ATTEMPTS + 1, ATTEMPTS + 2)
    assert locked_until is not None
