"""What every app of a test run compiles the same way, compiled once per run.

Each test builds apps of its own (`make_app`), and each new app compiled again what is the same
for all of them: werkzeug turns each of the ~690 URL rules into two Python functions (url_for's
builders, about 70 ms an app), Jinja parses and compiles every template an app renders the
first time it renders it (tens of milliseconds a page), and SQLAlchemy compiles every statement
again for each new engine (its cache is the engine's; about a third of a typical test's time).
None of them holds any state of a test:

- `share_url_builders` keeps werkzeug's builder functions by what they are generated from (the
  rule, its parsed parts, its defaults as the rule's converters write them, `append_unknown`),
  so a rule equal to one compiled before gets the same function. The function has no globals or
  closure; werkzeug binds it to each rule (`__get__`), and it reaches the rule's converters
  through the rule it is bound to.
- `TemplateBytecode` is a Jinja bytecode cache (Jinja's own mechanism, `bytecode_cache`) kept in
  memory for the run: a template is compiled once, and an app that renders it again loads the
  code into its own environment. The source's checksum is checked on every load (an edited
  template is compiled again) and the key includes every environment setting the compiled code
  depends on.
- `SharedStatements` is a compiled-statement cache (SQLAlchemy's `compiled_cache`, a mapping
  it only reads and fills) for the apps' engines. SQLAlchemy keys each statement by the dialect
  object, so a new engine never finds one; here the dialect object in the key is replaced by
  its class and its settings (every plain value of the initialised dialect: server version,
  default schema, paramstyle, ...; of its helper objects, their classes). A compiled statement
  is immutable and SQLAlchemy already shares one between connections and threads; engines on
  the same database with the same settings share them here.

Nothing else is shared: each app keeps its own config, extensions, engine, connections, caches
and rate limits. tests/test_compiled.py checks what each share returns against a fresh compile.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from enum import Enum
from types import BuiltinFunctionType, FunctionType, ModuleType
from typing import Any

from jinja2 import Environment
from jinja2.bccache import Bucket, BytecodeCache
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import Compiled
from sqlalchemy.util import LRUCache
from werkzeug.routing.rules import Rule

Builder = Callable[..., tuple[str, str]]

# werkzeug's own, kept for tests/test_compiled.py to compare with.
WERKZEUG_COMPILE_BUILDER = Rule._compile_builder


def builder_key(rule: Rule, append_unknown: bool) -> tuple[Any, ...]:
    """Everything werkzeug's `Rule._compile_builder` reads to generate the builder."""
    defaults = rule.defaults or {}
    converters = rule._converters  # the rule's dynamic parts (compile() fills them)
    return (
        append_unknown,
        rule.rule,  # the function's name
        tuple(rule._trace),  # the parts, static or dynamic, of the domain and the path
        tuple(
            (name, converters[name].to_url(value) if name in converters else None)
            for name, value in defaults.items()
        ),
    )


@contextmanager
def share_url_builders() -> Iterator[dict[tuple[Any, ...], Builder]]:
    """Meanwhile, a URL rule equal to one compiled before reuses its builder functions."""
    original = WERKZEUG_COMPILE_BUILDER
    builders: dict[tuple[Any, ...], Builder] = {}

    def compile_builder(self: Rule, append_unknown: bool = True) -> Builder:
        key = builder_key(self, append_unknown)
        builder = builders.get(key)
        if builder is None:
            builder = builders[key] = original(self, append_unknown)
        return builder

    Rule._compile_builder = compile_builder  # type: ignore[method-assign]
    try:
        yield builders
    finally:
        Rule._compile_builder = original  # type: ignore[method-assign]


def environment_key(environment: Environment) -> str:
    """The settings of a Jinja environment that its compiled templates depend on."""
    autoescape = environment.autoescape
    if callable(autoescape):
        function = getattr(autoescape, "__func__", autoescape)
        autoescape = f"{function.__module__}.{function.__qualname__}"
    settings = (
        sorted(environment.extensions),
        environment.block_start_string,
        environment.block_end_string,
        environment.variable_start_string,
        environment.variable_end_string,
        environment.comment_start_string,
        environment.comment_end_string,
        environment.line_statement_prefix,
        environment.line_comment_prefix,
        environment.trim_blocks,
        environment.lstrip_blocks,
        environment.newline_sequence,
        environment.keep_trailing_newline,
        environment.optimized,
        environment.is_async,
        environment.finalize is not None,
        autoescape,
        getattr(environment, "newstyle_gettext", None),
        type(environment).__qualname__,
        environment.code_generator_class.__qualname__,
    )
    return hashlib.sha1(repr(settings).encode(), usedforsecurity=False).hexdigest()


class TemplateBytecode(BytecodeCache):
    """Compiled templates in memory, for every Jinja environment of the run."""

    def __init__(self) -> None:
        self.code: dict[str, bytes] = {}

    def get_bucket(
        self, environment: Environment, name: str, filename: str | None, source: str
    ) -> Bucket:
        key = f"{self.get_cache_key(name, filename)}-{environment_key(environment)}"
        bucket = Bucket(environment, key, self.get_source_checksum(source))
        self.load_bytecode(bucket)
        return bucket

    def load_bytecode(self, bucket: Bucket) -> None:
        code = self.code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)  # dropped when the checksum differs

    def dump_bytecode(self, bucket: Bucket) -> None:
        self.code[bucket.key] = bucket.bytecode_to_string()


# A dialect's settings as they are; anything else in it is a helper object of its own.
_PLAIN = (str, int, float, bool, bytes, tuple, frozenset, type(None), type, ModuleType)
_PLAIN += (FunctionType, BuiltinFunctionType, Enum)


def dialect_key(dialect: Dialect) -> tuple[Any, ...]:
    """A dialect's class and settings: equal for two engines that compile alike.

    The helpers (identifier preparer, type compiler) are made from the class and the settings;
    their classes are in the key too. Values a memoized property cached in the dialect (its
    statement cache support, type memos, ...) are left out: they follow from the rest, and they
    appear as it compiles, so the key would change between looking a statement up and storing it.
    """
    settings = tuple(
        (name, value if isinstance(value, _PLAIN) else type(value))
        for name, value in sorted(vars(dialect).items())
        if not _memoized(type(dialect), name)
    )
    return (type(dialect), settings)


@functools.cache
def _memoized(cls: type, name: str) -> bool:
    """Whether `name` is a property of the class that caches its value in the instance (a
    descriptor without __set__, other than a method)."""
    descriptor = inspect.getattr_static(cls, name, None)
    kind = type(descriptor)
    return (
        hasattr(kind, "__get__")
        and not hasattr(kind, "__set__")
        and not isinstance(descriptor, FunctionType)
    )


class SharedStatements(MutableMapping[Any, Compiled]):
    """SQLAlchemy's compiled statements for every engine of the run, by dialect settings."""

    def __init__(self, size: int = 10_000) -> None:
        self.statements: LRUCache[Any, Compiled] = LRUCache(size)

    @staticmethod
    def shared_key(key: Any) -> Any:
        # (dialect, statement's cache key, column keys, schema translation?, executemany?)
        return (dialect_key(key[0]), *key[1:])

    def __getitem__(self, key: Any) -> Compiled:
        return self.statements[self.shared_key(key)]

    def get(self, key: Any, default: Any = None) -> Any:
        return self.statements.get(self.shared_key(key), default)

    def __setitem__(self, key: Any, value: Compiled) -> None:
        self.statements[self.shared_key(key)] = value

    def __delitem__(self, key: Any) -> None:
        del self.statements[self.shared_key(key)]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.statements)

    def __len__(self) -> int:
        return len(self.statements)
