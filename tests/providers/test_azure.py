"""AzureOpenAIProvider: the deployment URL, the api-version query and the api-key header; OpenAI answers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from pydantic import ValidationError

from gearshift.errors import ProviderError
from gearshift.providers.azure import AzureOpenAIProvider
from gearshift.providers.base import Deployment
from gearshift.providers.registry import DeploymentSettings
from support.fake_formats import FakeAzure

KEY = "azure-key-0123456789abcdef"


@pytest.fixture
def azure_up() -> Iterator[FakeAzure]:
    with FakeAzure(answer="Hello from Azure") as up:
        yield up


@pytest.fixture
async def provider() -> AsyncIterator[AzureOpenAIProvider]:
    p = AzureOpenAIProvider()
    yield p
    await p.aclose()


def dep(up: FakeAzure, model: str = "gpt-4o-mini-prod") -> Deployment:
    return Deployment(name="azure-mini", provider="azure", model=model, base_url=up.root_url, api_key=KEY,
                      api_version="2024-10-21", timeout_s=5.0)


async def test_complete_uses_deployment_url_version_and_api_key(provider: AzureOpenAIProvider,
                                                                azure_up: FakeAzure) -> None:
    result = await provider.complete(dep(azure_up), {"model": "alias", "messages": [{"role": "user", "content": "hi"}]})
    assert result.body["choices"][0]["message"]["content"] == "Hello from Azure"
    sent = azure_up.requests[-1]
    assert sent.path == "/openai/deployments/gpt-4o-mini-prod/chat/completions"
    assert sent.headers["api-key"] == KEY and "Authorization" not in sent.headers


async def test_stream_is_openai_sse(provider: AzureOpenAIProvider, azure_up: FakeAzure) -> None:
    chunks = [c async for c in provider.stream(dep(azure_up), {"model": "a", "messages": [{"role": "user",
                                                                                           "content": "hi"}]})]
    assert chunks[-1].done
    text = "".join((c.data or {}).get("choices", [{}])[0].get("delta", {}).get("content") or ""
                   for c in chunks if c.data and c.data.get("choices"))
    assert text == "Hello from Azure"


async def test_unknown_deployment_is_a_client_error(provider: AzureOpenAIProvider, azure_up: FakeAzure) -> None:
    with pytest.raises(ProviderError) as info:
        await provider.complete(dep(azure_up, "missing"), {"model": "a", "messages": [{"role": "user",
                                                                                       "content": "hi"}]})
    assert info.value.upstream_status == 404 and not info.value.retryable


def test_settings_require_endpoint_and_api_version() -> None:
    with pytest.raises(ValidationError, match="api_version"):
        DeploymentSettings(provider="azure", model="gpt-4o-mini-prod", base_url="https://r.openai.azure.com")
    with pytest.raises(ValidationError, match="base_url"):
        DeploymentSettings(provider="azure", model="gpt-4o-mini-prod", api_version="2024-10-21")
    ok = DeploymentSettings(provider="azure", model="gpt-4o-mini-prod", base_url="https://r.openai.azure.com",
                            api_version="2024-10-21").resolve()
    assert ok.api_version == "2024-10-21"
