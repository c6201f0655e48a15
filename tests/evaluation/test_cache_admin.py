"""`gearshift cache info|prune`: listing the fit and embedding caches and evicting them by last use."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from evaluation.eval_synthetic import STRONG, WEAK, make_dataset
from gearshift.cli import main
from gearshift.cli.cache import format_age, parse_duration, parse_size
from gearshift.evaluation.cache_admin import CacheEntry, prune, scan, select
from gearshift.routers.embedders.cache import LAST_USED_MARKER, EmbeddingCache

DAY = 86400.0


def _age(path: Path, seconds: float) -> None:
    """Set the mtime of `path` and everything under it to `seconds` ago (symlinks themselves, not targets)."""
    t = time.time() - seconds
    for p in [path, *path.rglob("*")]:
        os.utime(p, (t, t), follow_symlinks=False)


def _fit(root: Path, name: str, state_bytes: int, age_s: float) -> Path:
    d = root / "fits" / name
    d.mkdir(parents=True)
    (d / "manifest.json").write_bytes(b"x" * 100)
    (d / "state.npz").write_bytes(b"\0" * state_bytes)
    _age(d, age_s)
    return d


def _embeddings(root: Path, key: str, age_s: float) -> Path:
    cache = EmbeddingCache(key, 4, root / "embeddings")
    cache.put_many(["a", "b", "c"], np.ones((3, 4), dtype=np.float32))
    cache.close()
    _age(cache.path.parent, age_s)
    return cache.path.parent


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Two fits (40 d and 2 d unused), two embedding caches (50 d, 1 h) and a crashed fit's 3 h old temp dir."""
    root = tmp_path / "cache"
    _fit(root, "stack-old", 1_000_000, 40 * DAY)
    _fit(root, "knn-recent", 2_000_000, 2 * DAY)
    temp = root / "fits" / "heuristic-abc.tmp-0123"
    temp.mkdir(parents=True)
    (temp / "state.npz").write_bytes(b"\0" * 500)
    _age(temp, 3 * 3600)
    _embeddings(root, "hashing-old", 50 * DAY)
    _embeddings(root, "e5-recent", 3600)
    return root


def _names(root: Path) -> set[str]:
    return {e.name for e in scan(root)}


def _dir_bytes(d: Path) -> int:
    return sum(p.stat().st_size for p in d.rglob("*") if p.is_file())


