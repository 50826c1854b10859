"""PreparedConnection: the same rows, values and stored text as SQLAlchemy's own execution."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    create_engine,
    func,
    insert,
    literal,
    select,
    update,
)

from pinelab.db.base import Money, UTCDateTime
from pinelab.db.engine import JSON_CODEC
from pinelab.db.prepared import PreparedConnection, Rows

METADATA = MetaData()
ITEM = Table(
    "item",
    METADATA,
    Column("id", Integer, primary_key=True),
    Column("name", String(20), nullable=False),
    Column("amount", Money(), nullable=True),
    Column("at", UTCDateTime(), nullable=True),
    Column("data", JSON(), nullable=True),
    Column("live", Boolean(), nullable=False),
)
WITH_DEFAULT = Table(
    "with_default",
    METADATA,
    Column("id", Integer, primary_key=True),
    Column("name", String(20), default=lambda: "made by a Python default"),
)
INSERT = insert(ITEM)
INSERT_RETURNING = insert(ITEM).returning(ITEM.c.id, ITEM.c.amount)
BY_NAME = select(ITEM).where(ITEM.c.name == bindparam("name")).order_by(ITEM.c.id)
UPDATE_BY_ID = update(ITEM).where(ITEM.c.id == bindparam("b_id"))
TOTAL = select(func.coalesce(func.sum(ITEM.c.amount), 0)).where(ITEM.c.live == literal(True))
NAMES_IN = select(ITEM.c.id).where(ITEM.c.name.in_(bindparam("names", expanding=True)))
AT = datetime(2026, 3, 1, 14, 30, 0, 123456, tzinfo=UTC)


def _row(name: str, **values: Any) -> dict[str, Any]:
    return {"name": name, "amount": None, "at": None, "data": None, "live": True} | values


@pytest.fixture
def connection() -> Iterator[Connection]:
    engine = create_engine("sqlite://", **JSON_CODEC)
    METADATA.create_all(engine)
    with engine.connect() as connection, connection.begin():
        yield connection
    engine.dispose()


def _raw(connection: Connection, table: str = "item") -> list[tuple[Any, ...]]:
    return list(connection.exec_driver_sql(f"SELECT * FROM {table} ORDER BY id"))


def test_inserts_store_the_text_sqlalchemy_stores(connection: Connection) -> None:
    values = _row(
        "a",
        amount=Decimal("190.2500"),
        at=AT.astimezone(timezone(timedelta(hours=2))),
        data={"k": [1, "x"], "d": "1.5"},
        live=False,
    )
    connection.execute(INSERT, values)
    PreparedConnection(connection).execute(INSERT, values)
    first, second = _raw(connection)
    assert first[1:] == second[1:]


def test_rows_read_back_as_sqlalchemy_reads_them(connection: Connection) -> None:
    prepared = PreparedConnection(connection)
    prepared.execute(INSERT, _row("a", amount=Decimal("2.5"), at=AT, data={"k": 1}))
    prepared.execute(INSERT, _row("a", live=False))
    ours = prepared.execute(BY_NAME, {"name": "a"})
    assert isinstance(ours, Rows)
    theirs = connection.execute(BY_NAME, {"name": "a"}).all()
    assert [tuple(row) for row in ours] == [tuple(row) for row in theirs]
    first = ours.first()
    assert (first.amount, first.at, first.data, first.live) == (Decimal("2.5"), AT, {"k": 1}, True)
    assert first[1] == "a"
    mapped = prepared.execute(BY_NAME, {"name": "a"}).mappings().all()
    assert mapped == [dict(row._mapping) for row in theirs]
    assert prepared.execute(BY_NAME, {"name": "none"}).first() is None


def test_scalars_returning_and_the_new_id(connection: Connection) -> None:
    prepared = PreparedConnection(connection)
    result = prepared.execute(INSERT, _row("a", amount=Decimal(3)))
    assert result.inserted_primary_key == (1,)
    returned = prepared.execute(INSERT_RETURNING, _row("b", amount=Decimal("4.5"))).first()
    assert (returned.id, returned.amount) == (2, Decimal("4.5"))
    assert prepared.execute(INSERT_RETURNING, _row("c")).scalar_one() == 3
    assert prepared.scalar(TOTAL) == connection.scalar(TOTAL) == Decimal("7.5")
    with pytest.raises(LookupError, match="exactly one row, got 3"):
        prepared.execute(select(ITEM.c.id)).scalar_one()


def test_updates_set_the_columns_their_parameters_name(connection: Connection) -> None:
    prepared = PreparedConnection(connection)
    for name in ("a", "b", "c"):
        prepared.execute(INSERT, _row(name))
    assert prepared.execute(UPDATE_BY_ID, {"b_id": 1, "amount": Decimal(7)}).rowcount == 1
    assert prepared.execute(UPDATE_BY_ID, {"b_id": 2, "name": "bb", "live": False}).rowcount == 1
    many = [{"b_id": 3, "data": [1]}, {"b_id": 9, "data": [2]}]
    assert prepared.execute(UPDATE_BY_ID, many).rowcount == 1
    rows = connection.execute(select(ITEM).order_by(ITEM.c.id)).all()
    assert [(r.name, r.amount, r.live, r.data) for r in rows] == [
        ("a", Decimal(7), True, None),
        ("bb", None, False, None),
        ("c", None, True, [1]),
    ]


def test_what_it_cannot_run_itself_goes_through_sqlalchemy(connection: Connection) -> None:
    prepared = PreparedConnection(connection)
    for name in ("a", "b"):
        prepared.execute(INSERT, _row(name))
    assert [row.id for row in prepared.execute(NAMES_IN, {"names": ["b", "x"]})] == [2]
    prepared.execute(insert(WITH_DEFAULT), {})  # a Python-side default
    assert _raw(connection, "with_default") == [(1, "made by a Python default")]


def test_a_missing_parameter_is_refused_by_name(connection: Connection) -> None:
    with pytest.raises(KeyError, match="'b_id'"):
        PreparedConnection(connection).execute(UPDATE_BY_ID, {"name": "x"})


def test_anything_else_is_the_wrapped_connections(connection: Connection) -> None:
    prepared = PreparedConnection(connection)
    assert prepared.dialect is connection.dialect
    assert prepared.exec_driver_sql("SELECT 41 + 1").scalar() == 42
