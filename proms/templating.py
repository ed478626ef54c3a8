"""Template filters and Jinja settings shared by every blueprint."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo

import phonenumbers
from flask import Flask, current_app, url_for
from werkzeug.routing import IntegerConverter


class IdConverter(IntegerConverter):
    """A database id in a URL: 1 to 2**31 - 1, so a huge number is a 404, not an overflow."""

    def __init__(self, url_map, *args, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(url_map, min=1, max=2**31 - 1)


def local_date(moment: dt.datetime, zone: str) -> str:
    """The local calendar date of a UTC instant, ISO formatted."""
    return moment.astimezone(ZoneInfo(zone)).date().isoformat()


def last_day_phrase(moment: dt.datetime, zone: str, now: dt.datetime) -> str:
    """When a window closing at `moment` has its last day, as staff say it: "today",
    "tomorrow" or "on 2026-12-13" (the patient's calendar)."""
    last = _last_day(moment, zone)
    today = now.astimezone(ZoneInfo(zone)).date()
    if last == today:
        return "today"
    if last == today + dt.timedelta(days=1):
        return "tomorrow"
    return f"on {last.isoformat()}"


def local_datetime(moment: dt.datetime, zone: str) -> str:
    """A UTC instant as the patient's wall clock reads it: "Mon 2026-03-02 10:00 EST"."""
    return moment.astimezone(ZoneInfo(zone)).strftime("%a %Y-%m-%d %H:%M %Z")


def local_last_day(moment: dt.datetime, zone: str) -> str:
    """The last local day before an exclusive end instant (a window closing at midnight)."""
    return _last_day(moment, zone).isoformat()


def _last_day(moment: dt.datetime, zone: str) -> dt.date:
    return (moment - dt.timedelta(microseconds=1)).astimezone(ZoneInfo(zone)).date()


_STATIC_VERSIONS: dict[str, str] = {}


def static_version(filename: str) -> str | None:
    """The content hash of a static file (its first 12 hex digits), None if there is no file."""
    version = _STATIC_VERSIONS.get(filename)
    if version is None:
        folder = Path(current_app.static_folder or "").resolve()
        path = (folder / filename).resolve()
        if not path.is_relative_to(folder) or not path.is_file():
            return None
        version = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        if not current_app.debug:
            _STATIC_VERSIONS[filename] = version
    return version


def static_url(filename: str) -> str:
    """A static file's URL with its content hash: cached for a year, replaced when it changes."""
    version = static_version(filename)
    if version is None:
        raise FileNotFoundError(f"no static file {filename!r}")
    return url_for("static", filename=filename, v=version)


@functools.cache
def zone_countries() -> dict[str, str]:
    """IANA time zone -> ISO 3166 country code, from the tz database's zone.tab."""
    table = resources.files("tzdata").joinpath("zoneinfo", "zone.tab").read_text("utf-8")
    countries = {}
    for line in table.splitlines():
        if line and not line.startswith("#"):
            country, _coordinates, zone, *_comments = line.split("\t")
            countries[zone] = country
    return countries


def phone(number: str | None, zone: str | None = None) -> str:
    """A stored E.164 number as people write it: national in the country of `zone`, else
    international. "+12165550100" is "(216) 555-0100" for a clinic in America/New_York and
    "+1 216-555-0100" for one in Europe/Madrid. Anything that is not a possible phone number is
    left as it is.
    """
    if not number:
        return ""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return number
    if not phonenumbers.is_possible_number(parsed):
        return number
    country = zone_countries().get(zone or "")
    home = phonenumbers.country_code_for_region(country) if country else 0
    # By calling code, not by region: +1 is one numbering plan for the US, Canada and the
    # Caribbean, dialled the same way within it.
    style = (
        phonenumbers.PhoneNumberFormat.NATIONAL
        if parsed.country_code == home
        else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )
    return phonenumbers.format_number(parsed, style)


def init_app(app: Flask) -> None:
    app.url_map.converters["id"] = IdConverter
    app.jinja_env.add_extension("jinja2.ext.do")
    # No blank lines and indentation where block tags stood: less to send on every page.
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
    app.add_template_filter(local_date)
    app.add_template_filter(local_last_day)
    app.add_template_filter(local_datetime)
    app.add_template_filter(last_day_phrase)
    app.add_template_filter(phone)
    app.add_template_global(static_url)
