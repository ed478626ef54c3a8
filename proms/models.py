"""Every model, imported once so that the metadata (Alembic, create_all) sees all tables."""

from proms.admin.models import (
    Channel,
    Clinic,
    Enrollment,
    EnrollmentStatus,
    Patient,
    Protocol,
    ProtocolTimepoint,
    SessionStatus,
    TreatmentSession,
)
from proms.auth.models import AuditEvent, ClinicMembership, LoginThrottle, Role, StaffUser
from proms.care.models import StaffNote
from proms.care.snapshots import CohortSnapshot
from proms.catalog.models import Instrument, InstrumentSource
from proms.outcomes.models import Alert, AlertKind, AlertStatus, Score
from proms.scheduling.models import (
    Assessment,
    AssessmentStatus,
    Notification,
    NotificationKind,
    NotificationStatus,
)
from proms.surveys.models import AccessToken, ResponseStatus, SurveyAnswer, SurveyResponse

__all__ = [
    "AccessToken",
    "Alert",
    "AlertKind",
    "AlertStatus",
    "Assessment",
    "AssessmentStatus",
    "AuditEvent",
    "Channel",
    "Clinic",
    "ClinicMembership",
    "CohortSnapshot",
    "Enrollment",
    "EnrollmentStatus",
    "Instrument",
    "InstrumentSource",
    "LoginThrottle",
    "Notification",
    "NotificationKind",
    "NotificationStatus",
    "Patient",
    "Protocol",
    "ProtocolTimepoint",
    "ResponseStatus",
    "Role",
    "Score",
    "SessionStatus",
    "StaffNote",
    "StaffUser",
    "SurveyAnswer",
    "SurveyResponse",
    "TreatmentSession",
]
