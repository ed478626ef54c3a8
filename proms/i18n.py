"""Languages: patient pages in the patient's language (Flask-Babel); staff pages in English."""

from __future__ import annotations

from flask import Flask, current_app, g, has_request_context, request
from flask_babel import Babel, get_locale

from proms.resources import resource_dir

babel = Babel()


# Paths of patient pages: the survey (/s/...) and the email unsubscribe page (/u/<token>).
PATIENT_PREFIXES = ("/s/", "/u/")


def is_patient_path(path: str) -> bool:
    return path == "/s" or path.startswith(PATIENT_PREFIXES)


def select_locale() -> str:
    """The patient's language on survey pages (set by the survey views), else English."""
    languages = current_app.config["LANGUAGES"]
    language = g.get("patient_language")
    if language in languages:
        return str(language)
    if has_request_context() and is_patient_path(request.path):
        # A patient page before we know the patient (a refused or unknown link): the browser's.
        best = request.accept_languages.best_match(languages)
        if best:
            return str(best)
    return str(current_app.config["BABEL_DEFAULT_LOCALE"])


def init_app(app: Flask) -> None:
    babel.init_app(
        app,
        locale_selector=select_locale,
        default_translation_directories=str(resource_dir("translations")),
    )

    @app.context_processor
    def page_language() -> dict[str, str]:
        return {"page_lang": str(get_locale() or "en")}
