"""The backup tests restore over their database: they get one of their own, at the schema head.

Built from the models like the suite's (tests/conftest.py) and stamped at the migrations' head,
so `proms restore` can say where the schema stands, as it does for a migrated database.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command

import proms.models  # noqa: F401 - registers every table on the metadata
from proms.db import Base
from tests.helpers import ScratchDatabases
from tests.test_migrations import alembic_config


@pytest.fixture(scope="session")
def database_url(scratch_databases: ScratchDatabases) -> str:
    url = scratch_databases.new_url()
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    Base.metadata.create_all(engine)
    engine.dispose()
    command.stamp(alembic_config(url), "head")
    return url
