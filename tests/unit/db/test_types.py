"""Column types: UTC timestamps are stored as SQLAlchemy's own text on SQLite, aware elsewhere."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.sqlite.base import DATETIME

from pinelab.db.base import UTCDateTime

SQLITE = sqlite.dialect()
_CORE_TEXT = DATETIME().bind_processor(SQLITE)

aware_datetimes = st.datetimes(  # hypothesis bounds are naive; the values get a zone
    min_value=datetime(1, 1, 2),  # noqa: DTZ001
    max_value=datetime(9999, 12, 30),  # noqa: DTZ001
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
    ),
)


def _sqlite_text(value: datetime | None) -> object:
    processor = UTCDateTime().dialect_impl(SQLITE).bind_processor(SQLITE)
    assert processor is not None
    return processor(value)


@given(aware_datetimes)
def test_sqlite_stores_sqlalchemys_datetime_text_of_the_utc_time(value: datetime) -> None:
    assert _CORE_TEXT is not None
    assert _sqlite_text(value) == _CORE_TEXT(value.astimezone(UTC).replace(tzinfo=None))


def test_sqlite_text_keeps_microseconds_and_pads_the_year() -> None:
    assert _sqlite_text(datetime(2026, 3, 1, 14, 30, tzinfo=UTC)) == "2026-03-01 14:30:00.000000"
    assert _sqlite_text(datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC)) == "0999-01-02 03:04:05.000006"
    assert _sqlite_text(None) is None


def test_naive_datetimes_are_refused_on_every_dialect() -> None:
    naive = datetime(2026, 1, 1)  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="naive"):
        _sqlite_text(naive)
    with pytest.raises(ValueError, match="naive"):
        UTCDateTime().process_bind_param(naive, postgresql.dialect())


def test_postgresql_keeps_sqlalchemys_own_processing() -> None:
    dialect = postgresql.dialect()
    value = datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    assert UTCDateTime().process_bind_param(value, dialect) == datetime(2026, 1, 1, 10, tzinfo=UTC)
