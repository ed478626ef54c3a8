"""The scoring core can be used without the web app: importing it loads no Flask or SQLAlchemy."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_scoring_core_loads_no_web_or_database_library() -> None:
    code = (
        "import sys, proms.scoring, proms.scoring.batch, proms.scoring.change, "
        "proms.scoring.cohort;"
        "print(','.join(m for m in ('flask', 'sqlalchemy', 'werkzeug', 'wtforms') "
        "if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
