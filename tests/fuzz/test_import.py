"""The enrollment import (a CSV upload, its preview, the confirmation), fuzzed.

Files are generated from a clean row whose cells are kept, replaced with arbitrary text, or left
out, under a header whose columns are shuffled, repeated, dropped or unknown; or they are
arbitrary bytes (invalid UTF-8, NUL, a byte order mark, no line ends). Properties: never a server
error; the upload and its preview change nothing; a confirmation changes rows only when it
imports (303), and one whose signed payload was tampered with imports nothing.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re

from flask import Flask
from hypothesis import given, note
from hypothesis import strategies as st

from proms.admin.importer import COLUMNS
from tests.fuzz.harness import LEAK_MARKERS, changed_tables, fingerprint, form_for
from tests.fuzz.settings import scaled
from tests.fuzz.targets import admin
from tests.fuzz.values import byte_value, text_value
from tests.fuzz.world import FuzzWorld
from tests.helpers import patient_today

PAYLOAD_RE = re.compile(r'name="payload" type="hidden" value="([^"]+)"')


def _clean_row(fw: FuzzWorld, n: int) -> dict[str, str]:
    anchor = patient_today(fw.patient) + dt.timedelta(days=3)
    return {
        "mrn": f"FZ{n}",
        "given_name": "Ann",
        "family_name": "Lee",
        "birth_date": "1970-01-31",
        "email": f"fz{n}@example.org",
        "phone": "",
        "timezone": "America/New_York",
        "language": "en",
        "protocol": fw.world.protocol_a.slug,
        "anchor_date": anchor.isoformat(),
    }


@st.composite
def csv_files(draw: st.DrawFn, fw: FuzzWorld) -> bytes:
    if draw(st.integers(0, 5), label="kind") == 0:
        return draw(st.one_of(byte_value, st.binary(max_size=2000)), label="raw file")
    columns = list(COLUMNS)
    how = draw(st.sampled_from(["as is", "shuffled", "dropped", "extra", "repeated"]))
    if how == "shuffled":
        columns = draw(st.permutations(columns))
    elif how == "dropped":
        columns = [c for c in columns if draw(st.booleans(), label=f"keep {c}")]
    elif how == "extra":
        columns.append(draw(text_value, label="unknown column"))
    elif how == "repeated":
        columns.append(draw(st.sampled_from(columns), label="repeated column"))
    rows = []
    for n in range(draw(st.integers(0, 4), label="rows")):
        clean = _clean_row(fw, n)
        row = []
        for column in columns:
            cell = clean.get(column, "")
            if draw(st.integers(0, 3), label=f"fuzz {column}") == 0:
                cell = draw(text_value, label=column)
            row.append(cell)
        if draw(st.integers(0, 6), label="ragged") == 0:
            row = row[: draw(st.integers(0, len(row)))]
        rows.append(row)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    writer.writerows(rows)
    text = out.getvalue()
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "utf-16", "latin-1"]))
    # Under 400 KB: werkzeug's test client spools a larger multipart body to a temporary file
    # it never closes. The importer's own 1 MB limit is tests/admin/test_import.py's.
    return text.encode(encoding, "replace")[:400_000]


def test_a_generated_import_never_fails_and_imports_only_when_confirmed(
    app: Flask, fuzz_world: FuzzWorld
) -> None:
    app.config["PROPAGATE_EXCEPTIONS"] = True
    client = admin(app, fuzz_world)
    form = form_for(client, "/import", "/import")
    token = form.token()
    saved = {"rows": fingerprint()}

    @scaled(3)
    @given(data=st.data())
    def upload(data: st.DataObject) -> None:
        content = data.draw(csv_files(fuzz_world), label="file")
        name = data.draw(st.sampled_from(["patients.csv", "x", "", "../../a.csv"]), label="name")
        note(f"{name!r}: {content[:2000]!r}")
        fields = {"csrf_token": token, "file": (io.BytesIO(content), name)}
        for extra in form.fields:
            if extra.name not in fields and extra.values:
                fields[extra.name] = extra.values[0]
        preview = client.post("/import", data=fields)
        body = preview.get_data(as_text=True)
        assert preview.status_code < 500, preview.status_code
        assert not any(marker in body for marker in LEAK_MARKERS)
        after = fingerprint()
        assert not changed_tables(saved["rows"], after), "a preview changed saved rows"
        found = PAYLOAD_RE.search(body)
        if found is None:
            return
        payload = found.group(1)
        if data.draw(st.booleans(), label="tamper"):
            cut = data.draw(st.integers(0, len(payload)), label="where")
            tampered = payload[:cut] + data.draw(st.text(max_size=3), label="with") + payload[cut:]
            if tampered != payload:
                refused = client.post("/import", data={"csrf_token": token, "payload": tampered})
                assert refused.status_code == 400, refused.status_code
                assert not changed_tables(saved["rows"], fingerprint())
        confirmed = client.post("/import", data={"csrf_token": token, "payload": payload})
        assert confirmed.status_code in (303, 400), confirmed.status_code
        after = fingerprint()
        if confirmed.status_code != 303:
            assert not changed_tables(saved["rows"], after)
        saved["rows"] = after

    upload()
