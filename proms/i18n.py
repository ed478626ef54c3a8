"""Languages: patient pages in the patient's language (Flask-Babel); staff pages in English."""

from __future__ import annotations

from flask import Flask, current_app, g
from flask_babel import Babel, get_locale

babel = Babel()


def select_locale() -> str:
    """The patient's language on survey pages (set by the survey views), else English."""
    language = g.get("patient_language")
    if language in current_app.config["LANGUAGES"]:
        return str(language)
    return str(current_app.config["BABEL_DEFAULT_LOCALE"])


def init_app(app: Flask) -> None:
    babel.init_app(app, locale_selector=select_locale)

    @app.context_processor
    def page_language() -> dict[str, str]:
        return {"page_lang": str(get_locale() or "en")}
