"""Template filters and Jinja settings shared by every blueprint."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from zoneinfo import ZoneInfo

from flask import Flask, current_app, url_for
from werkzeug.routing import IntegerConverter


class IdConverter(IntegerConverter):
    """A database id in a URL: 1 to 2**31 - 1, so a huge number is a 404, not an overflow."""

    def __init__(self, url_map, *args, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(url_map, min=1, max=2**31 - 1)


def local_date(moment: dt.datetime, zone: str) -> str:
    """The local calendar date of a UTC instant, ISO formatted."""
    return moment.astimezone(ZoneInfo(zone)).date().isoformat()


def local_last_day(moment: dt.datetime, zone: str) -> str:
    """The last local day before an exclusive end instant (a window closing at midnight)."""
    return local_date(moment - dt.timedelta(microseconds=1), zone)


_STATIC_VERSIONS: dict[str, str] = {}


def static_url(filename: str) -> str:
    """A static file's URL with its content hash: cached for a year, replaced when it changes."""
    version = _STATIC_VERSIONS.get(filename)
    if version is None:
        path = Path(current_app.static_folder or "") / filename
        version = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        if not current_app.debug:
            _STATIC_VERSIONS[filename] = version
    return url_for("static", filename=filename, v=version)


def init_app(app: Flask) -> None:
    app.url_map.converters["id"] = IdConverter
    app.jinja_env.add_extension("jinja2.ext.do")
    app.add_template_filter(local_date)
    app.add_template_filter(local_last_day)
    app.add_template_global(static_url)
