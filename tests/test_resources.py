"""One lookup finds the folders proms reads, in an installed wheel and in a checkout alike.

tests/test_wheel.py shows it on a real installed wheel; these tests pin the rule itself.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

from proms import resources
from proms.resources import FOLDERS, resource_dir

CHECKOUT = Path(__file__).resolve().parents[1]


def test_in_the_checkout_the_top_level_folders_are_used() -> None:
    for name in FOLDERS:
        assert resource_dir(name) == CHECKOUT / name


def test_the_app_reads_templates_static_files_and_translations_through_it(app: Flask) -> None:
    assert Path(app.template_folder or "") == resource_dir("templates")
    assert Path(app.static_folder or "") == resource_dir("static")
    babel = app.extensions["babel"]
    assert babel.translation_directories == [str(resource_dir("translations"))]


def layout(root: Path, *folders: str, checkout: bool) -> Path:
    """A package folder `root/proms` with these folders inside, maybe in a checkout."""
    package = root / "proms"
    package.mkdir()
    for name in folders:
        (package / name).mkdir()
    for name in FOLDERS:
        (root / name).mkdir()
    if checkout:
        (root / "pyproject.toml").write_text("", encoding="utf-8")
    return package


def test_an_installed_package_uses_its_own_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = layout(tmp_path, *FOLDERS, checkout=True)
    monkeypatch.setattr(resources, "PACKAGE_DIR", package)
    monkeypatch.setattr(resources, "CHECKOUT_DIR", tmp_path)
    for name in FOLDERS:
        assert resource_dir(name) == package / name


def test_site_packages_is_not_a_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A package installed without its folders fails, naming the folder: nothing else is used."""
    package = layout(tmp_path, "templates", checkout=False)
    monkeypatch.setattr(resources, "PACKAGE_DIR", package)
    monkeypatch.setattr(resources, "CHECKOUT_DIR", tmp_path)
    assert resource_dir("templates") == package / "templates"
    with pytest.raises(FileNotFoundError, match=r"has no migrations/ folder"):
        resource_dir("migrations")


def test_only_the_shipped_folders_can_be_asked_for() -> None:
    with pytest.raises(ValueError, match="ships templates, static, migrations, translations"):
        resource_dir("instance")
