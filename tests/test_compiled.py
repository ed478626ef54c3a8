"""What the apps of a test run share (tests/compiled.py) is what each would have compiled itself."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from flask import Flask
from jinja2 import Environment

from proms.db import db
from tests.compiled import WERKZEUG_COMPILE_BUILDER, SharedStatements, TemplateBytecode


def test_every_url_builder_is_the_one_werkzeug_compiles(app: Flask) -> None:
    rules = list(app.url_map.iter_rules())
    assert len(rules) > 50
    for rule in rules:
        for bound, append_unknown in ((rule._build, False), (rule._build_unknown, True)):
            shared = bound.__func__  # type: ignore[attr-defined]
            fresh = WERKZEUG_COMPILE_BUILDER(rule, append_unknown)
            assert shared.__code__ == fresh.__code__, rule.rule
            assert shared.__defaults__ == fresh.__defaults__, rule.rule
            assert bound.__self__ is rule  # bound to its own rule (and so its converters)


def test_a_template_loaded_from_the_shared_bytecode_is_the_one_jinja_compiles(
    make_app: Callable[..., Flask],
) -> None:
    def environment(cache: TemplateBytecode | None) -> Environment:
        app = make_app()
        app.jinja_env.bytecode_cache = cache
        return app.jinja_env

    cache = TemplateBytecode()
    first, second, fresh = environment(cache), environment(cache), environment(None)
    names = [name for name in first.list_templates() if name.endswith(".html")]
    assert len(names) > 50
    for name in names:
        first.get_template(name)
    assert len(cache.code) == len(names)
    for name in names:
        loaded, compiled = second.get_template(name), fresh.get_template(name)
        assert loaded.root_render_func.__code__ == compiled.root_render_func.__code__, name
        assert set(loaded.blocks) == set(compiled.blocks), name
        for block, render in loaded.blocks.items():
            assert render.__code__ == compiled.blocks[block].__code__, (name, block)


def test_a_template_edited_since_is_compiled_again(tmp_path: Path) -> None:
    from jinja2 import FileSystemLoader

    cache = TemplateBytecode()

    def render(x: int) -> str:
        environment = Environment(
            loader=FileSystemLoader(tmp_path), bytecode_cache=cache, autoescape=True
        )
        return environment.get_template("page.html").render(x=x)

    (tmp_path / "page.html").write_text("one {{ x }}")
    assert render(1) == "one 1"
    (tmp_path / "page.html").write_text("two {{ x }}")
    assert render(2) == "two 2"


def test_apps_on_one_database_share_compiled_statements_and_get_the_same_sql(
    make_app: Callable[..., Flask], shared_statements: SharedStatements
) -> None:
    statement = sa.select(sa.literal_column("1").label("x")).where(sa.literal(2) > 1)
    compiled = []
    for app in (make_app(), make_app()):
        with app.app_context():
            assert db.engine._compiled_cache is shared_statements
            with db.engine.connect() as connection:
                result = connection.execute(statement)
                assert result.scalar_one() == 1
                compiled.append(result.context.compiled)
                assert str(result.context.compiled) == str(
                    statement.compile(dialect=connection.dialect)
                )
    assert compiled[1] is compiled[0]  # the second app's engine found the first one's


def test_dialects_with_other_settings_do_not_share(tmp_path: Path) -> None:
    shared = SharedStatements()
    statement = sa.select(sa.literal(1).label("x"))
    sql = []
    for paramstyle in ("qmark", "named"):
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'x.sqlite3'}", paramstyle=paramstyle)
        engine._compiled_cache = shared
        with engine.connect() as connection:
            sql.append(str(connection.execute(statement).context.compiled))
        engine.dispose()
    assert sql[0] != sql[1]  # "?" and ":param_1"
    assert len(shared) == 2
