"""The coordinator workspace (the `admin` blueprint): one module of pages per area.

Every route declares its role rule with `proms.auth.roles` and finds its objects through the
scoped lookups there, so a patient of another clinic is a 404 and a clinician's POST a 403.
Views stay thin: forms in `proms.admin.forms`, changes in the services, one audit event per
change (`proms.auth.audit.audit_change`).
"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("admin", __name__)

# Imported for their routes (each module adds its own to `bp`).
from proms.admin.views import (  # noqa: E402
    audit,
    clinics,
    enrollments,
    imports,
    messages,
    patients,
    protocols,
    staff,
    staff_sign_in,
    worklist,
)

__all__ = [
    "audit",
    "bp",
    "clinics",
    "enrollments",
    "imports",
    "messages",
    "patients",
    "protocols",
    "staff",
    "staff_sign_in",
    "worklist",
]