def _info_json(root: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(["cache", "info", "--cache-dir", str(root), "--json"]) == 0
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    return out


def test_info_lists_every_entry_with_size_and_age(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    info = _info_json(tree, capsys)
    by_name = {e["name"]: e for e in info["entries"]}
    assert {n: e["kind"] for n, e in by_name.items()} == {
        "stack-old": "fit", "knn-recent": "fit", "heuristic-abc.tmp-0123": "temp",
        "hashing-old": "embeddings", "e5-recent": "embeddings"}
    assert by_name["stack-old"]["bytes"] == 1_000_100 and by_name["knn-recent"]["bytes"] == 2_000_100
    assert by_name["heuristic-abc.tmp-0123"]["bytes"] == 500
    emb = tree / "embeddings" / "hashing-old"
    assert (emb / "vectors.sqlite").is_file() and (emb / LAST_USED_MARKER).is_file()
    assert by_name["hashing-old"]["bytes"] == _dir_bytes(emb) > 0
    assert info["total_bytes"] == sum(e["bytes"] for e in info["entries"])
    assert by_name["stack-old"]["age_s"] == pytest.approx(40 * DAY, abs=60)
    assert by_name["e5-recent"]["age_s"] == pytest.approx(3600, abs=60)

    assert main(["cache", "info", "--cache-dir", str(tree)]) == 0
    table = capsys.readouterr().out
    rows = {line.split()[1]: line.split()[2:] for line in table.splitlines() if line.strip().startswith(
        ("fit ", "temp ", "embeddings "))}
    assert rows["stack-old"] == ["1.0", "40d", "0h", "ago"] and rows["knn-recent"] == ["2.0", "2d", "0h", "ago"]
    assert rows["heuristic-abc.tmp-0123"] == ["<0.1", "3h", "0m", "ago"] and len(rows) == 5
    assert "total: 5 entries, 3.0 MB" in table


def test_info_defaults_to_the_gearshift_cache_dir(capsys: pytest.CaptureFixture[str]) -> None:
    root = Path(os.environ["GEARSHIFT_CACHE_DIR"])  # set per test by tests/evaluation/conftest.py
    assert main(["cache", "info"]) == 0
    assert "no cached fits or embeddings" in capsys.readouterr().out
    _fit(root, "stack-x", 10, 0)
    assert main(["cache", "info"]) == 0
    assert "stack-x" in capsys.readouterr().out


def test_prune_older_than_removes_only_old_entries_and_stale_temp(tree: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cache", "prune", "--cache-dir", str(tree), "--older-than", "30d"]) == 0
    assert _names(tree) == {"knn-recent", "e5-recent"}
    assert not (tree / "fits" / "stack-old").exists() and not (tree / "embeddings" / "hashing-old").exists()
    out = capsys.readouterr().out
    assert "removed fit stack-old" in out and "removed 3 entries" in out and "kept 2" in out


def test_prune_max_size_keeps_the_most_recently_used(tree: Path) -> None:
    assert main(["cache", "prune", "--cache-dir", str(tree), "--max-size", "2.1MB"]) == 0
    assert _names(tree) == {"knn-recent", "e5-recent"}  # 2 MB + a few kB: the two older ones had to go


def test_max_size_evicts_least_recently_used_first(tree: Path) -> None:
    entries = scan(tree)
    total = sum(e.size_bytes for e in entries)
    size = {e.name: e.size_bytes for e in entries}
    gone = select(entries, max_bytes=total - 600)  # the temp dir (500 B) alone is not enough
    assert [e.name for e in gone] == ["hashing-old", "heuristic-abc.tmp-0123"]
    gone = select(entries, max_bytes=size["knn-recent"] + size["e5-recent"])
    assert [e.name for e in gone] == ["hashing-old", "stack-old", "heuristic-abc.tmp-0123"]
    assert [e.name for e in select(entries, max_bytes=total)] == ["heuristic-abc.tmp-0123"]  # stale temp: always


def test_young_temp_dir_is_never_removed(tmp_path: Path) -> None:
    temp = tmp_path / "fits" / "stack-x.tmp-1"
    temp.mkdir(parents=True)
    (temp / "state.npz").write_bytes(b"\0" * 1000)
    assert prune(scan(tmp_path), tmp_path, older_than_s=0, max_bytes=0) == []
    assert temp.is_dir()


def test_dry_run_removes_nothing(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = _names(tree)
    assert main(["cache", "prune", "--cache-dir", str(tree), "--older-than", "1s", "--dry-run"]) == 0
    assert _names(tree) == before
    out = capsys.readouterr().out
    assert "would remove fit stack-old" in out and "would remove 5 entries" in out
    assert prune(scan(tree), tree, older_than_s=1, dry_run=True)[0].name == "hashing-old"
    assert _names(tree) == before


def test_fits_and_embeddings_flags_limit_the_kind(tree: Path) -> None:
    assert main(["cache", "prune", "--cache-dir", str(tree), "--older-than", "30d", "--fits"]) == 0
    assert _names(tree) == {"knn-recent", "hashing-old", "e5-recent"}
    assert main(["cache", "prune", "--cache-dir", str(tree), "--max-size", "0", "--embeddings"]) == 0
    assert _names(tree) == {"knn-recent"}


def test_symlinks_are_never_followed_out_of_the_root(tree: Path, tmp_path: Path) -> None:
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "manifest.json").write_text("{}")
    (outside / "data.bin").write_bytes(b"\0" * 5000)
    (tree / "fits" / "stack-evil").symlink_to(outside, target_is_directory=True)
    (tree / "fits" / "stack-old" / "link").symlink_to(outside / "data.bin")
    _age(tree, 100 * DAY)
    os.utime(outside / "data.bin", (0, 0))

    assert "stack-evil" not in _names(tree)
    stack_old = next(e for e in scan(tree) if e.name == "stack-old")
    assert stack_old.size_bytes == 1_000_100  # the link's target is not counted
    assert main(["cache", "prune", "--cache-dir", str(tree), "--older-than", "1d"]) == 0
    assert _names(tree) == set()
    assert (outside / "manifest.json").is_file() and (outside / "data.bin").stat().st_size == 5000
    # a hand-made entry pointing outside the root is refused by prune too
    fake = CacheEntry("fit", tree / "fits" / "stack-evil", 0, 0.0)
    assert prune([fake], tree, older_than_s=0) == [] and outside.is_dir()

    root2 = tmp_path / "cache2"
    root2.mkdir()
    (root2 / "fits").symlink_to(tmp_path / "cache" / "fits", target_is_directory=True)
    _fit(tree, "stack-elsewhere", 10, 100 * DAY)
    assert scan(root2) == []  # a kind dir that links out of the root is not followed


@pytest.mark.parametrize(("args", "needle"), [
    (["--older-than", "30 days"], "--older-than"),
    (["--older-than", "-3d"], "--older-than"),
    (["--max-size", "2XB"], "--max-size"),
    (["--max-size", "lots"], "--max-size"),
    ([], "--older-than"),
])
def test_bad_arguments_exit_2_with_a_message(tree: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                             needle: str) -> None:
    assert main(["cache", "prune", "--cache-dir", str(tree), *args]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and needle in err
    assert len(_names(tree)) == 5


def test_parsers_and_age_format() -> None:
    assert [parse_duration(v) for v in ("90s", "15m", "12h", "30d", "1w", "1.5h")] == [
        90, 900, 43200, 30 * DAY, 7 * DAY, 5400]
    assert [parse_size(v) for v in ("500MB", "2GB", "2gb", "1.5G", "2GiB", "10k", "1234")] == [
        500_000_000, 2_000_000_000, 2_000_000_000, 1_500_000_000, 2 * 1024**3, 10_000, 1234]
    assert [format_age(s) for s in (40, 7 * 60, 5 * 3600 + 12 * 60, 3 * DAY + 4 * 3600 + 59)] == [
        "40s", "7m", "5h 12m", "3d 4h"]


def test_opening_an_embedding_cache_refreshes_its_last_use(tree: Path) -> None:
    old = next(e for e in scan(tree) if e.name == "hashing-old")
    assert time.time() - old.last_used > 49 * DAY
    cache = EmbeddingCache("hashing-old", 4, tree / "embeddings")
    _, found = cache.get_many(["a"])  # a read only: the marker alone records the use
    cache.close()
    assert found.all()
    marker = tree / "embeddings" / "hashing-old" / LAST_USED_MARKER
    assert time.time() - marker.stat().st_mtime < 60
    assert time.time() - next(e for e in scan(tree) if e.name == "hashing-old").last_used < 60


def test_loading_a_cached_fit_refreshes_its_last_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gearshift.evaluation.runner import fit_router
    from gearshift.routers.heuristic import HeuristicRouter
    from gearshift.routers.registry import make_router

    train, fits = make_dataset(80), tmp_path / "fits"
    fit_router(make_router("heuristic"), train, STRONG, WEAK, progress=False, fit_cache=fits)
    (entry,) = scan(tmp_path)
    assert entry.kind == "fit" and entry.name.startswith("heuristic-")
    _age(entry.path, 45 * DAY)
    inode = entry.path.stat().st_ino

    def no_refit(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the cached fit should have been loaded")

    monkeypatch.setattr(HeuristicRouter, "fit", no_refit)
    router = make_router("heuristic")
    fit_router(router, train, STRONG, WEAK, progress=False, fit_cache=fits)
    assert router.is_fitted() and entry.path.stat().st_ino == inode
    (again,) = scan(tmp_path)
    assert time.time() - again.last_used < 60
    assert prune(scan(tmp_path), tmp_path, older_than_s=30 * DAY) == []
