"""Build hook: the wheel carries the folders a running proms reads, beside its code.

The repository keeps `templates/`, `static/`, `migrations/` and `translations/` at the top level
(DESIGN.md); a wheel has no top level, so they go under the package (`proms/templates`, ...),
where `proms.resources` looks first. Translations ship compiled: each `.po` is compiled to a
`.mo` here, at build time, so `pip install .` needs no Makefile step and never ships a stale
`.mo` left in the checkout. Editable installs get nothing: they read the checkout's folders.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

PACKAGE = "proms"
PLAIN_FOLDERS = ("templates", "static", "migrations")


class BuildHook(BuildHookInterface):
    """Maps the top-level resource folders into the wheel and compiles the translations."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version == "editable":
            return
        root = Path(self.root)
        tracked = tracked_files(root, PLAIN_FOLDERS)
        if tracked is None:  # an sdist, or no git: the folders are what was packed
            for name in PLAIN_FOLDERS:
                build_data["force_include"][str(root / name)] = f"{PACKAGE}/{name}"
        else:  # a git checkout: only what is committed or staged, never a draft lying around
            for relative in tracked:
                build_data["force_include"][str(root / relative)] = f"{PACKAGE}/{relative}"
        self._compiled = Path(tempfile.mkdtemp(prefix="proms-mo-"))
        for po_path in sorted(root.glob("translations/*/LC_MESSAGES/*.po")):
            relative = po_path.relative_to(root).with_suffix(".mo")
            mo_path = self._compiled / relative
            compile_catalog(po_path, mo_path)
            build_data["force_include"][str(mo_path)] = f"{PACKAGE}/{relative.as_posix()}"

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        compiled = getattr(self, "_compiled", None)
        if compiled is not None:
            shutil.rmtree(compiled, ignore_errors=True)


def tracked_files(root: Path, folders: tuple[str, ...]) -> list[str] | None:
    """The files git tracks in these folders of a checkout; None outside a git checkout."""
    if not (root / ".git").exists():
        return None
    try:
        listed = subprocess.run(  # noqa: S603 - a fixed git command, no outside input
            ["git", "ls-files", "-z", "--", *folders],  # noqa: S607 - git from PATH
            cwd=root,
            capture_output=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    names = [name for name in listed.stdout.decode("utf-8").split("\0") if name]
    return [name for name in names if (root / name).is_file()]


def compile_catalog(po_path: Path, mo_path: Path) -> None:
    """`pybabel compile` for one catalogue; a broken translation stops the build."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with po_path.open("rb") as handle:
        catalog = read_po(handle, locale=po_path.parent.parent.name)
    problems = [
        f"{po_path}:{message.lineno}: {error}"
        for message, errors in catalog.check()
        for error in errors
    ]
    if problems:
        raise ValueError("translation errors:\n" + "\n".join(problems))
    mo_path.parent.mkdir(parents=True, exist_ok=True)
    with mo_path.open("wb") as handle:
        write_mo(handle, catalog)
