"""A bounded, non-blocking writer in front of a DecisionStore, with an optional disk spool.

The request path only calls `submit` (a deque append); a daemon thread drains the queue in batches. The
thread is woken by the first record after it went idle, then lingers `linger_s` before the next drain, so
under load records share one wake-up and one insert transaction instead of waking the thread each.
When the store fails (locked, disk full), batches go to the `JsonlSpool` and are replayed once the
store takes writes again; when the spool is full too, records are held in memory and `saturated`
turns True so the gateway refuses new requests (503) rather than lose records. Without a spool, a
failed batch is counted in `failed`. A full queue goes through `on_overflow` (the spool when set).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from gearshift.store.base import DecisionStore
from gearshift.store.spool import JsonlSpool

log = logging.getLogger(__name__)

class BackgroundWriter:
    """Everything queued when the thread wakes makes `batch_size`-record insert transactions; `flush_interval_s`
    bounds how long the thread sleeps with nothing queued (spool recovery runs then)."""

    def __init__(
        self,
        store: DecisionStore,
        *,
        max_queue: int = 10_000,
        batch_size: int = 256,
        flush_interval_s: float = 0.2,
        on_overflow: Callable[[Mapping[str, Any]], bool] | None = None,
        spool: JsonlSpool | None = None,
        retry_interval_s: float = 0.5,
        transform: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
        linger_s: float = 0.02,
    ) -> None:
        self.store = store
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.linger_s = min(linger_s, flush_interval_s)
        self.spool = spool
        self.retry_interval_s = retry_interval_s
        self.transform = transform
        if on_overflow is None and spool is not None:
            on_overflow = self._spool_one
        self.on_overflow = on_overflow
        self.max_queue = max_queue
        self._queue: deque[Mapping[str, Any]] = deque()  # append/popleft are atomic: no lock on the request path
        self._wake = threading.Event()  # set by the first record after a drain, flush() and close()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._held: list[Mapping[str, Any]] = []  # neither store nor spool took these; retried
        self._next_retry = 0.0
        self.accepted = 0
        self.written = 0
        self.dropped = 0
        self.failed = 0
        self.store_errors = 0

    def start(self) -> BackgroundWriter:
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="gearshift-decision-writer", daemon=True)
            self._thread.start()
        return self

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def spooled(self) -> int:
        """Records in the spool waiting for the store to recover."""
        return self.spool.pending if self.spool is not None else 0

    @property
    def held(self) -> int:
        return len(self._held)

    @property
    def saturated(self) -> bool:
        """True while records are held in memory because the store and the spool both refuse them."""
        return bool(self._held) or (self.spool is not None and self.spool.full)

    def _spool_one(self, record: Mapping[str, Any]) -> bool:
        assert self.spool is not None
        if self.spool.append([record]):
            with self._done:
                self.accepted += 1
            return True
        return False

    def submit(self, record: Mapping[str, Any]) -> bool:
        """Enqueue without blocking; False when the queue was full (and no spool took the record)."""
        if self.transform is not None:
            record = self.transform(record)
        q = self._queue
        if len(q) < self.max_queue:
            with self._lock:
                q.append(record)
                self.accepted += 1
            if not self._wake.is_set():  # a plain flag read; only the first record after a drain pays the wake-up
                self._wake.set()
            return True
        if self.on_overflow is not None and self.on_overflow(record):
            return True
        with self._lock:
            self.dropped += 1
        return False

    def _count_written(self, n: int) -> None:
        with self._done:
            self.written += n
            self._done.notify_all()

    def _recover(self) -> None:
        """Retry held records, then replay the spool, at most every `retry_interval_s`."""
        waiting = self._held or self.spooled or (self.spool is not None and self.spool.full)
        if not waiting or time.monotonic() < self._next_retry:
            return
        try:
            if self._held:
                self.store.append_many(self._held)
                self._count_written(len(self._held))
                self._held = []
            if self.spool is not None and (self.spool.pending or self.spool.full):
                n = self.spool.replay(self.store)
                self._count_written(n)
                if n:
                    log.info("decision store recovered: replayed %d spooled records", n)
        except Exception as exc:
            self.store_errors += 1
            self._next_retry = time.monotonic() + self.retry_interval_s
            log.debug("decision store still failing: %s", exc)

    def _write(self, batch: list[Mapping[str, Any]]) -> None:
        self._recover()
        if not batch:
            return
        if not (self._held or self.spooled):  # keep order: nothing waiting, so write straight through
            try:
                self.store.append_many(batch)
                self._count_written(len(batch))
                return
            except Exception as exc:  # a storage failure must never kill the writer thread
                self.store_errors += 1
                self._next_retry = time.monotonic() + self.retry_interval_s
                if self.spool is None:
                    log.exception("decision store write failed; %d records lost", len(batch))
                    with self._done:
                        self.failed += len(batch)
                        self._done.notify_all()
                    return
                log.warning("decision store write failed (%s); spooling %d records to %s", exc, len(batch),
                            self.spool.path)
        if self.spool is None:
            self._held.extend(batch)
        elif self._held or not self.spool.append(batch):
            self._held.extend(batch)
            log.error("decision spool %s is full; holding %d records in memory, refusing new requests",
                      self.spool.path, len(self._held))

    def _run(self) -> None:
        q = self._queue
        while True:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            stop = self._stopping
            if not q:
                self._write([])
            while q:  # everything queued now, `batch_size` records per transaction
                batch = [q.popleft() for _ in range(min(self.batch_size, len(q)))]
                self._write(batch)
            if stop:
                break
            if self.linger_s > 0:
                time.sleep(self.linger_s)  # let records gather: one wake-up and transaction per linger, not per record
        self._final()

    def _final(self) -> None:
        """At shutdown: one last recovery try; what the store still refuses stays durable in the spool."""
        self._next_retry = 0.0
        self._recover()
        if self._held and self.spool is not None and self.spool.append(self._held):
            self._held = []
        if self._held:
            log.error("shutting down with %d decision records that neither the store nor the spool took",
                      len(self._held))

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Block until everything accepted so far is in the store (or failed); False on timeout."""
        with self._done:
            target = self.accepted
        self._wake.set()
        with self._done:
            return self._done.wait_for(lambda: self.written + self.failed >= target, timeout_s)

    def close(self, timeout_s: float = 5.0) -> None:
        """Drain the queue, stop the thread, close nothing else (the store belongs to the caller)."""
        if self._thread is None:
            return
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.warning("decision writer still busy at shutdown; %d records queued", len(self._queue))
        self._thread = None
