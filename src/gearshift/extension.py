"""The one seam the gateway's optional parts plug into: the closed loop, tracing (and whatever comes next).

An `Extension` is told about every finished request (`on_decision`, with the record and a `Served` view of the
request), may add HTTP routes, and is started and stopped with the gateway. It is built from a `GatewayView`,
the narrow part of the gateway it may use, so extensions import nothing of `gearshift.gateway` and the
gateway's own types stay checked end to end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # annotations only: extensions and the CLI import this module without starlette or prometheus
    from prometheus_client import CollectorRegistry
    from starlette.routing import BaseRoute

    from gearshift.providers.base import ChatProvider, Deployment
    from gearshift.providers.registry import DeploymentSettings
    from gearshift.store.base import DecisionStore


class Served(Protocol):
    """One finished request as an extension sees it (beside its record)."""

    @property
    def messages(self) -> Sequence[Mapping[str, Any]]: ...

    @property
    def conv_header(self) -> str | None: ...

    @property
    def payload(self) -> Mapping[str, Any] | None: ...

    @property
    def prompt(self) -> str: ...

    @property
    def answer(self) -> str | None: ...

    @property
    def answer_tools(self) -> Sequence[str]:
        """Names of the tool calls in the answer (JSON or streamed)."""
        ...

    def next_turn_key(self) -> str | None:
        """The key this conversation's next turn looks its tier up under (`policy.conversations.next_key` of the
        messages and the answer), computed once per request: the pin and the implicit signals both need it."""
        ...


class KeyCheck(Protocol):
    def check(self, authorization: str | None, scope: str | None = None) -> str | None:
        """The key's id when `authorization` holds a key with `scope`; raises the gateway's auth errors."""
        ...


class GatewayView(Protocol):
    """What an extension may use of the gateway it is built for."""

    @property
    def tiers(self) -> Sequence[Sequence[Deployment]]: ...

    @property
    def tier_names(self) -> tuple[str, ...]: ...

    @property
    def providers(self) -> Mapping[str, ChatProvider]: ...

    @property
    def deployment_settings(self) -> Mapping[str, DeploymentSettings]: ...

    @property
    def store(self) -> DecisionStore | None: ...

    @property
    def keys(self) -> KeyCheck: ...

    @property
    def registry(self) -> CollectorRegistry:
        """The gateway's Prometheus registry: an extension's instruments go here."""
        ...

    def upstream_request(self, payload: Mapping[str, Any], tier_index: int) -> dict[str, Any]:
        """What the gateway would send upstream for `payload` served by tier `tier_index` (its max_tokens cap)."""
        ...


class Extension(Protocol):
    def on_decision(self, record: Mapping[str, Any], served: Served) -> None:
        """One finished request (its record as the store's row). Never raises, never blocks the response."""
        ...

    def routes(self) -> Sequence[BaseRoute]:
        """HTTP routes this extension adds to the gateway's app."""
        ...

    def start(self) -> None:
        """Called once the event loop runs (workers, timers)."""
        ...

    async def aclose(self) -> None:
        """Called once on shutdown, before the providers close."""
        ...
