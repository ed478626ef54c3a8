"""The coordinator workspace's one error type."""

from __future__ import annotations


class AdminError(ValueError):
    """A coordinator action that cannot be done; the message is shown as it is."""
