"""Database: engine and sessions, the declarative base, column types, migrations."""

from pinelab.db.base import Base, Money, UTCDateTime
from pinelab.db.engine import Database

__all__ = ["Base", "Database", "Money", "UTCDateTime"]
