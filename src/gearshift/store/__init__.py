"""Decision-record storage: a small protocol, a SQLite implementation and a non-blocking writer."""

from gearshift.store.base import DecisionQuery, DecisionStore
from gearshift.store.sqlite import SQLiteDecisionStore
from gearshift.store.writer import BackgroundWriter

__all__ = ["BackgroundWriter", "DecisionQuery", "DecisionStore", "SQLiteDecisionStore"]
