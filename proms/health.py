"""GET /healthz for load balancers and monitoring."""

from __future__ import annotations

import logging

from flask import Blueprint, Flask
from flask.typing import ResponseReturnValue
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from proms.db import db
from proms.security import public

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)


@bp.route("/healthz")
@public
def healthz() -> ResponseReturnValue:
    try:
        db.session.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        db.session.rollback()
        log.warning("health check: database unreachable (%s)", type(exc).__name__)
        return {"status": "error", "database": "unreachable"}, 503, {"Cache-Control": "no-store"}
    return {"status": "ok", "database": "ok"}, 200, {"Cache-Control": "no-store"}


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
