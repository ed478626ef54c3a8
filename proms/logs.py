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

In production the logs are JSON, one object a line (LOG_FORMAT, below), for a log collector to
read without patterns: time, level, logger, message, the request id, and on gunicorn's access
lines the method, path, status, duration and client address. Every string of a JSON line is
redacted as above when it is written, the traceback included, whichever logger wrote it.

A request id ties the lines of one request together: the proxy's X-Request-ID when it is short
and plain (nginx's $request_id), else a new one; it goes back in the response's X-Request-ID.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
import string
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from pythonjsonlogger.json import JsonFormatter as BaseJsonFormatter

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from flask import Flask

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


def install(app: Flask | None = None) -> None:
    """Put the filters on the loggers that can see a request line or a result row.

    A logger's filters see only the records logged to it by name (not its children's), so
    these are the loggers the servers and Flask write request lines and tracebacks to.

    With an app: give its requests ids, and write JSON logs if its LOG_FORMAT says so.
    """
    for name in LOGGERS:
        add_filter(logging.getLogger(name))
    add_filter(logging.getLogger("sqlalchemy.engine.Engine"), DropResultRows)
    _stamp_request_ids()
    if app is None:
        return
    app.wsgi_app = RequestIds(app.wsgi_app)  # type: ignore[method-assign]
    if log_format(app.config) == "json":
        log_json_to_stderr()


# Request ids -----------------------------------------------------------------------------------

REQUEST_ID_HEADER = "X-Request-ID"
# What a proxy's id may look like to be kept: nginx's $request_id (32 hex digits), a UUID, most
# tracing ids. No slash, space, quote or control character: it goes into every log line as it is.
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# The id of the request this thread (or task) is serving; None outside a request.
request_id: ContextVar[str | None] = ContextVar("proms_request_id", default=None)


def request_id_for(incoming: str | None) -> str:
    """The incoming id when it is sane, else a new one (128 random bits, like nginx's)."""
    if incoming and SANE_REQUEST_ID.fullmatch(incoming):
        return incoming
    return secrets.token_hex(16)


class RequestIds:
    """WSGI middleware: every request gets an id, logged with it and sent back in the response.

    Outermost, so that a request refused before Flask routes it (a 400, a 413) has one too, and
    so that the id is set before anything in the app can log. The app finds it in the request's
    headers as usual (replaced when it was not sane); gunicorn's access log, written after the
    response, reads it from the response's header (`{x-request-id}o`).
    """

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        rid = request_id_for(environ.get("HTTP_X_REQUEST_ID"))
        environ["HTTP_X_REQUEST_ID"] = rid

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            headers = [(k, v) for k, v in headers if k.lower() != "x-request-id"]
            headers.append((REQUEST_ID_HEADER, rid))
            return start_response(status, headers, exc_info)

        token = request_id.set(rid)
        try:
            return self.app(environ, start)
        finally:
            # A streamed body is written after this: its few log lines go without the id.
            request_id.reset(token)


class _RequestIdRecords:
    """A log record factory that stamps each record with the current request's id.

    A factory rather than a filter: a filter on a logger misses its children's records, and one
    on a handler misses the handlers a deployment (or a test) adds itself.
    """

    def __init__(self, factory: Callable[..., logging.LogRecord]) -> None:
        self.factory = factory

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.factory(*args, **kwargs)
        record.request_id = request_id.get()
        return record


def _stamp_request_ids() -> None:
    factory = logging.getLogRecordFactory()
    if not isinstance(factory, _RequestIdRecords):
        logging.setLogRecordFactory(_RequestIdRecords(factory))


# JSON ------------------------------------------------------------------------------------------

LOG_FORMATS = ("json", "text")
# Loggers whose INFO lines are noise beside ours (as the scheduler's own configuration says).
QUIET = ("apscheduler", "alembic")


def log_format(config: Mapping[str, Any]) -> str:
    """LOG_FORMAT, or by default JSON in production and text in development and tests."""
    chosen = config.get("LOG_FORMAT") or ("json" if config.get("ENV") == "production" else "text")
    if chosen not in LOG_FORMATS:
        from proms.checks import ConfigurationError

        raise ConfigurationError(f"PROMS_LOG_FORMAT must be json or text, not {chosen!r}")
    return str(chosen)


def _redacted(value: object) -> object:
    if isinstance(value, str):
        return redact_database_detail(redact(value))
    return value


def access_fields(atoms: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a gunicorn access line, from its atoms (already redacted by the filter)."""
    path = redact(str(atoms.get("U") or ""), whole_path=True)
    query = atoms.get("q")
    if query and query != "-":
        path = f"{path}?{query}"
    status = str(atoms.get("s", ""))
    micros = atoms.get("D")
    rid = atoms.get("{x-request-id}o")
    return {
        "method": atoms.get("m"),
        "path": path,
        "status": int(status) if status.isdigit() else status,
        "duration_ms": round(micros / 1000, 3) if isinstance(micros, int) else None,
        "remote_addr": atoms.get("h"),
        "request_id": rid if isinstance(rid, str) and rid != "-" else None,
    }


class JsonFormatter(BaseJsonFormatter):
    """One JSON object a line: time, level, logger, message, request_id, then any extra fields.

    Every string written is redacted here (links, database DETAIL lines), the traceback in
    "exception" too: the formatter is the last step, so no filter can be missed on the way.
    """

    def __init__(self) -> None:
        super().__init__(rename_fields={"exc_info": "exception"})

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        extra: dict[str, Any] = {}
        super().add_fields(extra, record, message_dict)  # extra=..., the traceback
        created = dt.datetime.fromtimestamp(record.created, dt.UTC)
        log_data["time"] = created.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        log_data["level"] = record.levelname
        log_data["logger"] = record.name
        log_data["message"] = record.message
        # Stamped when the record was made (proms' record factory); else the current request's.
        log_data["request_id"] = record.__dict__.get("request_id", request_id.get())
        if record.name == "gunicorn.access" and isinstance(record.args, Mapping):
            # Written after the response, outside the request: the id comes from its header.
            fields = access_fields(record.args)
            log_data.update(fields)
            log_data["message"] = f"{fields['method']} {fields['path']} {fields['status']}"
        for key, value in extra.items():
            log_data.setdefault(key, value)

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return {key: _redacted(value) for key, value in log_data.items()}


def use_json(handler: logging.Handler) -> None:
    """Make a handler write proms' JSON lines (and drop SQLAlchemy's result rows)."""
    if not isinstance(handler.formatter, JsonFormatter):
        handler.setFormatter(JsonFormatter())
    if not any(isinstance(f, DropResultRows) for f in handler.filters):
        handler.addFilter(DropResultRows())


def log_json_to(handlers: Iterable[logging.Handler]) -> None:
    """Send every logger's records (the root's) to these handlers, as JSON, from INFO up.

    Left alone when the root logger has handlers already: a deployment's own logging
    configuration (gunicorn's --log-config, a test's capture) wins.
    """
    root = logging.getLogger()
    if root.handlers:
        return
    for handler in handlers:
        use_json(handler)
        root.addHandler(handler)
    if root.level == logging.WARNING:  # the default: nothing was configured
        root.setLevel(logging.INFO)
    for name in QUIET:
        quiet = logging.getLogger(name)
        if quiet.level == logging.NOTSET:
            quiet.setLevel(logging.WARNING)


def log_json_to_stderr() -> None:
    """JSON lines on standard error: systemd's journal (or a container's log) collects them."""
    log_json_to([logging.StreamHandler()])


# The gunicorn handlers this module put on the root logger; replaced when gunicorn reloads.
_GUNICORN_ON_ROOT: list[logging.Handler] = []


def json_for_gunicorn(error_log: logging.Logger, access_log: logging.Logger, chosen: str) -> None:
    """In JSON mode, gunicorn's error and access logs write JSON, and the app's records join
    the error log (a file, or standard error), so one stream holds every line of a request.

    Called by proms.gunicorn_conf's logger in the master, before any worker loads the app, with
    LOG_FORMAT as the app will read it (instance config, PROMS_* variables).
    """
    if chosen != "json":
        return
    for log in (error_log, access_log):
        for handler in log.handlers:
            use_json(handler)
    root = logging.getLogger()
    for handler in _GUNICORN_ON_ROOT:
        root.removeHandler(handler)  # closed by gunicorn on a reload
    _GUNICORN_ON_ROOT.clear()
    if root.handlers:
        return
    _GUNICORN_ON_ROOT.extend(error_log.handlers)
    log_json_to(error_log.handlers)
