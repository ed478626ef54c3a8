"""Alembic environment: the URL comes from the proms app config; batch mode for SQLite."""

from __future__ import annotations

import json
from logging.config import fileConfig
from typing import Any

import sqlalchemy as sa
from alembic import context
from sqlalchemy import Connection

from proms.db import Base, UTCDateTime

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

import proms.models  # noqa: E402, F401 - registers every table on the metadata

target_metadata = Base.metadata


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Render our UTC type as the plain column type, so migrations never import proms."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def database_url() -> str:
    """An explicit sqlalchemy.url (`proms db`, tests) wins; else the app's configured database."""
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from proms import ConfigurationError, create_app

    try:
        # Migrating needs no secret key or public address: not the app that serves pages.
        return str(create_app(serving=False).config["SQLALCHEMY_DATABASE_URI"])
    except ConfigurationError as exc:
        raise SystemExit(f"alembic: {exc}") from None


def compare_server_default(
    context: Any,
    inspected_column: Any,
    metadata_column: sa.Column[Any],
    inspected_default: str | None,
    metadata_default: Any,
    rendered_metadata_default: str | None,
) -> bool | None:
    """JSON defaults compared as JSON: PostgreSQL has no `=` for json, so Alembic's own
    comparison fails there. None hands every other column to Alembic."""
    if not isinstance(metadata_column.type, sa.JSON):
        return None

    def parsed(text: str | None) -> object:
        if text is None:
            return None
        text = text.strip().removesuffix("::json").removesuffix("::jsonb").strip("'\"")
        return json.loads(text.replace("''", "'"))

    return parsed(inspected_default) != parsed(rendered_metadata_default)


def configure(connection: Connection | None = None, url: str | None = None) -> None:
    context.configure(
        connection=connection,
        url=url,
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies the table
        compare_type=True,
        compare_server_default=compare_server_default,
        render_item=render_item,
        literal_binds=url is not None,
    )


def run_migrations_offline() -> None:
    configure(url=database_url())
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = sa.create_engine(database_url(), poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
