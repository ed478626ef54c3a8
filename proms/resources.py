"""The folders proms reads beside its code: templates, static files, migrations, translations.

The repository keeps them at the top level (DESIGN.md). An installed wheel carries them inside
the package (`proms/templates`, ...; hatch_build.py puts them there), so one lookup serves both:
the package first, then the checkout the package was imported from (a clone, or an editable
install).
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
CHECKOUT_DIR = PACKAGE_DIR.parent
FOLDERS = ("templates", "static", "migrations", "translations")


def resource_dir(name: str) -> Path:
    """The folder `name` (one of FOLDERS) of this proms, installed or in a checkout."""
    if name not in FOLDERS:
        raise ValueError(f"proms ships no {name!r} folder; it ships {', '.join(FOLDERS)}")
    installed = PACKAGE_DIR / name
    if installed.is_dir():
        return installed
    # Only a real checkout: an installed package's parent is site-packages, whose folders of
    # the same name (if any) belong to somebody else.
    checkout = CHECKOUT_DIR / name
    if (CHECKOUT_DIR / "pyproject.toml").is_file() and checkout.is_dir():
        return checkout
    raise FileNotFoundError(
        f"proms at {PACKAGE_DIR} has no {name}/ folder (nor has a checkout around it): "
        "install proms from a wheel built from its repository (pip install .)"
    )
