"""`pip install` gives a working proms: the wheel, installed away from the checkout, serves.

The wheel is built from this checkout and installed with its dependencies into a new virtual
environment in a temporary folder. Every command then runs there, with a bare environment and
that folder as working directory, so nothing of the checkout can be imported or read: the
templates, stylesheet, migrations and compiled translations must come from the wheel.

Marked `wheel`: it runs once, in the SQLite pass of `make test` (the PostgreSQL pass deselects
it), since its database is a SQLite file of its own whatever --database says. It never skips: a
missing tool or a failed install fails it.
"""

from __future__ import annotations

import html
import http.client
import re
import secrets
import socket
import subprocess
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from tests.helpers import stop
from tests.wheel import CHECKOUT, Installed, checked

pytestmark = pytest.mark.wheel

SPANISH = CHECKOUT / "translations" / "es" / "LC_MESSAGES" / "messages.po"

# A Spanish patient of the demo data with a questionnaire open now, as "<MRN> <clinic>": the
# demo places patients relative to today, so there are always some (five with the default seed).
FIND_SPANISH_PATIENT = """
from sqlalchemy import select
from proms import create_app
from proms.admin.models import Patient
from proms.db import db, utcnow
from proms.surveys.links import open_assessment_of

with create_app(serving=False).app_context():
    for patient in db.session.scalars(select(Patient).where(Patient.language == "es")):
        if open_assessment_of(db.session, patient, utcnow()) is not None:
            print(patient.mrn, patient.clinic.slug)
            break
"""


def test_the_installed_package_reads_nothing_from_the_checkout(installed: Installed) -> None:
    code = (
        "import proms, proms.resources as r\n"
        "print(proms.__file__)\n"
        "for name in r.FOLDERS: print(r.resource_dir(name))\n"
    )
    paths = [Path(line) for line in checked(installed.run("python", "-c", code)).splitlines()]
    assert len(paths) == 5
    site = installed.venv / "lib"
    for path in paths:
        assert path.is_relative_to(site), path
        assert not path.resolve().is_relative_to(CHECKOUT), path
    mo_files = list((paths[0].parent / "translations").glob("*/LC_MESSAGES/messages.mo"))
    assert [p.parent.parent.name for p in mo_files] == ["es"]


