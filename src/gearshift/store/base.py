"""The storage seam for decision records.

Records travel as plain JSON-able dicts with a few well-known keys (`request_id`, `time`, `tier`,
`status`) so the store does not depend on the gateway's record class; the gateway validates them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class DecisionQuery:
    """Filters for reading decisions back; every field None means "any". `since` is a Unix time."""

    since: float | None = None
    tier: str | None = None
    status: str | None = None
    limit: int | None = 100


@runtime_checkable
class DecisionStore(Protocol):
    """Append-only storage for one record per gateway request."""

    def append_many(self, records: Sequence[Mapping[str, Any]]) -> int:
        """Store records (each needs `request_id`, `time`); returns how many were written."""
        ...

    def query(self, q: DecisionQuery) -> list[dict[str, Any]]:
        """Newest first."""
        ...

    def count(self, q: DecisionQuery | None = None) -> int: ...

    def close(self) -> None: ...
