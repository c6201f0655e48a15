"""A bounded, non-blocking writer in front of a DecisionStore.

The request path only calls `submit` (a `put_nowait`); a daemon thread drains the queue in batches.
A full queue drops the record and counts it (`dropped`), never blocking a request. Overflow goes
through `on_overflow`, the hook where a disk spool can be plugged in later.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping
from typing import Any

from gearshift.store.base import DecisionStore

log = logging.getLogger(__name__)

_STOP = object()


class BackgroundWriter:
    """`batch_size` records or `flush_interval_s`, whichever first, make one insert transaction."""

    def __init__(
        self,
        store: DecisionStore,
        *,
        max_queue: int = 10_000,
        batch_size: int = 256,
        flush_interval_s: float = 0.2,
        on_overflow: Callable[[Mapping[str, Any]], bool] | None = None,
    ) -> None:
        self.store = store
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.on_overflow = on_overflow
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max_queue)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self.accepted = 0
        self.written = 0
        self.dropped = 0
        self.failed = 0

    def start(self) -> BackgroundWriter:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="gearshift-decision-writer", daemon=True)
            self._thread.start()
        return self

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    def submit(self, record: Mapping[str, Any]) -> bool:
        """Enqueue without blocking; False when the queue was full (and no spool took the record)."""
        try:
            with self._lock:
                self._queue.put_nowait(record)
                self.accepted += 1
            return True
        except queue.Full:
            if self.on_overflow is not None and self.on_overflow(record):
                return True
            with self._lock:
                self.dropped += 1
            return False

    def _write(self, batch: list[Mapping[str, Any]]) -> None:
        if not batch:
            return
        try:
            self.store.append_many(batch)
            with self._done:
                self.written += len(batch)
                self._done.notify_all()
        except Exception:  # a storage failure must never kill the writer thread
            log.exception("decision store write failed; %d records lost", len(batch))
            with self._done:
                self.failed += len(batch)
                self._done.notify_all()

    def _run(self) -> None:
        stop = False
        while not stop:
            try:
                first = self._queue.get(timeout=self.flush_interval_s)
            except queue.Empty:
                continue
            batch: list[Mapping[str, Any]] = []
            if first is _STOP:
                stop = True
            else:
                batch.append(first)  # type: ignore[arg-type]
            while len(batch) < self.batch_size:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    continue
                batch.append(item)  # type: ignore[arg-type]
            self._write(batch)

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Block until everything accepted so far is written or failed; False on timeout."""
        with self._done:
            target = self.accepted
            return self._done.wait_for(lambda: self.written + self.failed >= target, timeout_s)

    def close(self, timeout_s: float = 5.0) -> None:
        """Drain the queue, stop the thread, close nothing else (the store belongs to the caller)."""
        if self._thread is None:
            return
        try:
            self._queue.put(_STOP, timeout=timeout_s)
        except queue.Full:
            log.warning("decision writer queue full at shutdown")
        self._thread.join(timeout_s)
        self._thread = None