def test_the_wheel_ships_the_committed_resource_files_and_compiled_translations(
    installed: Installed,
) -> None:
    folders = ("templates", "static", "migrations")
    listed = subprocess.run(
        ["git", "ls-files", "--", *folders],  # noqa: S607 - git from PATH
        cwd=CHECKOUT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    tracked = {f"proms/{name}" for name in listed if (CHECKOUT / name).is_file()}
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
    shipped = {name for name in names if name.split("/")[1] in folders}
    # Only what git holds: an untracked draft migration in a working copy never ships.
    assert shipped == tracked
    assert "proms/translations/es/LC_MESSAGES/messages.mo" in names
    assert not {name for name in names if name.endswith(".po") or "__pycache__" in name}


def test_commands_need_no_configuration(installed: Installed) -> None:
    """With no variable at all (production, no secret), help and read-only commands work."""
    helped = installed.run("proms", "--help")
    assert helped.returncode == 0, helped.stderr
    assert "Traceback" not in helped.stderr + helped.stdout
    for command in ("db", "score", "instruments", "link"):
        assert re.search(rf"^  {command}\s", helped.stdout, re.MULTILINE), helped.stdout
    # The default database (the instance folder in the venv) is new: said in one line.
    listed = installed.run("proms", "instruments", "list")
    assert listed.returncode == 1
    assert listed.stderr.count("\n") == 1, listed.stderr
    assert "is not migrated (run: proms db upgrade)" in listed.stderr


@dataclass(frozen=True)
class Reply:
    status: int
    content_type: str
    body: bytes

    @property
    def text(self) -> str:
        return html.unescape(self.body.decode("utf-8"))


def fetch(port: int, path: str) -> Reply:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return Reply(response.status, response.getheader("Content-Type", ""), response.read())
    finally:
        connection.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def gunicorn() -> Iterator[list[subprocess.Popen[bytes]]]:
    """The test starts gunicorn and puts it here; this stops it."""
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    stop(processes)


def spanish_welcome_texts() -> list[str]:
    """The Spanish of every plain sentence on the welcome page, from the catalogue itself."""
    with SPANISH.open("rb") as handle:
        catalog = read_po(handle, locale="es")
    return [
        message.string
        for message in catalog
        if message.id
        and isinstance(message.string, str)
        and "python-format" not in message.flags
        and any(path == "templates/surveys/welcome.html" for path, _ in message.locations)
    ]


def test_the_wheel_migrates_loads_the_demo_and_serves(
    installed: Installed, gunicorn: list[subprocess.Popen[bytes]]
) -> None:
    port = free_port()
    database = installed.workdir / "proms.sqlite3"
    config = {
        "PROMS_ENV": "development",
        "PROMS_DATABASE_URL": f"sqlite:///{database}",
        "PROMS_SECRET_KEY": secrets.token_hex(32),
        "PROMS_AUDIT_CHAIN_KEY": secrets.token_hex(32),
        "PROMS_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
    }
    assert "Upgraded: " in checked(installed.run("proms", "db", "upgrade", **config))
    assert "its tables match" in checked(installed.run("proms", "db", "check", **config))
    assert "Demo data: added" in checked(installed.run("proms", "demo", **config))
    found = checked(installed.run("python", "-c", FIND_SPANISH_PATIENT, **config)).split()
    assert found, "the demo data have no Spanish patient with an open questionnaire"
    mrn, clinic = found
    link = checked(installed.run("proms", "link", mrn, "--clinic", clinic, **config)).strip()
    assert link.startswith(f"http://127.0.0.1:{port}/s/"), link

    version = checked(installed.run("gunicorn", "--version"))
    major = int(re.search(r"(\d+)\.\d+", version).group(1))  # type: ignore[union-attr]
    log = installed.workdir / "gunicorn.log"
    with log.open("wb") as output:
        gunicorn.append(
            subprocess.Popen(
                [
                    str(installed.venv / "bin" / "gunicorn"),
                    *("-c", "python:proms.gunicorn_conf", "-w", "1", "-b", f"127.0.0.1:{port}"),
                    # gunicorn 27 opens a control socket at one fixed path; tests run in parallel.
                    *(["--no-control-socket"] if major >= 27 else []),
                    "proms:create_app()",
                ],
                cwd=installed.workdir,
                env=installed.env(**config),
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        )
    deadline = time.monotonic() + 60
    while True:
        assert gunicorn[0].poll() is None, log.read_text()
        try:
            if fetch(port, "/healthz").status == 200:
                break
        except OSError:
            pass  # not listening yet
        assert time.monotonic() < deadline, f"gunicorn did not start:\n{log.read_text()}"
        time.sleep(0.2)

    login = fetch(port, "/login")
    assert login.status == 200, login.text
    stylesheet = re.search(r'<link rel="stylesheet" href="([^"]+)"', login.text)
    assert stylesheet, login.text
    css = fetch(port, stylesheet.group(1))
    assert (css.status, css.content_type.split(";")[0]) == (200, "text/css")
    assert css.body == (CHECKOUT / "static" / "proms.css").read_bytes()

    missing = fetch(port, "/no-such-page")
    assert missing.status == 404
    assert "There is nothing here" in missing.text  # the error page's template was found

    survey = fetch(port, link.removeprefix(f"http://127.0.0.1:{port}"))
    assert survey.status == 200, survey.text
    assert '<html lang="es"' in survey.text
    texts = spanish_welcome_texts()
    assert texts
    for text in texts:
        assert text in survey.text
