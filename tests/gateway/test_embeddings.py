"""`POST /v1/embeddings`: passed through to an `[[embeddings]]` deployment (OpenAI or Azure), no routing, recorded
with tokens and cost, under the key's limits; the OpenAI SDK as the client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from gateway.harness import GatewayServer, serve
from gearshift.errors import ConfigError
from gearshift.gateway.settings import hash_key, parse_settings
from gearshift.store.base import DecisionQuery
from gearshift.store.sqlite import SQLiteDecisionStore
from support.fake_formats import FakeAzure, FakeEmbeddings
from support.fake_upstream import Behaviour, FakeUpstream

KEY = "gs-embed-key-0123456789"


@pytest.fixture
def gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[GatewayServer, FakeEmbeddings,
                                                                                 FakeAzure]]:
    monkeypatch.setenv("TEST_EMBED_KEY", "sk-embed-0123456789")
    with FakeUpstream() as chat, FakeEmbeddings() as emb, FakeAzure(deployments=("te3-prod",)) as az:
        server = serve(parse_settings({
            "tiers": [{"name": "cheap", "deployments": [{"name": "a", "model": "a", "base_url": chat.base_url}]},
                      {"name": "strong", "deployments": [{"name": "b", "model": "b", "base_url": chat.base_url}]}],
            "embeddings": [
                {"name": "embed-small", "provider": "openai", "model": "text-embedding-3-small",
                 "base_url": emb.base_url, "api_key_env": "TEST_EMBED_KEY", "input_price_per_m": 0.02},
                {"name": "embed-azure", "provider": "azure", "model": "te3-prod", "base_url": az.root_url,
                 "api_version": "2024-10-21", "api_key_env": "TEST_EMBED_KEY"}],
            "router": {"name": "heuristic", "thresholds": [0.5]},
            "store": {"path": str(tmp_path / "d.sqlite")},
            "auth": {"keys": [{"id": "app", "sha256": hash_key(KEY), "rpm": 3}]},
        }, "test"))
        yield server, emb, az
        server.stop()


def rows(server: GatewayServer) -> list[dict[str, Any]]:
    server.flush()
    store = SQLiteDecisionStore(server.gateway.settings.store.path)
    try:
        return sorted(store.query(DecisionQuery(limit=None)), key=lambda r: r["time"])
    finally:
        store.close()


def test_embeddings_pass_through_and_are_recorded(gateway: tuple[GatewayServer, FakeEmbeddings, FakeAzure]) -> None:
    server, emb, az = gateway
    client = openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0)
    r = client.embeddings.create(model="embed-small", input=["hello world", "bye"], dimensions=3)
    assert [d.embedding for d in r.data] == [[11.0, 0.5, -0.5], [3.0, 0.5, -0.5]]
    sent = emb.requests[-1]
    assert sent.json["model"] == "text-embedding-3-small" and sent.json["dimensions"] == 3
    assert sent.headers["Authorization"] == "Bearer sk-embed-0123456789"
    azure = client.embeddings.create(model="embed-azure", input="hi")
    assert len(azure.data) == 1 and az.requests[-1].path == "/openai/deployments/te3-prod/embeddings"
    first, second = rows(server)
    assert first["deployment"] == "embed-small" and first["tier"] is None and first["tokens_in"] == 3
    assert first["cost_usd"] == pytest.approx(3 * 0.02 / 1e6) and first["api_key_id"] == "app"
    assert second["deployment"] == "embed-azure" and second["status"] == "ok"


def test_unknown_model_upstream_errors_and_rate_limit(gateway: tuple[GatewayServer, FakeEmbeddings,
                                                                     FakeAzure]) -> None:
    server, emb, _ = gateway
    client = openai.OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0)
    with pytest.raises(openai.NotFoundError, match="embed-small, embed-azure"):
        client.embeddings.create(model="a", input="x")  # a chat deployment is not an embeddings one
    emb.script(Behaviour.status_code(503))
    with pytest.raises(openai.APIStatusError) as upstream:
        client.embeddings.create(model="embed-small", input="x")
    assert upstream.value.status_code == 502
    with pytest.raises(openai.RateLimitError):
        for _ in range(5):
            client.embeddings.create(model="embed-small", input="x")
    assert rows(server)[1]["attempts"][0]["upstream_status"] == 503


def test_only_openai_compatible_kinds_can_embed() -> None:
    with pytest.raises(ConfigError, match="provider must be openai or azure"):
        parse_settings({"tiers": [{"name": "c", "deployments": [{"name": "a", "model": "a", "base_url": "http://x"}]},
                                  {"name": "s", "deployments": [{"name": "b", "model": "b", "base_url": "http://x"}]}],
                        "embeddings": [{"name": "e", "provider": "anthropic", "model": "m"}],
                        "router": {"thresholds": [0.5]}}, "test")
