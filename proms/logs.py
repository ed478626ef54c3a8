"""Logging that never carries a patient link: request lines show /s/<redacted>."""

from __future__ import annotations

import logging
import re

TOKEN_IN_PATH = re.compile(r"(/s/)[A-Za-z0-9_-]{20,}")


class RedactLinks(logging.Filter):
    """Replace survey tokens in log records (the dev server's and gunicorn's access lines)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "/s/" in message:
            record.msg = TOKEN_IN_PATH.sub(r"\1<redacted>", message)
            record.args = ()
        return True


def install() -> None:
    for name in ("werkzeug", "gunicorn.access", "gunicorn.error", "proms"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactLinks) for f in logger.filters):
            logger.addFilter(RedactLinks())
