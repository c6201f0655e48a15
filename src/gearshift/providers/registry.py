"""Provider kinds by name, like the routers' registry: `provider = "NAME"` in a deployment picks one.

A kind is a factory (no arguments: one provider object serves every deployment of its kind) and a settings
model, the pydantic model a `[[tiers.deployments]]` entry of that kind must satisfy (a subclass of
`DeploymentSettings` that adds its own checks). The gateway's tiers, the LLM router (which calls through the
gateway's providers) and the shadow judge all build providers here, so adding Anthropic or Gemini is one
`register_provider` call. Tests register an in-process fake the same way. Factories import their module only
when called: the local provider loads a model, so nothing is built for a kind no deployment uses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gearshift.config import get_env
from gearshift.errors import ConfigError, did_you_mean
from gearshift.providers.base import ChatProvider, Deployment


class DeploymentSettings(BaseModel):
    """One upstream endpoint. `name` (default: `model`) is what clients may ask for directly.

    `provider` names a registered kind; that kind's settings model validates the entry as well."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = None
    provider: str = "openai"
    model: str = Field(min_length=1)
    base_url: str | None = None
    api_key_env: str | None = None
    input_price_per_m: float = Field(default=0.0, ge=0.0)
    output_price_per_m: float = Field(default=0.0, ge=0.0)
    context_window: int | None = Field(default=None, gt=0)
    # time limits per phase, chosen for interactive chat (a reasoning model needs a longer first_byte_timeout_s):
    timeout_s: float = Field(default=60.0, gt=0.0)  # one attempt in all (a stream: until its first content)
    connect_timeout_s: float = Field(default=5.0, gt=0.0)  # TCP (+TLS) connect
    first_byte_timeout_s: float = Field(default=30.0, gt=0.0)  # request sent -> response headers
    idle_timeout_s: float = Field(default=30.0, gt=0.0)  # the longest silence between two chunks of the answer
    max_tokens: int | None = Field(default=None, gt=0)  # cap applied to requests sent here
    # prompt tokens served from the provider's prompt cache, and (Anthropic) written to it; None: input price
    cached_input_price_per_m: float | None = Field(default=None, ge=0.0)
    cache_write_price_per_m: float | None = Field(default=None, ge=0.0)
    api_version: str | None = Field(default=None, min_length=1)  # azure: api-version; anthropic, gemini: optional
    # the largest answer (body or whole stream) read from here (unset: the provider's, 16 MiB over HTTP); past
    # it the request fails with `upstream_response_too_large`, never silently replaced by another's answer
    max_response_bytes: int | None = Field(default=None, gt=0)
    # mid-stream failover (`[reliability] midstream_failover`) continues a cut answer only on a deployment that
    # can continue an assistant prefix: "prefill" (a final assistant message is continued) or "vllm"
    # (`continue_final_message`); "none" never receives a continuation
    continuation: Literal["none", "prefill", "vllm"] = "none"

    @model_validator(mode="after")
    def _check(self) -> DeploymentSettings:
        if self.base_url and not self.base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        kind = _KINDS.get(self.provider)
        if kind is None:
            raise ValueError(f"unknown provider {self.provider!r} ({did_you_mean(self.provider, provider_names())}"
                             f"known: {', '.join(provider_names())})")
        if type(self) is DeploymentSettings and kind.settings is not DeploymentSettings:
            try:  # the kind's own checks, reported as this entry's
                kind.settings.model_validate(self.model_dump(exclude_unset=True))
            except ValidationError as exc:
                raise ValueError("; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())) from None
        return self

    @property
    def display_name(self) -> str:
        return self.name or self.model

    def resolve(self) -> Deployment:
        """The runtime deployment, with the API key read from the named environment variable."""
        key = None
        if self.api_key_env:
            key = get_env(self.api_key_env)
            if key is None:
                raise ConfigError(f"deployment {self.display_name!r}: environment variable "
                                  f"{self.api_key_env} (api_key_env) is not set")
        return Deployment(
            name=self.display_name, provider=self.provider, model=self.model, base_url=self.base_url,
            api_key=key, input_price_per_m=self.input_price_per_m, output_price_per_m=self.output_price_per_m,
            context_window=self.context_window, timeout_s=self.timeout_s,
            cached_input_price_per_m=self.cached_input_price_per_m,
            cache_write_price_per_m=self.cache_write_price_per_m, api_version=self.api_version,
            max_response_bytes=self.max_response_bytes, continuation=self.continuation,
            connect_timeout_s=self.connect_timeout_s, first_byte_timeout_s=self.first_byte_timeout_s,
            idle_timeout_s=self.idle_timeout_s,
        )


class OpenAIDeploymentSettings(DeploymentSettings):
    """An OpenAI-compatible HTTP API: it needs the URL to send to."""

    @model_validator(mode="after")
    def _needs_url(self) -> OpenAIDeploymentSettings:
        if not self.base_url:
            raise ValueError("base_url is required for provider 'openai'")
        return self


class AzureDeploymentSettings(DeploymentSettings):
    """Azure OpenAI: `base_url` is the resource endpoint, `model` the Azure deployment name, and the
    `api-version` query parameter is required by the service."""

    @model_validator(mode="after")
    def _needs_url_and_version(self) -> AzureDeploymentSettings:
        if not self.base_url:
            raise ValueError("base_url (https://RESOURCE.openai.azure.com) is required for provider 'azure'")
        if not self.api_version:
            raise ValueError("api_version (e.g. '2024-10-21') is required for provider 'azure'")
        return self


@dataclass(frozen=True, slots=True)
class ProviderKind:
    factory: Callable[[], ChatProvider]
    settings: type[DeploymentSettings] = DeploymentSettings


def _openai() -> ChatProvider:
    from gearshift.providers.openai_compat import OpenAICompatProvider

    return OpenAICompatProvider()


def _azure() -> ChatProvider:
    from gearshift.providers.azure import AzureOpenAIProvider

    return AzureOpenAIProvider()


def _anthropic() -> ChatProvider:
    from gearshift.providers.anthropic import AnthropicProvider

    return AnthropicProvider()


def _gemini() -> ChatProvider:
    from gearshift.providers.gemini import GeminiProvider

    return GeminiProvider()


def _local() -> ChatProvider:
    from gearshift.providers.local import LocalProvider

    return LocalProvider()


_KINDS: dict[str, ProviderKind] = {
    "openai": ProviderKind(_openai, OpenAIDeploymentSettings),  # any OpenAI-compatible HTTP API
    "azure": ProviderKind(_azure, AzureDeploymentSettings),  # Azure OpenAI: deployment URL, api-version, api-key
    "anthropic": ProviderKind(_anthropic),  # the Messages API (base_url defaults to https://api.anthropic.com)
    "gemini": ProviderKind(_gemini),  # generateContent (base_url defaults to generativelanguage.googleapis.com)
    "local": ProviderKind(_local),  # in-process SmolLM2
}


def register_provider(name: str, factory: Callable[[], ChatProvider],
                      settings: type[DeploymentSettings] = DeploymentSettings) -> None:
    """Make `provider = name` valid in deployments; a second registration of a name replaces the first."""
    _KINDS[name] = ProviderKind(factory, settings)


def unregister_provider(name: str) -> None:
    _KINDS.pop(name, None)


def provider_names() -> tuple[str, ...]:
    return tuple(sorted(_KINDS))


def provider_kind(name: str) -> ProviderKind:
    kind = _KINDS.get(name)
    if kind is None:
        raise ConfigError(f"unknown provider {name!r} ({did_you_mean(name, provider_names())}"
                          f"known: {', '.join(provider_names())})")
    return kind


def build_providers(names: Iterable[str]) -> dict[str, ChatProvider]:
    """One provider per named kind, each built once."""
    return {name: provider_kind(name).factory() for name in sorted(set(names))}
