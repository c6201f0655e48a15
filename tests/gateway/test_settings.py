"""Config validation names the field; model names resolve as documented; records' cheap features."""

from __future__ import annotations

from pathlib import Path

import pytest

from gearshift.cli.common import existing_store_url, parse_since
from gearshift.data.segments import language_of as detect_language
from gearshift.data.segments import length_bucket
from gearshift.errors import ConfigError, ModelNotFoundError
from gearshift.gateway.routing import ModelResolver
from gearshift.gateway.settings import default_settings, load_settings, parse_settings

GOOD = """
[[tiers]]
name = "cheap"
[[tiers.deployments]]
name = "mini"
model = "gpt-4o-mini"
base_url = "https://api.example.com/v1"
api_key_env = "GEARSHIFT_TEST_KEY_NOT_SET"
input_price_per_m = 0.15

[[tiers]]
name = "strong"
[[tiers.deployments]]
model = "gpt-4o"
base_url = "https://api.example.com/v1"

[router]
name = "heuristic"
thresholds = [0.6]
"""


def test_toml_config_loads_and_resolves_models(tmp_path: Path) -> None:
    path = tmp_path / "gearshift.toml"
    path.write_text(GOOD)
    s = load_settings(path)
    assert s.tier_names == ("cheap", "strong") and s.tiers[0].deployments[0].input_price_per_m == 0.15
    r = ModelResolver(s)
    assert r.resolve("gearshift/auto").policy.thresholds == (0.6,)  # type: ignore[union-attr]
    assert r.resolve("router-random-0.3").router.name == "random"  # type: ignore[union-attr]
    assert r.resolve("gpt-4o").tier_index == 1 and r.resolve("mini").kind == "concrete"
    with pytest.raises(ModelNotFoundError):
        r.resolve("router-knn-0.5")  # registered, but an untrained router cannot serve
    with pytest.raises(ModelNotFoundError):
        r.resolve("gpt-4o-mini")  # deployments are addressed by their name
    with pytest.raises(ConfigError, match="GEARSHIFT_TEST_KEY_NOT_SET"):
        s.tiers[0].deployments[0].resolve()


@pytest.mark.parametrize(("patch", "field"), [
    ({"tiers": []}, "tiers"),
    ({"router": {"thresholds": [0.5, 0.7]}}, "router.thresholds"),
    ({"limits": {"max_body_bytes": 0}}, "limits.max_body_bytes"),
    ({"store": {"queue_sise": 3}}, "store.queue_sise"),
    ({"redis": {"retry_s": 0}}, "redis.retry_s"),
])
def test_validation_errors_name_the_field(patch: dict[str, object], field: str) -> None:
    base: dict[str, object] = {"tiers": [
        {"name": "cheap", "deployments": [{"model": "a", "base_url": "http://x/v1"}]},
        {"name": "strong", "deployments": [{"model": "b", "base_url": "http://x/v1"}]},
    ]}
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        parse_settings({**base, **patch})


def test_openai_deployment_needs_a_base_url() -> None:
    with pytest.raises(ConfigError, match=r"tiers\.0\.deployments\.0"):
        parse_settings({"tiers": [{"name": "a", "deployments": [{"model": "m"}]},
                                  {"name": "b", "deployments": [{"model": "n", "provider": "local"}]}]})


def test_default_settings_need_no_key() -> None:
    s = default_settings()
    assert all(d.provider == "local" and d.api_key_env is None for t in s.tiers for d in t.deployments)
    caps = [t.deployments[0].max_tokens for t in s.tiers]
    assert caps[0] is not None and caps[1] is not None and caps[0] < caps[1]


def test_segment_features() -> None:
    assert detect_language("What is the capital of France?") == "en"
    assert detect_language("¿Cuál es la capital de Francia y por qué?") == "es"
    assert detect_language("请解释一下这个函数的作用") == "zh"
    assert detect_language("1234") == "und"
    assert [length_bucket("x" * n) for n in (10, 500, 2000, 9000)] == ["short", "medium", "long", "very_long"]
    assert parse_since("2h", now=10_000.0) == 10_000.0 - 7200
    with pytest.raises(ConfigError):
        parse_since("yesterday")


def test_cli_store_url_prefers_flags_and_refuses_a_missing_sqlite_file(tmp_path: Path) -> None:
    db = tmp_path / "g.sqlite"
    with pytest.raises(ConfigError, match="no gateway store"):
        existing_store_url(db, None)
    db.write_bytes(b"")
    assert existing_store_url(db, None) == f"sqlite:///{db}"
    assert existing_store_url(db, None, store_url="postgresql://u@h/db") == "postgresql://u@h/db"
