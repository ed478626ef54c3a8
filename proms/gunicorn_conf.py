"""gunicorn settings for proms: `gunicorn -c python:proms.gunicorn_conf` serves the app.

The point is the logger: gunicorn's access log writes the raw request line (`%(r)s`), the path
(`%(U)s`), the query, the referrer and any header or environ atom, so a patient link in any
spelling (`/s%2F<token>`, `/s/%37...`) would land in it. GunicornLogger redacts them all
(proms.logs.redact) and keeps the same filter on the error log. Equivalent on the command line:

    gunicorn --logger-class proms.gunicorn_conf.GunicornLogger 'proms:create_app()'

Other settings (bind, workers, access log file) are given as usual, on the command line or in
GUNICORN_CMD_ARGS; the command line wins over this module.

The master also checks the configuration before it starts any worker (`on_starting`): a refused
one (production without a real SECRET_KEY or an https PUBLIC_BASE_URL) stops gunicorn with the
reason in one line, instead of a traceback from every worker.
"""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from proms import ConfigurationError, check_serving_config, logs


class GunicornLogger(Logger):
    """gunicorn's logger with patient links redacted from the access and error logs."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)  # also reruns on a configuration reload, after any logconfig
        for log in (self.error_log, self.access_log):
            logs.add_filter(log)

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        logs.redact_atoms(atoms)
        return atoms


wsgi_app = "proms:create_app()"
logger_class = GunicornLogger


def on_starting(server: Any) -> None:
    """Refuse to start, in one line, a configuration that every worker would refuse."""
    try:
        check_serving_config()
    except ConfigurationError as exc:
        server.log.error("proms: %s", exc)
        raise SystemExit(1) from None
