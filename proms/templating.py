"""Template filters and Jinja settings shared by every blueprint."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from flask import Flask
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


def init_app(app: Flask) -> None:
    app.url_map.converters["id"] = IdConverter
    app.jinja_env.add_extension("jinja2.ext.do")
    app.add_template_filter(local_date)
    app.add_template_filter(local_last_day)
