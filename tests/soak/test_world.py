"""The soak's data and its gate counts (bench/soak/world.py), on SQLite and PostgreSQL.

The soak trusts these counts to say that every survey a client sent was stored, scored and had
its reminders cancelled; here a survey is answered through the real pages (as the locustfile
does it) and the counts must see exactly that, and nothing for a link left unanswered.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

from flask import Flask


def _load_world():  # type: ignore[no-untyped-def]
    """bench/soak/world.py, by path (bench/ is not a package; nothing added to sys.path)."""
    path = Path(__file__).resolve().parents[2] / "bench" / "soak" / "world.py"
    spec = importlib.util.spec_from_file_location("soak_world", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


world = _load_world()

CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
RADIO = re.compile(r'name="answer"[^>]*value="([^"]+)"')


def _answer_all(app: Flask, token: str) -> None:
    """Answer every question and send, as a phone does: each POST with its page's token."""
    client = app.test_client()
    welcome = client.get(f"/s/{token}")
    assert welcome.status_code == 200
    started = client.post(
        f"/s/{token}", data={"csrf_token": CSRF.search(welcome.get_data(as_text=True))[1]}
    )
    assert started.status_code == 303
    location = started.headers["Location"]
    while location.startswith("/s/q/"):
        page = client.get(location).get_data(as_text=True)
        saved = client.post(
            location,
            data={
                "csrf_token": CSRF.search(page)[1],
                "answer": RADIO.findall(page)[0],
                "next": "1",
            },
        )
        assert saved.status_code == 303, saved.get_data(as_text=True)[:500]
        location = saved.headers["Location"]
    assert location == "/s/review"
    review = client.get("/s/review").get_data(as_text=True)
    sent = client.post("/s/submit", data={"csrf_token": CSRF.search(review)[1]})
    assert sent.status_code == 303
    assert sent.headers["Location"] == "/s/done"


def test_counts_see_what_was_sent(
    database_url: str, make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    make_app()  # empties every table after the test
    secret = "soak-test-" + "x" * 40
    seeded = world.seed(
        database_url,
        tmp_path,
        secret_key=secret,
        baselines=2,
        follow_ups=1,
        clinicians=1,
        coordinators=1,
    )
    tokens = [json.loads(line) for line in seeded.tokens_file.read_text().splitlines()]
    assert len(tokens) == 3
    assert len(seeded.staff_file.read_text().splitlines()) == 2
    assert seeded.questions["baseline"] > 0
    assert seeded.questions[world.FOLLOW_UP] > 0

    before = world.count_gates(database_url, secret, seeded.assessment_of, [])
    assert before.completed == 0
    assert before.reminders_waiting == 0

    app = world.app_for(database_url, secret)
    app.config["WTF_CSRF_ENABLED"] = True
    answered = tokens[0]
    _answer_all(app, answered["token"])
    with app.app_context():
        from proms.db import db

        db.session.remove()
        db.engine.dispose()

    after = world.count_gates(database_url, secret, seeded.assessment_of, [answered["n"]])
    assert after.finished == 1
    assert after.completed == 1
    assert after.completed_not_finished == 0
    assert after.finished_not_completed == 0
    assert after.responses_expected > 0
    assert after.responses_submitted == after.responses_expected
    assert after.responses_unscored == 0
    assert after.reminders_waiting == 0

    # Told that nothing was sent, the counts see a completed questionnaire nobody sent...
    unseen = world.count_gates(database_url, secret, seeded.assessment_of, [])
    assert unseen.completed_not_finished == 1
    # ...and told that an unanswered one was sent, they see it missing.
    claimed = world.count_gates(database_url, secret, seeded.assessment_of, [tokens[1]["n"]])
    assert claimed.finished_not_completed == 1
