"""Listing and pruning gearshift's on-disk caches (`gearshift cache info|prune`).

Two caches live under the cache root (`config.default_cache_dir()`): fitted routers in `fits/<router>-<hash>/`
and embeddings in `embeddings/<key>/vectors.sqlite`. Nothing else writes there to evict them, so they grow
without bound. An entry's age is the time since its last *use*: loading a fit touches its `manifest.json`,
opening an embedding cache touches its `last_used` marker. A `fits/<name>.tmp-<uuid>` directory is a fit
whose writer crashed; once it is an hour old it is always removable.

Only direct children of `fits/` and `embeddings/` that are real directories (not symlinks) and resolve inside
the root are ever listed or removed, and sizes never follow symlinks, so pruning cannot reach outside the root.
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Kind = Literal["fit", "embeddings", "temp"]
ALL_KINDS: tuple[Kind, ...] = ("fit", "embeddings", "temp")
#: A temp dir younger than this may be a fit being written right now: never removed.
TEMP_GRACE_S = 3600.0
#: Subdirectory of the cache root holding each kind.
KIND_DIRS: dict[Kind, str] = {"fit": "fits", "temp": "fits", "embeddings": "embeddings"}


@dataclass(frozen=True)
class CacheEntry:
    """One removable unit: a fit directory, an embedding key directory, or a leftover temp directory."""

    kind: Kind
    path: Path
    size_bytes: int
    last_used: float  # Unix time

    @property
    def name(self) -> str:
        return self.path.name

    def to_json(self, now: float | None = None) -> dict[str, Any]:
        now = time.time() if now is None else now
        return {"kind": self.kind, "name": self.name, "path": str(self.path), "bytes": self.size_bytes,
                "last_used": self.last_used, "age_s": max(0.0, now - self.last_used)}


def _tree(path: Path) -> Iterable[os.stat_result]:
    """lstat of every file and directory under `path` (itself included); symlinks are not followed."""
    todo = [path]
    while todo:
        d = todo.pop()
        try:
            with os.scandir(d) as it:
                for e in it:
                    try:
                        st = e.stat(follow_symlinks=False)
                    except OSError:
                        continue  # removed while we looked
                    yield st
                    if stat.S_ISDIR(st.st_mode):
                        todo.append(Path(e.path))
        except OSError:
            continue


def _mtime(path: Path) -> float | None:
    try:
        return path.lstat().st_mtime
    except OSError:
        return None


def _entry(kind: Kind, path: Path) -> CacheEntry:
    stats = list(_tree(path))
    size = sum(st.st_size for st in stats if stat.S_ISREG(st.st_mode))
    if kind == "fit":  # `_load_fit` touches the manifest on every use
        last = _mtime(path / "manifest.json")
    elif kind == "embeddings":  # the marker is touched per open; a write since then is a use too
        last = max((st.st_mtime for st in stats if stat.S_ISREG(st.st_mode)), default=None)
    else:
        last = max((st.st_mtime for st in stats), default=None)
    if last is None:
        last = _mtime(path) or 0.0
    return CacheEntry(kind, path, size, last)


def _children(d: Path) -> list[Path]:
    """Direct subdirectories of `d` that are real directories (symlinks are skipped, never followed)."""
    try:
        return sorted(p for p in d.iterdir() if stat.S_ISDIR(p.lstat().st_mode))
    except OSError:
        return []


def _inside(path: Path, root: Path) -> bool:
    """True when `path` is a real directory that is a direct child of one of the root's kind directories."""
    try:
        if not stat.S_ISDIR(path.lstat().st_mode):
            return False
        base = root.resolve()
        return path.resolve().parent in {base / d for d in set(KIND_DIRS.values())}
    except OSError:
        return False


def scan(root: Path) -> list[CacheEntry]:
    """Every cache entry under `root`, most recently used first within each kind."""
    entries: list[CacheEntry] = []
    for d in _children(root / "fits"):
        entries.append(_entry("temp" if ".tmp-" in d.name else "fit", d))
    for d in _children(root / "embeddings"):
        entries.append(_entry("embeddings", d))
    entries = [e for e in entries if _inside(e.path, root)]
    entries.sort(key=lambda e: (ALL_KINDS.index(e.kind), -e.last_used, e.name))
    return entries


def select(entries: Iterable[CacheEntry], *, older_than_s: float | None = None, max_bytes: int | None = None,
           kinds: Collection[Kind] = ALL_KINDS, now: float | None = None) -> list[CacheEntry]:
    """What `prune` would remove, least recently used first; pure, touches no file.

    Among `kinds`: temp dirs older than `TEMP_GRACE_S`, entries unused for more than `older_than_s`, and
    then, with `max_bytes`, the least recently used until the rest of the selected kinds fits in `max_bytes`.
    """
    now = time.time() if now is None else now
    pool = [e for e in entries if e.kind in kinds]
    young_temp = {e.path for e in pool if e.kind == "temp" and now - e.last_used <= TEMP_GRACE_S}
    doomed = {e.path for e in pool if e.kind == "temp" and e.path not in young_temp}
    if older_than_s is not None:
        doomed |= {e.path for e in pool if now - e.last_used > older_than_s and e.path not in young_temp}
    if max_bytes is not None:
        total = sum(e.size_bytes for e in pool if e.path not in doomed)
        for e in sorted(pool, key=lambda e: e.last_used):
            if total <= max_bytes:
                break
            if e.path not in doomed and e.path not in young_temp:
                doomed.add(e.path)
                total -= e.size_bytes
    return sorted((e for e in pool if e.path in doomed), key=lambda e: e.last_used)


def remove(entries: Iterable[CacheEntry], root: Path) -> list[CacheEntry]:
    """Delete `entries` (each re-checked to lie inside `root`); those actually removed."""
    removed = []
    for e in entries:
        if not _inside(e.path, root):
            continue
        shutil.rmtree(e.path, ignore_errors=True)  # does not follow symlinks inside the tree
        if not e.path.exists():
            removed.append(e)
    return removed


def prune(entries: Iterable[CacheEntry], root: Path, *, older_than_s: float | None = None,
          max_bytes: int | None = None, kinds: Collection[Kind] = ALL_KINDS, now: float | None = None,
          dry_run: bool = False) -> list[CacheEntry]:
    """Remove what `select` picks under `root`; the removed entries (with `dry_run`, those that would be)."""
    chosen = select(entries, older_than_s=older_than_s, max_bytes=max_bytes, kinds=kinds, now=now)
    return chosen if dry_run else remove(chosen, root)
