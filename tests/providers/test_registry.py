"""The provider registry: a kind registered by name serves deployments of that kind, settings checks included."""

from __future__ import annotations

import tomllib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from pydantic import ValidationError, model_validator
from starlette.testclient import TestClient

from gearshift.gateway.app import create_app
from gearshift.gateway.settings import parse_settings
from gearshift.providers.base import ChatResult, Deployment, StreamChunk
from gearshift.providers.registry import DeploymentSettings, register_provider, unregister_provider


class EchoProvider:
    """An in-process provider: answers with the deployment's model name, no network."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.closed = False

    async def complete(self, deployment: Deployment, request: dict[str, Any]) -> ChatResult:
        self.calls.append(deployment.name)
        return ChatResult({"id": "x", "object": "chat.completion", "model": deployment.model,
                           "choices": [{"index": 0, "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": f"echo from {deployment.model}"}}],
                           "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}})

    async def stream(self, deployment: Deployment, request: dict[str, Any]) -> AsyncIterator[StreamChunk]:
        yield StreamChunk(None, done=True)

    async def aclose(self) -> None:
        self.closed = True


class EchoSettings(DeploymentSettings):
    """An echo deployment must say how large its context is (a kind's own check)."""

    @model_validator(mode="after")
    def _sized(self) -> EchoSettings:
        if self.context_window is None:
            raise ValueError("context_window is required for provider 'echo'")
        return self


@pytest.fixture
def echo() -> Iterator[list[EchoProvider]]:
    built: list[EchoProvider] = []

    def factory() -> EchoProvider:
        built.append(EchoProvider())
        return built[-1]

    register_provider("echo", factory, EchoSettings)
    yield built
    unregister_provider("echo")


def _toml(provider: str, **extra: str) -> str:
    more = "".join(f"{k} = {v}\n" for k, v in extra.items())
    return f"""
[[tiers]]
name = "cheap"
[[tiers.deployments]]
name = "small"
provider = "{provider}"
model = "echo-small"
{more}
[[tiers]]
name = "strong"
[[tiers.deployments]]
name = "big"
provider = "{provider}"
model = "echo-big"
{more}
[store]
enabled = false
"""


def test_a_registered_fake_serves_the_gateway(echo: list[EchoProvider]) -> None:
    app = create_app(parse_settings(tomllib.loads(_toml("echo", context_window="8000"))))
    assert len(echo) == 1  # one provider object for every deployment of the kind
    with TestClient(app, base_url="http://localhost") as client:  # keyless: loopback Host only
        r = client.post("/v1/chat/completions", json={"model": "big", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "echo from echo-big"
    assert echo[0].calls == ["big"]
    assert echo[0].closed  # the gateway closes what the registry built


def test_the_kind_settings_model_checks_its_deployments(echo: list[EchoProvider]) -> None:
    with pytest.raises(Exception, match="context_window is required for provider 'echo'"):
        parse_settings(tomllib.loads(_toml("echo")))


def test_an_unknown_provider_names_the_known_ones() -> None:
    with pytest.raises(ValidationError,
                       match=r"unknown provider 'bedrock' \(known: anthropic, azure, gemini, local, openai\)"):
        DeploymentSettings(provider="bedrock", model="claude")


def test_a_misspelt_provider_gets_the_closest_name() -> None:
    with pytest.raises(ValidationError, match=r"unknown provider 'opneai' \(did you mean 'openai'\? known: anthropic"):
        DeploymentSettings(provider="opneai", model="gpt")


def test_openai_deployments_still_need_a_base_url() -> None:
    with pytest.raises(ValidationError, match="base_url is required for provider 'openai'"):
        DeploymentSettings(provider="openai", model="gpt")
    assert DeploymentSettings(provider="local", model="smollm2").base_url is None
