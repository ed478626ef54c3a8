"""Fixtures of the message tests: an app that renders messages, the SMTP and Twilio fakes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from proms import i18n, templating
from proms.resources import resource_dir
from tests.notify.fake_twilio import fake_twilio  # noqa: F401 - a fixture, used by name
from tests.notify.smtp_server import smtp_server, tls_certificate  # noqa: F401 - idem


@pytest.fixture
def message_app() -> Iterator[Flask]:
    """The parts of the app that render messages (templates, translations), in an app context.

    No database: the texts take plain values. tests/notify/test_texts.py also renders once in
    the full app, as the dispatcher does.
    """
    app = Flask("proms", template_folder=str(resource_dir("templates")))
    app.config.from_object("proms.config")
    templating.init_app(app)
    i18n.init_app(app)
    with app.app_context():
        yield app
