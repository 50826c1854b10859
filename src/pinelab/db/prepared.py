"""Prebuilt Core statements run straight on SQLite's cursor: the paper execution path's SQL.

Executing a paper signal takes ~20 statements in one transaction. Through
`Connection.execute` each costs SQLAlchemy's per-call work (cache key, execution context,
parameter and result set-up), measured at ~150 µs a statement on a slow core against ~10 µs
for sqlite3 itself: most of a paper execution's CPU. `PreparedConnection` compiles each
statement once (per set of parameter names, since an UPDATE's SET follows them) with the
connection's own dialect, and then runs it on the DBAPI cursor, converting the parameters
with the same bind processors SQLAlchemy would use (`Money`, `UTCDateTime`, JSON with the
engine's codec) and the rows with the same result processors. Rows answer by attribute and
by index like SQLAlchemy's, `mappings()` gives dicts, and the result methods the paper path
uses are there (`first`, `all`, `scalar`, `scalar_one`, `rowcount`, `inserted_primary_key`).

What it cannot run the same way goes to the wrapped connection unchanged: statements with
expanding parameters (`IN` of a list given at execution), with Python-side column defaults or
callable parameter values, with RETURNING in an executemany, or whose result columns are not
distinct names. Anything else a caller asks of the connection (`exec_driver_sql`, savepoints)
is the wrapped connection's. Its `before_cursor_execute` listeners hear every statement, as
they would from SQLAlchemy (tests count statements with them). It is for SQLite only, and for
prebuilt statements (module constants, cached builders): compiled forms are kept by statement
identity.
"""

from __future__ import annotations

import sqlite3
from collections import namedtuple
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final, cast

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

__all__ = ["PreparedConnection", "Rows"]

MAX_PREPARED: Final = 512  # compiled forms kept; the paper path has a few dozen
_REQUIRED: Final = object()

Processor = Callable[[Any], Any] | None

# (dialect, statement, parameter names) -> (dialect, statement, compiled form or None); the
# objects are kept with their compiled form, so their ids are not reused meanwhile.
_PREPARED: dict[tuple[int, int, tuple[str, ...] | None], tuple[Any, Any, Any]] = {}


class Rows:
    """The rows of one statement (already fetched), with the result methods the path uses."""

    __slots__ = ("_keys", "_lastrowid", "_rows", "rowcount")

    def __init__(
        self, rows: list[Any], keys: tuple[str, ...], rowcount: int, lastrowid: int | None
    ) -> None:
        self._rows = rows
        self._keys = keys
        self.rowcount = rowcount
        self._lastrowid = lastrowid

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)

    def all(self) -> list[Any]:
        """Return every row."""
        return list(self._rows)

    def first(self) -> Any:
        """Return the first row, or None."""
        return self._rows[0] if self._rows else None

    def scalar(self) -> Any:
        """Return the first column of the first row, or None."""
        return self._rows[0][0] if self._rows else None

    def scalar_one(self) -> Any:
        """Return the first column of the only row; fail unless there is exactly one."""
        if len(self._rows) != 1:
            raise LookupError(f"expected exactly one row, got {len(self._rows)}")
        return self._rows[0][0]

    def mappings(self) -> Mappings:
        """Return the rows as dicts of column name to value."""
        return Mappings([dict(zip(self._keys, row, strict=True)) for row in self._rows])

    @property
    def inserted_primary_key(self) -> tuple[int | None]:
        """Return the id SQLite gave the row just inserted."""
        return (self._lastrowid,)


class Mappings:
    """Rows as dicts."""

    __slots__ = ("_rows",)

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self._rows = rows

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self._rows)

    def first(self) -> dict[str, Any] | None:
        """Return the first row, or None."""
        return self._rows[0] if self._rows else None

    def all(self) -> list[dict[str, Any]]:
        """Return every row."""
        return list(self._rows)


def _result_columns(compiled: SQLCompiler) -> Sequence[Any]:
    if compiled.isinsert or compiled.isupdate or compiled.isdelete:
        return compiled.effective_returning or ()
    return list(cast(Any, compiled.statement).selected_columns)


