"""Logging that never carries a patient link: request lines show /s/<redacted>.

A link reaches the app however the client spells it: `/s/<token>`, `/S/<token>`, `/s%2F<token>`,
`/%73/<token>`, or with some of the token's characters percent-encoded (`/s/%37...`); servers
decode the path before routing, so all of these open the survey. Their logs do not decode:
gunicorn writes the raw request line, the development server only part of it. So the text is
percent-decoded (repeatedly: `%252F` is `/` twice decoded) before it is matched, and what
matched is cut out of the raw text, where the token may be spelled any of those ways.

Every path segment after `/s/` is redacted, except short plain words (`review`, `q`, `3`,
`new-link`): the survey's own pages, which cannot be a 43-character token. An email's
unsubscribe link (`/u/<token>`) is redacted the same way.

What a patient wrote never reaches a log either. Bound parameters are hidden by SQLAlchemy
(`hide_parameters`, see proms.db), but PostgreSQL's own error text repeats the values:
"DETAIL:  Failing row contains (..., 71.37, ...)" on a CHECK or NOT NULL violation,
"Key (clinic_id, mrn)=(1, A0) already exists." on a UNIQUE one. Those lines are redacted from
messages and tracebacks. And SQLAlchemy at DEBUG logs every row it reads (names, dates of
birth): those records are dropped.
"""

from __future__ import annotations

import logging
import re
import string
from collections.abc import MutableMapping

REDACTED = "<redacted>"
LOGGERS = ("werkzeug", "gunicorn.access", "gunicorn.error", "proms")
# Where a patient link starts, once decoded: a survey (/s/), an email's unsubscribe link (/u/),
# a staff member's password link. Matched anywhere: a referrer, a query string
# (?next=/s/...), another path. Redacting too much is harmless.
LINK_START = re.compile(r"/(?:s|u|password)/", re.IGNORECASE)
# Segments left as they are: the survey's own page names and question numbers.
PLAIN_SEGMENT = re.compile(r"[a-z][a-z-]{0,15}|[0-9]{1,9}")
# Raw characters that end a path in a log line (a query, a quote, a space). Decoded ones don't:
# `/s/%20<token>` is a path with a space in it.
PATH_ENDS = frozenset("?#\"'<>`" + string.whitespace)
MAX_DECODES = 4
# PostgreSQL's DETAIL and CONTEXT lines, up to what SQLAlchemy or Python writes after them; a
# value with line breaks in it continues onto the next lines.
DATABASE_DETAIL = re.compile(
    r"^(DETAIL|CONTEXT):[ \t]*.*?"
    r"(?=\n(?:\[SQL: |\(Background on this error|HINT:|DETAIL:|CONTEXT:|\s*\n|Traceback "
    r"|The above exception|During handling)|\Z)",
    re.MULTILINE | re.DOTALL,
)
HEX = frozenset(string.hexdigits)
# gunicorn access-log atoms that are a whole decoded path: a space in them is part of the path.
PATH_ATOMS = frozenset({"U", "{path_info}e", "{script_name}e"})


def _decode(text: str) -> tuple[str, list[tuple[int, int]]]:
    """Percent-decode, repeatedly; each decoded character keeps the span of text it came from."""
    chars = list(text)
    spans = [(i, i + 1) for i in range(len(text))]
    if "%" not in text:
        return text, spans
    for _ in range(MAX_DECODES):
        out_chars: list[str] = []
        out_spans: list[tuple[int, int]] = []
        i = 0
        while i < len(chars):
            if chars[i] == "%" and i + 2 < len(chars) and {chars[i + 1], chars[i + 2]} <= HEX:
                out_chars.append(chr(int(chars[i + 1] + chars[i + 2], 16)))
                out_spans.append((spans[i][0], spans[i + 2][1]))
                i += 3
            else:
                out_chars.append(chars[i])
                out_spans.append(spans[i])
                i += 1
        if len(out_chars) == len(chars):
            break
        chars, spans = out_chars, out_spans
    return "".join(chars), spans


def redact(text: str, *, whole_path: bool = False) -> str:
    """Replace every path segment after `/s/` (however spelled) with <redacted>.

    whole_path: the text is one decoded path (gunicorn's %(U)s), so a space does not end it.
    """
    if "/" not in text and "%" not in text:
        return text
    decoded, spans = _decode(text)

    def ends_path(i: int) -> bool:
        raw = spans[i][1] - spans[i][0] == 1
        return not whole_path and raw and decoded[i] in PATH_ENDS

    cuts: list[tuple[int, int]] = []
    scanned = 0
    for match in LINK_START.finditer(decoded):
        if match.start() < scanned:
            continue  # inside a path already read: /s/x/s/<token>
        start = match.end()
        while True:
            end = start
            while end < len(decoded) and decoded[end] != "/" and not ends_path(end):
                end += 1
            segment = decoded[start:end]
            if segment and not PLAIN_SEGMENT.fullmatch(segment):
                cuts.append((spans[start][0], spans[end - 1][1]))
            if end >= len(decoded) or decoded[end] != "/":
                break
            start = end + 1
        scanned = end
    if not cuts:
        return text
    pieces: list[str] = []
    previous = 0
    for start, end in cuts:
        pieces += [text[previous:start], REDACTED]
        previous = end
    pieces.append(text[previous:])
    return "".join(pieces)


def redact_database_detail(text: str) -> str:
    """Replace the values PostgreSQL quotes in an error (the failing row, the duplicate key)."""
    if "DETAIL:" not in text and "CONTEXT:" not in text:
        return text
    return DATABASE_DETAIL.sub(rf"\1:  {REDACTED}", text)


def redact_atoms(atoms: MutableMapping[str, object]) -> None:
    """Redact gunicorn's access-log atoms in place (request line, path, query, headers...)."""
    for key, value in atoms.items():
        if isinstance(value, str):
            atoms[key] = redact(value, whole_path=key in PATH_ATOMS)


class RedactLinks(logging.Filter):
    """Replace survey tokens and database-quoted values in a record's message and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "gunicorn.access" and isinstance(record.args, MutableMapping):
            redact_atoms(record.args)
        try:
            message = record.getMessage()
        except Exception:
            return True  # a malformed call: the handler reports it, as it would without us
        redacted = redact_database_detail(redact(message))
        if redacted != message:
            record.msg, record.args = redacted, ()
        if record.exc_info and not record.exc_text:
            # Formatters use this text rather than format the traceback again.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_database_detail(redact(record.exc_text))
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class DropResultRows(logging.Filter):
    """SQLAlchemy's DEBUG records of the rows it read: they hold names and answers."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and "Row %r" in record.msg)


def add_filter(logger: logging.Logger, kind: type[logging.Filter] = RedactLinks) -> None:
    if not any(isinstance(f, kind) for f in logger.filters):
        logger.addFilter(kind())


def install() -> None:
    """Put the filters on the loggers that can see a request line or a result row.

    A logger's filters see only the records logged to it by name (not its children's), so
    these are the loggers the servers and Flask write request lines and tracebacks to.
    """
    for name in LOGGERS:
        add_filter(logging.getLogger(name))
    add_filter(logging.getLogger("sqlalchemy.engine.Engine"), DropResultRows)
