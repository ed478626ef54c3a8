"""GET /healthz (liveness) and GET /readyz (readiness) for load balancers and monitoring.

/healthz says the process answers requests, and nothing more: it does not touch the database.
A liveness check that failed while the database was down would have the service manager or
orchestrator restart every web process at once, which cures nothing (the database is still
down) and drops the requests in flight; the app recovers by itself when the database returns
(pooled connections are checked before use, proms.db).

/readyz says this process can serve: the database answers, and its schema is at the migrations
this release ships (Alembic's head). A load balancer sends traffic only to ready hosts. Its
answer is short JSON and never says more than the reason (no URL, no exception text).

A database migrated by a newer release (a revision this one does not know) counts as ready:
a rolling deploy runs `proms db upgrade` first and then replaces the hosts one by one, and the
old hosts must keep serving meanwhile (docs/deployment.md, "Upgrades"). A database behind is not
ready: this code may query tables or columns it lacks.
"""

from __future__ import annotations

import functools
import logging

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Blueprint, Flask
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import SQLAlchemyError

from proms.db import db, sqlite_begin
from proms.schema import alembic_config
from proms.security import public

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)

NO_STORE = {"Cache-Control": "no-store"}


@functools.cache
def migrations() -> tuple[frozenset[str], frozenset[str]]:
    """This release's head revision(s) and every revision it ships; read once per process."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    known = frozenset(revision.revision for revision in script.walk_revisions())
    return frozenset(script.get_heads()), known


@bp.route("/healthz")
@public
def healthz() -> ResponseReturnValue:
    return {"status": "ok"}, 200, NO_STORE


@bp.route("/readyz")
@public
def readyz() -> ResponseReturnValue:
    heads, known = migrations()
    # A read only: on SQLite it must not take the write lock (proms.db) or queue behind writers.
    mode = sqlite_begin.set("DEFERRED")
    try:
        current = set(MigrationContext.configure(db.session.connection()).get_current_heads())
    except SQLAlchemyError as exc:
        log.warning("readiness: database unreachable (%s)", type(exc).__name__)
        return not_ready("database unreachable")
    finally:
        db.session.rollback()
        sqlite_begin.reset(mode)
    if current == heads:
        return {"status": "ok", "database": "ok", "migrations": "at head"}, 200, NO_STORE
    if not current:
        return not_ready("database not migrated")
    if current - known:
        return {"status": "ok", "database": "ok", "migrations": "newer"}, 200, NO_STORE
    return not_ready("migrations behind")


def not_ready(reason: str) -> ResponseReturnValue:
    return {"status": "error", "reason": reason}, 503, NO_STORE


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
