"""What every channel is: a message in, the provider's message id out, or one of two failures.

The two failures decide what the dispatcher may do next (docs/messages.md):
- `Rejected`: the provider definitely did not take the message (refused the connection, said no).
  Sending again later cannot make a duplicate; `permanent` says whether trying again can help.
- `Uncertain`: the message may have gone (a timeout after it was handed over, a connection lost
  before the provider's answer). It is never sent again automatically.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One rendered message, ready for a channel. No health information is ever in it."""

    notification_id: int
    idempotency_key: str
    channel: str  # "email" or "sms"
    to: str  # an email address, or an E.164 mobile number
    text: str  # the plain-text body (the whole SMS)
    subject: str | None = None  # email only
    html: str | None = None  # email only
    unsubscribe_url: str | None = None  # email only: List-Unsubscribe and the link in the body
    status_callback_url: str | None = None  # SMS only: where the provider reports delivery


class Rejected(Exception):
    """The provider did not take the message."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


class Uncertain(Exception):
    """It is not known whether the message went."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Sender(Protocol):
    """A channel. `send` returns the provider's message id; `close` ends any open connection."""

    def send(self, message: OutgoingMessage) -> str: ...

    def close(self) -> None: ...
