"""A local append-only JSONL spool for decision records the store cannot take right now.

When SQLite is locked or the disk is full, the writer appends the batch here (fsync'd, so an
acknowledged record survives a crash) and replays the file into the store once it recovers. The spool
has a byte limit: when it is full, `append` refuses and the gateway answers 503 instead of dropping
records. Replay is idempotent (the store upserts by `request_id`), so a crash mid-replay only repeats.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gearshift.store.base import DecisionStore

log = logging.getLogger(__name__)


class JsonlSpool:
    """One record per line; `max_bytes` bounds the file. Thread-safe (the writer and overflow path share it)."""

    def __init__(self, path: str | Path, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._size = self.path.stat().st_size if self.path.exists() else 0
        self._pending = self._count_lines() if self._size else 0
        self.spooled = 0
        self.replayed = 0
        self.refused = 0

    def _count_lines(self) -> int:
        with self.path.open("rb") as f:
            return sum(1 for line in f if line.strip())

    @property
    def pending(self) -> int:
        """Records waiting for replay."""
        return self._pending

    @property
    def size_bytes(self) -> int:
        return self._size

    @property
    def full(self) -> bool:
        """True from a refused append until the next successful replay empties the file."""
        return self.refused > 0

    def append(self, records: Sequence[Mapping[str, Any]]) -> bool:
        """Durably append all records, or none (False) when they would push the file past `max_bytes`."""
        if not records:
            return True
        data = b"".join(json.dumps(r, separators=(",", ":"), default=str).encode() + b"\n" for r in records)
        with self._lock:
            if self._size + len(data) > self.max_bytes:
                self.refused += len(records)
                return False
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            self._size += len(data)
            self._pending += len(records)
            self.spooled += len(records)
        return True

    def read(self) -> list[dict[str, Any]]:
        """Every intact record; a torn last line (crash mid-write) is skipped with a warning."""
        if not self.path.exists():
            return []
        out: list[dict[str, Any]] = []
        with self.path.open("rb") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except ValueError:
                    log.warning("%s:%d: skipping a torn spool line", self.path, n)
                    continue
                if isinstance(obj, dict):
                    out.append(obj)
        return out

    def replay(self, store: DecisionStore, batch_size: int = 512) -> int:
        """Move every spooled record into `store`, then empty the file; raises (file intact) if the store fails."""
        with self._lock:
            if self._pending == 0 and self._size == 0:
                self.refused = 0  # a batch too big for an empty spool was held in memory and has been written
                return 0
            records = self.read()
            for i in range(0, len(records), batch_size):
                store.append_many(records[i:i + batch_size])
            with self.path.open("wb") as f:
                f.flush()
                os.fsync(f.fileno())
            self._size = 0
            self._pending = 0
            self.replayed += len(records)
            self.refused = 0
        return len(records)
