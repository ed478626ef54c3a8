"""The coordinator workspace's one error type."""

from __future__ import annotations

from proms.scheduling.planning import PlanningError

# A coordinator action that cannot be done; the message is shown as it is. The same type as
# the planning services' refusals (an opt-out twice, say), so a view catches both.
AdminError = PlanningError
