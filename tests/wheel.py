"""proms built as a wheel and installed in a fresh virtual environment outside the checkout.

Shared by tests/test_wheel.py and tests/deploy: the session-scoped `installed` fixture
(tests/conftest.py) builds and installs it once per test run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Installed:
    """proms installed from its wheel in a virtual environment outside the checkout."""

    venv: Path
    workdir: Path  # the working directory and HOME of every command
    wheel: Path

    def env(self, **variables: str) -> dict[str, str]:
        """A bare environment: the venv's commands first, no PYTHONPATH, no PROMS_* but these."""
        return {
            "PATH": f"{self.venv / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin",
            "HOME": str(self.workdir),
            "LANG": "C.UTF-8",
            **variables,
        }

    def run(self, *command: str, **variables: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.venv / "bin" / command[0]), *command[1:]],
            cwd=self.workdir,
            env=self.env(**variables),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )


def checked(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{result.args} exited {result.returncode}:\n{result.stderr}"
    return result.stdout


def install_wheel(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """Build the wheel from the checkout and install it, with its dependencies, in a new venv."""
    root = tmp_path_factory.mktemp("wheel")
    assert not root.resolve().is_relative_to(CHECKOUT), "the test folder must be outside"
    workdir = root / "work"
    workdir.mkdir()
    # pip keeps its own configuration (an index, a wheel cache), not the test's PYTHONPATH.
    pip_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}

    def pip(*arguments: str | Path) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "pip", "--quiet", *map(str, arguments)],
            cwd=root,
            env=pip_env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert result.returncode == 0, f"pip {arguments[0]} failed:\n{result.stderr}"

    pip("wheel", "--no-deps", "--wheel-dir", root / "dist", CHECKOUT)
    (wheel,) = (root / "dist").glob("proms-*.whl")
    venv = root / "venv"
    # No pip inside: the test's pip installs into it (pip --python), which saves a few seconds.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True, timeout=120)
    # --no-compile: Python compiles what it imports; pip would compile all of scipy (seconds).
    pip("--python", venv / "bin" / "python", "install", "--no-compile", wheel)
    return Installed(venv=venv, workdir=workdir, wheel=wheel)
