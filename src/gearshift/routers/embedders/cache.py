"""A disk cache of embeddings so repeated evaluations never re-embed the same text.

One SQLite file per embedder key (``<root>/<key>/vectors.sqlite``) holding float32 blobs keyed by the
sha256 of the text. SQLite rather than npy shards: lookups by hash need no index rebuild, several
processes may read and append at once. Measured for 14k 384-d vectors on a loaded 2-core box: write
2.3 s, read 0.9 s, 29 MB (a rowid table; WITHOUT ROWID was 3x slower and 2x larger with these blobs),
against ~10 minutes to recompute them with e5.
No pickle anywhere: a vector is its raw little-endian float32 bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from gearshift.errors import RouterError
from gearshift.routers.embedding import Embedder

_SAFE_KEY = re.compile(r"[^A-Za-z0-9._=+-]")
_CHUNK = 500
#: Empty file in each key directory whose mtime is the last time the cache was opened.
LAST_USED_MARKER = "last_used"


def text_hash(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def default_embedding_cache_root() -> Path:
    """`config.default_cache_dir()/embeddings`; resolved at call time, never at import."""
    from gearshift.config import default_cache_dir

    return default_cache_dir() / "embeddings"


class EmbeddingCache:
    """Vectors of one embedder (`key`, `dim`), stored under `root/<key>/`."""

    def __init__(self, key: str, dim: int, root: str | Path | None = None) -> None:
        self.key = key
        self.dim = int(dim)
        base = Path(root) if root is not None else default_embedding_cache_root()
        self.path = base / _SAFE_KEY.sub("_", key) / "vectors.sqlite"
        self._conn: sqlite3.Connection | None = None

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("CREATE TABLE IF NOT EXISTS vec (h BLOB PRIMARY KEY, v BLOB NOT NULL)")
            except (OSError, sqlite3.Error) as exc:
                raise RouterError(f"embedding cache {self.path}: cannot open ({exc})") from exc
            with contextlib.suppress(OSError):  # once per open: `gearshift cache prune` evicts by last use
                (self.path.parent / LAST_USED_MARKER).touch()
            self._conn = conn
        return self._conn

    def get_many(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(vectors, found mask); rows of texts not cached are zero."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        found = np.zeros(len(texts), dtype=bool)
        if not texts:
            return out, found
        hashes = [text_hash(t) for t in texts]
        pos: dict[bytes, list[int]] = {}
        for i, h in enumerate(hashes):
            pos.setdefault(h, []).append(i)
        uniq = list(pos)
        db = self._db()
        for start in range(0, len(uniq), _CHUNK):
            chunk = uniq[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            for h, blob in db.execute(f"SELECT h, v FROM vec WHERE h IN ({marks})", chunk):
                vec = np.frombuffer(blob, dtype="<f4")
                if vec.shape[0] != self.dim:
                    continue  # a stale entry of another dimension: recompute
                for i in pos[bytes(h)]:
                    out[i] = vec
                    found[i] = True
        return out, found

    def put_many(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        vecs = np.asarray(vectors, dtype="<f4")
        rows = [(text_hash(t), vecs[i].tobytes()) for i, t in enumerate(texts)]
        db = self._db()
        with db:
            db.executemany("INSERT OR REPLACE INTO vec (h, v) VALUES (?, ?)", rows)

    def __len__(self) -> int:
        (n,) = self._db().execute("SELECT COUNT(*) FROM vec").fetchone()
        return int(n)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def fetch_or_compute(
        self,
        texts: Sequence[str],
        compute: Callable[[list[str]], np.ndarray],
        batch_size: int = 64,
        label: str | None = None,
    ) -> np.ndarray:
        """Cached rows for `texts`, computing and storing the missing ones in batches.

        With `label`, a progress bar shows when more than one batch is missing.
        """
        out, found = self.get_many(texts)
        missing: dict[str, list[int]] = {}
        for i in np.flatnonzero(~found):
            missing.setdefault(texts[int(i)], []).append(int(i))
        todo = list(missing)
        if not todo:
            return out
        if label is None or len(todo) <= batch_size:
            self._compute_into(out, todo, missing, compute, batch_size, None)
            return out
        from gearshift.routers.embedders.progress import progress_bar

        with progress_bar(label, len(todo)) as advance:
            self._compute_into(out, todo, missing, compute, batch_size, advance)
        return out

    def _compute_into(
        self,
        out: np.ndarray,
        todo: list[str],
        missing: dict[str, list[int]],
        compute: Callable[[list[str]], np.ndarray],
        batch_size: int,
        advance: Callable[[int], None] | None,
    ) -> None:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            vecs = np.asarray(compute(batch), dtype=np.float32)
            if vecs.shape != (len(batch), self.dim):
                raise RouterError(f"embedder {self.key} returned shape {vecs.shape} for {len(batch)} texts")
            self.put_many(batch, vecs)
            for text, vec in zip(batch, vecs, strict=True):
                out[missing[text]] = vec
            if advance is not None:
                advance(len(batch))


class CachedEmbedder:
    """Wraps an expensive embedder with an `EmbeddingCache`; same key and dim, so it is transparent."""

    def __init__(self, inner: Embedder, root: str | Path | None = None, batch_size: int = 64) -> None:
        self.inner = inner
        self.cache = EmbeddingCache(inner.key, inner.dim, root)
        self.batch_size = batch_size

    @property
    def key(self) -> str:
        return self.inner.key

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.cache.fetch_or_compute(list(texts), self.inner.embed, self.batch_size, f"embedding ({self.key})")
