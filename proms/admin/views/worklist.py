"""The worklist: the coordinator's first page."""

from __future__ import annotations

from flask import render_template
from flask.typing import ResponseReturnValue

from proms.admin.views import bp
from proms.admin.worklist import worklist as build_worklist
from proms.auth import roles
from proms.auth.audit import request_info
from proms.auth.roles import COORDINATION, requires
from proms.auth.services import record_event
from proms.db import db, utcnow


@bp.route("/worklist")
@requires(COORDINATION)
def worklist() -> ResponseReturnValue:
    now = utcnow()
    sections = build_worklist(db.session, roles.clinic_ids(), now)
    shown = sorted({entry.patient.id for section in sections for entry in section.entries})
    record_event(
        db.session,
        "worklist.view",
        actor=roles.user(),
        origin=request_info(),
        detail={"patient_ids": shown},
    )
    html = render_template(
        "admin/worklist/worklist.html",
        sections=sections,
        now=now,
    )
    db.session.commit()
    return html
