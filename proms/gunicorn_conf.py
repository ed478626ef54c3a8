"""gunicorn settings for proms: `gunicorn -c python:proms.gunicorn_conf` serves the app.

The point is the logger: gunicorn's access log writes the raw request line (`%(r)s`), the path
(`%(U)s`), the query, the referrer and any header or environ atom, so a patient link in any
spelling (`/s%2F<token>`, `/s/%37...`) would land in it. GunicornLogger redacts them all
(proms.logs.redact) and keeps the same filter on the error log. With LOG_FORMAT json (production's
default) both logs, and the app's records with them, are proms' JSON lines (proms.logs).
Equivalent on the command line:

    gunicorn --logger-class proms.gunicorn_conf.GunicornLogger 'proms:create_app()'

Other settings (bind, workers, access log file) are given as usual, on the command line or in
GUNICORN_CMD_ARGS; the command line wins over this module.

The master also checks the configuration before it starts any worker (`on_starting`): a refused
one (production without a real SECRET_KEY or an https PUBLIC_BASE_URL, in debug mode, or with
in-memory rate limits and more than one worker) stops gunicorn with the reason in one line,
instead of a traceback from every worker.
"""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from proms import ConfigurationError, check_serving_config, checks, logs


class GunicornLogger(Logger):
    """gunicorn's logger with patient links redacted from the access and error logs."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)  # also reruns on a configuration reload, after any logconfig
        for log in (self.error_log, self.access_log):
            logs.add_filter(log)
        logs.json_for_gunicorn(self.error_log, self.access_log, configured_log_format())

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        logs.redact_atoms(atoms)
        return atoms


def configured_log_format() -> str:
    """LOG_FORMAT as the workers will read it; JSON (production's) when the configuration is
    refused, which on_starting then reports in one line."""
    from proms import _configured_app

    try:
        return logs.log_format(_configured_app(None, serving=False).config)
    except ConfigurationError:
        return "json"


wsgi_app = "proms:create_app()"
logger_class = GunicornLogger


def on_starting(server: Any) -> None:
    """Refuse to start, in one line, a configuration that every worker would refuse.

    Also one that only the master can see is wrong: in-memory rate limits (each worker would
    count on its own) with more than one worker, however the count was given (-w,
    GUNICORN_CMD_ARGS, WEB_CONCURRENCY, a config file).
    """
    try:
        config = check_serving_config()
        problem = checks.rate_limit_storage_problem(config, int(server.cfg.workers))
        if problem:
            raise ConfigurationError(f"Refusing to start {problem}.")
    except ConfigurationError as exc:
        server.log.error("proms: %s", exc)
        raise SystemExit(1) from None
