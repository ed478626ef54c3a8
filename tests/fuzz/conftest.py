"""Fuzz fixtures: an app that lets every generated request reach validation, and its world.

Rate limits, sign-in lockouts and the identity check's lockout are lifted here (their own tests
are tests/auth and tests/surveys): with them on, a fuzzer meets a 429 after the tenth request and
tests nothing beyond it. Messages go nowhere (MESSAGE_TRANSPORT "null"), and the Twilio webhooks
are on with a known auth token so that signed requests can be generated.

How many examples each property draws is a hypothesis profile, chosen by PROMS_FUZZ_EXAMPLES:
unset, a modest number that keeps tests/fuzz within about a minute per database; set (e.g. 300)
for a long bug hunt. Examples are derandomized either way, so CI meets the same ones every run;
PROMS_FUZZ_SEED=<n> draws another sequence.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from flask import Flask

from tests.fuzz.world import FuzzWorld, build_fuzz_world
from tests.helpers import World
from tests.webhooks.helpers import AUTH_TOKEN, PUBLIC_BASE_URL

# Limits raised rather than RATELIMIT_ENABLED=False, which would stay with the shared limiter
# (proms.security.limiter) for every app that tests make after these.
FUZZ_CONFIG = {
    "LINK_RATE_LIMIT": "1000000 per minute",
    "IDENTITY_RATE_LIMIT": "1000000 per minute",
    "LOGIN_RATE_LIMIT": "1000000 per minute",
    "LOGIN_LOCK_AFTER": 1_000_000,
    "IDENTITY_MAX_TRIES": 1_000_000,
    "MESSAGE_TRANSPORT": "null",
    "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
    "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
}


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Iterator[Flask]:
    application = make_app(**FUZZ_CONFIG)
    with application.app_context():
        yield application


@pytest.fixture
def fuzz_world(app: Flask, world: World) -> FuzzWorld:
    return build_fuzz_world(app, world)
