"""The router version registry, and the gateway serving the registered champion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gearshift.errors import ConfigError
from gearshift.gateway.routing import ModelResolver
from gearshift.gateway.settings import parse_settings
from gearshift.routers.registry import make_router
from gearshift.store.versions import SQLiteVersionRegistry, parse_ref, versions_dir


def _saved(tmp_path: Path, name: str, flip: bool = False) -> Path:
    router = make_router("knn", embedder="hashing:dim=16", k=3)
    prompts = [f"prompt number {i} about {'math' if i % 2 else 'chat'}" for i in range(20)]
    gaps = np.array([(1.0 if i % 2 else -1.0) * (-1 if flip else 1) for i in range(20)])
    return router.fit(prompts, gaps).save(tmp_path / name)  # type: ignore[attr-defined,no-any-return]


def test_register_numbers_versions_and_resolves_refs(tmp_path: Path) -> None:
    reg = SQLiteVersionRegistry(tmp_path / "gw.sqlite")
    a1 = reg.register("a", "knn", tmp_path / "x", thresholds=[0.4], metrics={"n": 3})
    a2 = reg.register("a", "knn", tmp_path / "y")
    b1 = reg.register("b", "knn", tmp_path / "z")
    assert (a1.ref, a2.ref, b1.ref) == ("a/1", "a/2", "b/1")
    assert reg.get("a").ref == "a/2" and reg.get("a/1").thresholds == (0.4,) and reg.get("a/v1").ref == "a/1"
    assert reg.champion() is None and {v.status for v in reg.all()} == {"challenger"}
    assert reg.update_metrics("a/1", {"ope": {"q": 1}}).metrics == {"n": 3, "ope": {"q": 1}}
    with pytest.raises(ConfigError, match="no champion"):
        reg.get("champion")
    with pytest.raises(ConfigError):
        reg.get("a/9")
    with pytest.raises(ConfigError):
        reg.register("champion", "knn", tmp_path)
    with pytest.raises(ConfigError):
        parse_ref("a/b/c")
    reg.close()


def test_promote_and_rollback_keep_one_champion_and_a_history(tmp_path: Path) -> None:
    reg = SQLiteVersionRegistry(tmp_path / "gw.sqlite")
    for n in ("a", "b", "c"):
        reg.register(n, "knn", tmp_path / n)
    reg.promote("a/1")
    reg.promote("b/1")
    reg.promote("c/1")
    with pytest.raises(ConfigError, match="already"):
        reg.promote("c/1")
    status = {v.ref: v.status for v in reg.all()}
    assert status == {"a/1": "retired", "b/1": "retired", "c/1": "champion"}
    assert reg.rollback().ref == "b/1" and reg.champion().ref == "b/1"  # type: ignore[union-attr]
    assert reg.rollback().ref == "a/1"
    with pytest.raises(ConfigError, match="first champion"):
        reg.rollback()
    hist = reg.history()
    assert [h.new for h in hist] == ["a/1", "b/1", "c/1"] and [h.rolled_back for h in hist] == [False, True, True]
    assert sum(v.status == "champion" for v in reg.all()) == 1
    reg.close()


def test_gateway_serves_the_champion_with_its_thresholds(tmp_path: Path) -> None:
    db = tmp_path / "gw.sqlite"
    reg = SQLiteVersionRegistry(db)
    good = reg.register("r", "knn", _saved(versions_dir(db), "r1"), thresholds=[0.3])
    flipped = reg.register("r", "knn", _saved(versions_dir(db), "r2", flip=True), thresholds=[0.7])
    data = {"tiers": [{"name": "cheap", "deployments": [{"model": "c", "base_url": "http://127.0.0.1:9/v1"}]},
                      {"name": "strong", "deployments": [{"model": "s", "base_url": "http://127.0.0.1:9/v1"}]}],
            "router": {"version": "champion"}, "store": {"path": str(db)}}
    settings = parse_settings(data)
    with pytest.raises(ConfigError, match="no champion"):
        ModelResolver(settings)
    reg.promote(good.ref)
    res = ModelResolver(settings)
    assert res.router.name == "knn" and res.policy.thresholds == (0.3,)
    p_math = res.router.score("prompt number 3 about math").p_strong
    reg.promote(flipped.ref)
    res2 = ModelResolver(settings)  # a restart picks up the new champion
    assert res2.policy.thresholds == (0.7,)
    assert res2.router.score("prompt number 3 about math").p_strong < p_math
    reg.rollback()
    assert ModelResolver(settings).policy.thresholds == (0.3,)
    pinned = parse_settings({**data, "router": {"version": "r/2"}})
    assert ModelResolver(pinned).policy.thresholds == (0.7,)
    reg.close()
