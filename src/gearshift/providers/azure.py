"""Azure OpenAI: the OpenAI wire format at a deployment URL, with an `api-version` query and an `api-key` header.

`base_url` is the resource endpoint (`https://RESOURCE.openai.azure.com`), `model` the Azure deployment
name (Azure picks the model from the URL, not the body) and `api_version` the service's dated version.
"""

from __future__ import annotations

from urllib.parse import quote

from gearshift.errors import ProviderError
from gearshift.providers.base import Deployment
from gearshift.providers.openai_compat import OpenAICompatProvider


class AzureOpenAIProvider(OpenAICompatProvider):
    """`ChatProvider` for Azure OpenAI deployments; answers and streams are OpenAI's, so only addressing differs."""

    def __repr__(self) -> str:
        return f"AzureOpenAIProvider(max_response_bytes={self.max_response_bytes})"

    def _url(self, deployment: Deployment, *, stream: bool) -> str:
        if not deployment.base_url or not deployment.api_version:
            raise ProviderError(f"deployment {deployment.name!r} needs base_url and api_version", retryable=False)
        return (f"{deployment.base_url.rstrip('/')}/openai/deployments/{quote(deployment.model, safe='')}"
                f"/chat/completions?api-version={quote(deployment.api_version, safe='')}")

    def _embeddings_url(self, deployment: Deployment) -> str:
        url = self._url(deployment, stream=False)
        return url.replace("/chat/completions?", "/embeddings?", 1)

    def _headers(self, deployment: Deployment, *, stream: bool) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream" if stream else "application/json"}
        if deployment.api_key:
            headers["api-key"] = deployment.api_key
        return headers