class _Prepared:
    """One statement compiled for SQLite: its SQL, its parameters' order and conversions."""

    __slots__ = ("binds", "keys", "results", "row", "sql")

    def __init__(self, compiled: SQLCompiler, dialect: Dialect) -> None:
        self.sql = compiled.string
        self.binds: list[tuple[str, Any, Processor]] = []
        for name in compiled.positiontup or ():
            bind = compiled.binds[name]
            default = _REQUIRED if bind.required else bind.value
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            self.binds.append((name, default, processor))
        columns = _result_columns(compiled)
        self.keys: tuple[str, ...] = tuple(column.name for column in columns)
        self.row: Any = namedtuple("Row", self.keys) if self.keys else None
        results = [
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        ]
        self.results: list[Processor] | None = results if any(results) else None

    def parameters(self, values: dict[str, Any]) -> tuple[Any, ...]:
        converted = []
        for name, default, processor in self.binds:
            value = values.get(name, default)
            if value is _REQUIRED:
                raise KeyError(f"a value is required for the parameter {name!r}")
            converted.append(value if processor is None else processor(value))
        return tuple(converted)

    def rows(self, fetched: list[tuple[Any, ...]]) -> list[Any]:
        make, results = self.row._make, self.results
        if results is None:
            return [make(row) for row in fetched]
        return [
            make([value if p is None else p(value) for p, value in zip(results, row, strict=True)])
            for row in fetched
        ]


def _compile(
    statement: ClauseElement, names: tuple[str, ...] | None, dialect: Dialect
) -> _Prepared | None:
    compiled = statement.compile(
        dialect=dialect, column_keys=list(names) if names is not None else None
    )
    if not isinstance(compiled, SQLCompiler) or "POSTCOMPILE" in compiled.string:
        return None  # expanding parameters: rendered per execution by SQLAlchemy
    if compiled.insert_prefetch or compiled.update_prefetch:
        return None  # Python-side column defaults, computed by SQLAlchemy's execution
    if any(compiled.binds[name].callable is not None for name in compiled.positiontup or ()):
        return None
    keys = [getattr(column, "name", None) for column in _result_columns(compiled)]
    if len(set(keys)) != len(keys) or not all(
        isinstance(k, str) and k.isidentifier() for k in keys
    ):
        return None  # rows could not answer by these names
    return _Prepared(compiled, dialect)


class PreparedConnection:
    """A SQLite `Connection` whose prebuilt Core statements run on the DBAPI cursor."""

    def __init__(self, connection: Connection) -> None:
        if connection.dialect.name != "sqlite":
            raise ValueError("PreparedConnection runs statements on SQLite's cursor only")
        driver = connection.connection.driver_connection
        if not isinstance(driver, sqlite3.Connection):
            raise TypeError("PreparedConnection needs the stdlib sqlite3 driver")
        self.connection = connection
        self.dialect = connection.dialect
        self._cursor = driver.cursor()
        # Looked up once: listeners added during the transaction are not told.
        self._listeners = connection.dispatch.before_cursor_execute

    def __getattr__(self, name: str) -> Any:
        return getattr(self.connection, name)

    def execute(
        self, statement: Any, parameters: dict[str, Any] | list[dict[str, Any]] | None = None
    ) -> Any:
        """Run a statement with one set of parameters, or many (a list) for a DML statement."""
        if isinstance(parameters, list):
            return self._execute_many(statement, parameters)
        values = parameters or {}
        prepared = self._prepare(statement, values)
        if prepared is None:
            return self.connection.execute(statement, parameters)
        cursor, row = self._cursor, prepared.parameters(values)
        self._announce(prepared.sql, row, many=False)
        cursor.execute(prepared.sql, row)
        rows = prepared.rows(cursor.fetchall()) if prepared.keys else []
        return Rows(rows, prepared.keys, cursor.rowcount, cursor.lastrowid)

    def scalar(self, statement: Any, parameters: dict[str, Any] | None = None) -> Any:
        """Run a statement and return the first column of its first row, or None."""
        return self.execute(statement, parameters).scalar()

    def _execute_many(self, statement: Any, parameters: list[dict[str, Any]]) -> Any:
        prepared = self._prepare(statement, parameters[0]) if parameters else None
        if prepared is None or prepared.keys:
            return self.connection.execute(statement, parameters)
        rows = [prepared.parameters(p) for p in parameters]
        self._announce(prepared.sql, rows, many=True)
        self._cursor.executemany(prepared.sql, rows)
        return Rows([], (), self._cursor.rowcount, None)

    def _announce(self, sql: str, parameters: Any, *, many: bool) -> None:
        """Tell the connection's `before_cursor_execute` listeners, as SQLAlchemy would."""
        if self._listeners:
            for listener in self._listeners:
                listener(self.connection, self._cursor, sql, parameters, None, many)

    def _prepare(self, statement: Any, parameters: dict[str, Any]) -> _Prepared | None:
        names = tuple(sorted(parameters)) if getattr(statement, "is_dml", False) else None
        key = (id(self.dialect), id(statement), names)
        found = _PREPARED.get(key)
        if found is not None:
            return cast(_Prepared | None, found[2])
        if len(_PREPARED) >= MAX_PREPARED:
            _PREPARED.clear()
        prepared = _compile(statement, names, self.dialect)
        _PREPARED[key] = (self.dialect, statement, prepared)
        return prepared
