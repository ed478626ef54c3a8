"""A channel that takes every message and does nothing with it (benchmarks, load tests)."""

from __future__ import annotations

from proms.notify.base import OutgoingMessage


class NullSender:
    """Accepts every message at once; the provider id is `null:<notification id>`."""

    def send(self, message: OutgoingMessage) -> str:
        return f"null:{message.notification_id}"

    def close(self) -> None:
        """Nothing to close."""
