"""Template filters and Jinja settings shared by every blueprint."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from flask import Flask


def local_date(moment: dt.datetime, zone: str) -> str:
    """The local calendar date of a UTC instant, ISO formatted."""
    return moment.astimezone(ZoneInfo(zone)).date().isoformat()


def local_last_day(moment: dt.datetime, zone: str) -> str:
    """The last local day before an exclusive end instant (a window closing at midnight)."""
    return local_date(moment - dt.timedelta(microseconds=1), zone)


def init_app(app: Flask) -> None:
    app.jinja_env.add_extension("jinja2.ext.do")
    app.add_template_filter(local_date)
    app.add_template_filter(local_last_day)
