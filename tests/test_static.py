"""What a phone downloads: static files cached across pages and compressed, error pages compressed.

The stylesheet is linked with its content hash in the URL and kept a year without asking again;
its response never says `Vary: Cookie` (the survey cookie changes on every page, so a cached copy
that varied by cookie would never be reused). Error pages are compressed like any page, and keep
the security headers and `no-store`. Bytes only; bench/survey_bench.py measures what a browser
actually transfers.
"""

from __future__ import annotations

import gzip
import hashlib
import re
from pathlib import Path

import brotli
import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from proms.auth.models import Role
from proms.security import SECURITY_HEADERS
from tests.helpers import World, login

ROOT = Path(__file__).resolve().parent.parent
STYLESHEET = ROOT / "static" / "proms.css"
ONE_YEAR = 365 * 24 * 3600
STYLESHEET_LINK = re.compile(r'<link rel="stylesheet" href="(/static/proms\.css\?v=([0-9a-f]+))">')


def decoded(response: TestResponse) -> bytes:
    body = response.get_data()
    encoding = response.headers.get("Content-Encoding")
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "br":
        return brotli.decompress(body)
    assert encoding is None, encoding
    return body


def max_age(response: TestResponse) -> int:
    match = re.search(r"max-age=(\d+)", response.headers.get("Cache-Control", ""))
    return int(match.group(1)) if match else 0


def assert_security_headers(response: TestResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, name


def stylesheet_url(client: FlaskClient, path: str) -> str:
    """The stylesheet URL a page links, checked to carry the file's content hash."""
    page = decoded(client.get(path, headers={"Accept-Encoding": "gzip"}))
    match = STYLESHEET_LINK.search(page.decode("utf-8"))
    assert match, f"no stylesheet link on {path}"
    digest = hashlib.sha256(STYLESHEET.read_bytes()).hexdigest()
    assert digest.startswith(match.group(2)), (match.group(2), digest)
    assert len(match.group(2)) >= 12
    return match.group(1)


@pytest.mark.parametrize("path", ["/login", "/s/no-such-link-0123456789abcdef"])
def test_pages_link_the_stylesheet_by_its_content_hash(client: FlaskClient, path: str) -> None:
    stylesheet_url(client, path)


@pytest.mark.parametrize("signed_in", [False, True], ids=["anonymous", "signed-in"])
def test_the_stylesheet_is_kept_a_year_whatever_the_cookies(
    client: FlaskClient, world: World, signed_in: bool
) -> None:
    """Signed in, the session cookie is refreshed on every page; the stylesheet ignores it."""
    page = "/login"
    if signed_in:
        assert login(client, world.user("a", Role.CLINICIAN).email).status_code == 302
        page = "/patients"
    url = stylesheet_url(client, page)
    response = client.get(url, headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert "Cookie" not in response.headers.get("Vary", "")
    assert "Set-Cookie" not in response.headers
    cache_control = response.headers["Cache-Control"]
    assert max_age(response) >= ONE_YEAR
    assert "immutable" in cache_control
    assert "no-store" not in cache_control
    assert "no-cache" not in cache_control
    assert_security_headers(response)


@pytest.mark.parametrize("encoding", ["gzip", "br"])
def test_the_stylesheet_is_compressed_when_the_browser_accepts_it(
    client: FlaskClient, encoding: str
) -> None:
    url = stylesheet_url(client, "/login")
    response = client.get(url, headers={"Accept-Encoding": encoding})
    assert response.status_code == 200
    assert response.headers["Content-Encoding"] == encoding
    assert "Accept-Encoding" in response.headers["Vary"]
    assert int(response.headers["Content-Length"]) == len(response.get_data())
    assert len(response.get_data()) < STYLESHEET.stat().st_size / 2
    assert decoded(response) == STYLESHEET.read_bytes()
    assert response.mimetype == "text/css"


def test_the_stylesheet_is_sent_as_it_is_to_a_browser_that_accepts_no_compression(
    client: FlaskClient,
) -> None:
    response = client.get(stylesheet_url(client, "/login"))
    assert "Content-Encoding" not in response.headers
    assert response.get_data() == STYLESHEET.read_bytes()


def test_an_unversioned_static_url_is_revalidated(client: FlaskClient) -> None:
    """Without the hash the same URL may serve new bytes tomorrow: the browser asks each time."""
    response = client.get("/static/proms.css", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert "no-cache" in response.headers["Cache-Control"]
    assert "immutable" not in response.headers["Cache-Control"]
    assert response.headers.get("ETag")
    assert "Cookie" not in response.headers.get("Vary", "")
    again = client.get(
        "/static/proms.css",
        headers={"Accept-Encoding": "gzip", "If-None-Match": response.headers["ETag"]},
    )
    assert again.status_code == 304
    assert again.get_data() == b""


def test_a_static_url_with_another_files_hash_is_revalidated(client: FlaskClient) -> None:
    """A rolling deploy: an old host asked for the new version must not have its bytes kept."""
    response = client.get("/static/proms.css?v=000000000000")
    assert response.status_code == 200
    assert "immutable" not in response.headers["Cache-Control"]
    assert "no-cache" in response.headers["Cache-Control"]


def test_a_missing_static_file_is_a_404_that_is_not_kept(client: FlaskClient) -> None:
    response = client.get("/static/no-such-file.css?v=0123456789ab")
    assert response.status_code == 404
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("encoding", ["gzip", "br"])
@pytest.mark.parametrize(
    "path", ["/s/q/first", "/s/no-such-link-0123456789abcdef0123456789abcdef01"]
)
def test_a_patient_404_is_compressed_and_protected(
    client: FlaskClient, world: World, path: str, encoding: str
) -> None:
    response = client.get(path, headers={"Accept-Encoding": f"{encoding}, identity;q=0.5"})
    assert response.status_code == 404
    assert response.headers["Content-Encoding"] == encoding
    # no-store: no cache keeps it, so a Vary header would tell nobody anything.
    assert "Vary" not in response.headers
    assert int(response.headers["Content-Length"]) == len(response.get_data())
    assert_security_headers(response)
    assert response.headers["Cache-Control"] == "no-store"
    html = decoded(response).decode("utf-8")
    assert html.startswith("<!doctype html>")
    assert "</html>" in html


def test_an_error_page_is_not_compressed_for_a_browser_that_does_not_accept_it(
    client: FlaskClient,
) -> None:
    response = client.get("/s/q/first")
    assert response.status_code == 404
    assert "Content-Encoding" not in response.headers
    assert response.get_data(as_text=True).startswith("<!doctype html>")


def test_a_redirect_has_no_body_and_only_the_headers_that_act_on_it(
    client: FlaskClient, app: Flask
) -> None:
    """A browser never shows a redirect's "Redirecting..." page, nor applies a page's CSP to it.

    Each patient answer is a POST and a 303: the body (~200 bytes) and the document-only headers
    (CSP, framing, sniffing, opener, permissions: ~350 bytes) are not sent on it.
    """
    response = client.get("/patients")  # signed out: to the sign-in page
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")
    assert response.get_data() == b""
    assert response.headers["Content-Length"] == "0"
    assert response.headers["Referrer-Policy"] == SECURITY_HEADERS["Referrer-Policy"]
    assert response.headers["Cache-Control"] == "no-store"
    for name in SECURITY_HEADERS:
        if name != "Referrer-Policy":
            assert name not in response.headers, name
