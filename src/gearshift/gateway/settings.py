"""The gateway's one configuration file (TOML), validated with pydantic.

Upstream base URLs and API keys come only from here (keys as environment-variable *names*, resolved
through `gearshift.config.get_env`), never from a request. With no file, `default_settings()` serves
the in-process SmolLM2 model on both tiers with the heuristic router, so the demo needs no API key:
cheap answers with at most 128 new tokens, strong with 512.
"""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from gearshift.closed_loop.loop_settings import ShadowSettings, SignalSettings, SLOSettings
from gearshift.errors import ConfigError, did_you_mean
from gearshift.gateway.dashboard.settings import DashboardSettings
from gearshift.policy.settings import SEGMENT_FIELDS as SEGMENT_FIELDS
from gearshift.policy.settings import SEGMENT_KEY as SEGMENT_KEY
from gearshift.policy.settings import ExperimentSettings as ExperimentSettings
from gearshift.policy.settings import ExplorationSettings as ExplorationSettings
from gearshift.policy.settings import GateSettings as GateSettings
from gearshift.policy.settings import LLMRouterSettings as LLMRouterSettings
from gearshift.policy.settings import RouterSettings as RouterSettings
from gearshift.policy.settings import RouteSettings as RouteSettings
from gearshift.policy.settings import Strict as _Strict
from gearshift.providers.registry import DeploymentSettings as DeploymentSettings
from gearshift.store.settings import StoreSettings as StoreSettings
from gearshift.store.settings import default_store_path as default_store_path
from gearshift.tracing.settings import TracingSettings

LOCAL_MODEL = "smollm2-135m-instruct"


class TierSettings(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    deployments: list[DeploymentSettings] = Field(min_length=1)


class CascadeSettings(BaseModel):
    """Passed as-is to the cascade runner; extra keys belong to it, and any key it does not know is an error
    when the config is loaded (a typo such as `enabeld` must not leave the cascade silently off)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    enabled: bool = False

    @model_validator(mode="after")
    def _known_keys(self) -> CascadeSettings:
        from gearshift.cascade.factory import CASCADE_KEYS

        unknown = sorted(set(self.model_extra or {}) - CASCADE_KEYS)
        if unknown:
            raise PydanticCustomError("unknown_keys", "unknown keys", {"keys": unknown, "known": sorted(CASCADE_KEYS)})
        return self


class SegmentSettings(_Strict):
    """closed loop: `topics` is a saved TopicModel dir (`gearshift topics fit`); each request then gets a `topic`
    segment from the configured router's embedder. Unset (default), the request path pays nothing for topics."""

    topics: Path | None = None


class RedisSettings(_Strict):
    """scale-out: with `url`, breakers, rate limits, budgets, conversation pins and strong-share windows are
    shared by every gateway (store/redis_state.py)."""

    url: str | None = Field(default=None, pattern=r"^rediss?://")
    prefix: str = Field(default="gearshift:", min_length=1)  # one per deployment of gearshift sharing a Redis
    # Every shared-state call is on the request path, several per request: a hung Redis (accepts, never
    # answers) must cost a bounded, small time per call before the caller falls back, not the minutes of a
    # TCP timeout. This is the client's socket connect and read timeout, in seconds.
    timeout_s: float = Field(default=0.5, gt=0, le=30)
    # After a Redis outage error on any shared-state call, every call of this gateway skips Redis (falls back
    # at once, counted as a failure) for this many seconds, then one call tries it again: a hung Redis costs
    # one `timeout_s` per `retry_s`, not one per call.
    retry_s: float = Field(default=1.0, gt=0)
    # Redis down or hung during a key's rate-limit / daily-budget check: "open" admits the request (counted
    # in gearshift_shared_state_errors_total{op="rate_limit"|"budget_check"}), "closed" refuses it (503
    # shared_state_unavailable). Breakers fall back to per-process state either way.
    quota_on_failure: Literal["open", "closed"] = "open"


class LimitSettings(_Strict):
    max_body_bytes: int = Field(default=2_000_000, gt=0)
    max_json_depth: int = Field(default=64, ge=2, le=512)  # deeper request bodies get a 400 (http_body.py)
    # the whole-request deadline (policy, retries, failover, cascade; a stream's last byte), chosen for
    # interactive chat; a client's `x-gearshift-timeout` header may ask for another, up to max_request_timeout_s
    request_timeout_s: float = Field(default=60.0, gt=0.0)
    max_request_timeout_s: float | None = Field(default=None, gt=0.0)  # None: request_timeout_s is the most
    max_in_flight: int | None = Field(default=None, gt=0)  # more concurrent chat requests -> 503
    drain_timeout_s: float = Field(default=30.0, ge=0.0)  # SIGTERM: how long in-flight requests may finish
    # security: the output cap sent upstream when a tier's deployments set no `max_tokens`, so every request
    # has a worst-case cost a key's budget can reserve; and the most choices (`n`) one request may ask for
    max_tokens: int = Field(default=4096, gt=0)
    max_n: int = Field(default=8, ge=1)


class ReliabilitySettings(_Strict):
    """Retries of one deployment before failing over to the next (see providers.reliability)."""

    max_retries: int = Field(default=2, ge=0)
    base_delay_s: float = Field(default=0.2, ge=0.0)
    max_delay_s: float = Field(default=5.0, ge=0.0)
    # a stream cut after text was sent continues on the next deployment that can continue a prefix
    # (its `continuation`), re-asked with the partial answer as an assistant prefix; off: the stream ends
    # with an error event (`truncated`)
    midstream_failover: bool = False


Scope = Literal["inference", "feedback", "admin"]


class ApiKeySettings(_Strict):
    """A gateway key: `id` is what records show; the key itself only as a SHA-256 hex digest."""

    id: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    # security: what the key may do, and per-key spend/rate/strong-tier caps (None: unlimited)
    scopes: list[Scope] = Field(default_factory=lambda: list[Scope](["inference"]))
    budget_usd_per_day: float | None = Field(default=None, ge=0.0)
    rpm: int | None = Field(default=None, gt=0)
    max_strong_share: float | None = Field(default=None, ge=0.0, le=1.0)
    strong_share_window: int = Field(default=100, gt=0)  # requests in the rolling window
    # the model names this key may ask for (e.g. ["gearshift/auto"], or cheap deployments); None: any
    models: list[str] | None = None


class AuthSettings(_Strict):
    keys: list[ApiKeySettings] = Field(default_factory=list)
    # security: without keys, only requests whose Host is loopback or listed here are answered (gateway/origin.py)
    allowed_hosts: list[str] = Field(default_factory=list)


class ConversationSettings(_Strict):
    """Conversation tier pins: in process memory (`max_entries`, LRU), or in Redis with `[redis] url`
    (shared by the fleet; a pin expires `ttl_s` seconds after its conversation's last turn)."""

    enabled: bool = True
    allow_downgrade: bool = False
    max_entries: int = Field(default=10_000, gt=0)
    ttl_s: int = Field(default=86_400, gt=0)


class GatewaySettings(_Strict):
    tiers: list[TierSettings] = Field(min_length=2)
    router: RouterSettings = Field(default_factory=RouterSettings)
    cascade: CascadeSettings = Field(default_factory=CascadeSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    reliability: ReliabilitySettings = Field(default_factory=ReliabilitySettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    conversations: ConversationSettings = Field(default_factory=ConversationSettings)
    shadow: ShadowSettings = Field(default_factory=ShadowSettings)  # closed loop: shadow routing + judge + triage
    signals: SignalSettings = Field(default_factory=SignalSettings)  # closed loop: implicit downstream signals
    slo: SLOSettings = Field(default_factory=SLOSettings)  # closed loop: escalation SLIs and alerts
    redis: RedisSettings = Field(default_factory=RedisSettings)  # scale-out: state shared between gateways
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)  # dashboard: /dashboard page
    tracing: TracingSettings = Field(default_factory=TracingSettings)  # tracing: OpenTelemetry spans
    exploration: ExplorationSettings = Field(default_factory=ExplorationSettings)  # learning: logged propensities
    experiment: ExperimentSettings = Field(default_factory=ExperimentSettings)  # closed loop: misroute bounds
    routes: list[RouteSettings] = Field(default_factory=list)  # routing rules: category routes, checked in order
    extra_deployments: list[DeploymentSettings] = Field(default_factory=list)  # routing rules: outside the tiers
    embeddings: list[DeploymentSettings] = Field(default_factory=list)  # /v1/embeddings pass-through targets
    segments: SegmentSettings = Field(default_factory=SegmentSettings)  # closed loop: topic segment

    @model_validator(mode="after")
    def _consistent(self) -> GatewaySettings:
        names = [t.name for t in self.tiers]
        if len(set(names)) != len(names):
            raise ValueError(f"tier names must be unique, got {names}")
        if len(self.router.thresholds) != len(self.tiers) - 1:
            raise ValueError(f"router.thresholds: {len(self.tiers)} tiers need {len(self.tiers) - 1} "
                             f"threshold(s), got {len(self.router.thresholds)}")
        seen: set[str] = set()
        for t in self.tiers:
            for d in t.deployments:
                if d.display_name in seen:
                    raise ValueError(f"deployment name {d.display_name!r} is used twice; set `name`")
                seen.add(d.display_name)
        for d in self.extra_deployments:
            if d.display_name in seen:
                raise ValueError(f"deployment name {d.display_name!r} is used twice; set `name`")
            seen.add(d.display_name)
        for d in self.embeddings:
            if d.display_name in seen:
                raise ValueError(f"deployment name {d.display_name!r} is used twice; set `name`")
            if d.provider not in ("openai", "azure"):
                raise ValueError(f"embeddings deployment {d.display_name!r}: provider must be openai or azure "
                                 f"(an OpenAI-compatible /embeddings API), got {d.provider!r}")
        self._check_routing_rules(seen)
        return self

    def _check_routing_rules(self, deployments: set[str]) -> None:
        """routing rules: every name a route, the gate or the LLM router mentions must exist."""
        tiers = set(self.tier_names)
        route_names = [r.name for r in self.routes]
        if len(set(route_names)) != len(route_names):
            raise ValueError(f"route names must be unique, got {route_names}")
        for r in self.routes:
            missing = sorted(set(r.deployments) - deployments)
            if missing:
                raise ValueError(f"route {r.name!r}: unknown deployments {missing}")
            if r.tier is not None and r.tier not in tiers:
                raise ValueError(f"route {r.name!r}: unknown tier {r.tier!r}")
            if not (r.keywords or r.patterns or r.preset or r.min_tokens is not None):
                raise ValueError(f"route {r.name!r}: needs keywords, patterns, preset or min_tokens")
        llm = self.router.llm
        if self.router.kind == "llm" and llm is not None:
            if llm.deployment is not None and llm.deployment not in deployments:
                raise ValueError(f"router.llm.deployment: unknown deployment {llm.deployment!r}")
            named = [llm.tier, llm.default_tier, *(llm.labels or {}).values()]
            unknown = sorted({t for t in named if t is not None} - tiers)
            if unknown:
                raise ValueError(f"router.llm: unknown tiers {unknown}; configured tiers are {list(self.tier_names)}")
        elif llm is not None:
            raise ValueError('[router.llm] is set but [router] kind is not "llm"')

    @property
    def uses_routing_rules(self) -> bool:
        """Whether `gearshift/auto` goes through policy.rules instead of the single-router fast path."""
        return bool(self.routes) or self.router.gate is not None or self.router.kind == "llm"

    @model_validator(mode="after")
    def _segment_thresholds_fit(self) -> GatewaySettings:
        for key, thresholds in self.router.segment_thresholds.items():
            if len(thresholds) != len(self.tiers) - 1:
                raise ValueError(f"router.segment_thresholds[{key!r}]: {len(self.tiers)} tiers need "
                                 f"{len(self.tiers) - 1} threshold(s), got {len(thresholds)}")
        return self

    @property
    def tier_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tiers)

    def deployment_tiers(self) -> dict[str, tuple[str, DeploymentSettings]]:
        """Concrete model name -> (tier, deployment)."""
        return {d.display_name: (t.name, d) for t in self.tiers for d in t.deployments}


def hash_key(raw_key: str) -> str:
    """What goes into `[[auth.keys]] sha256 = ...` for a raw gateway key."""
    return hashlib.sha256(raw_key.encode("utf-8")).hexdigest()


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """The keys the section at `loc` accepts (for a did-you-mean hint); [] when it cannot be told."""
    model: Any = GatewaySettings
    for part in loc:
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        ann = field.annotation
        while get_args(ann) and not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            ann = next((a for a in get_args(ann) if isinstance(a, type) and issubclass(a, BaseModel)),
                       get_args(ann)[0])
        model = ann
    return list(getattr(model, "model_fields", {}))


def _unknown_key(loc: tuple[Any, ...], key: str, known: list[str]) -> str:
    where = ".".join(str(p) for p in (*loc, key))
    return f"{where}: unknown key ({did_you_mean(key, known)}known keys: {', '.join(known)})"


def _describe(exc: ValidationError, source: str) -> str:
    """One line per problem, `section.key: what is wrong`; an unknown key in any section reads the same."""
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        if err["type"] == "extra_forbidden":
            lines.append(_unknown_key(loc[:-1], str(loc[-1]), _fields_at(loc[:-1])))
        elif err["type"] == "unknown_keys":
            ctx = err.get("ctx") or {}
            lines.extend(_unknown_key(loc, k, list(ctx.get("known", []))) for k in ctx.get("keys", []))
        else:
            lines.append(f"{'.'.join(str(p) for p in loc) or '(top level)'}: {err['msg']}")
    return f"{source}: invalid gateway config:\n  " + "\n  ".join(lines)


def parse_settings(data: dict[str, Any], source: str = "config") -> GatewaySettings:
    """Validate a parsed TOML/JSON mapping; errors name each offending field."""
    try:
        return GatewaySettings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from exc


def load_settings(path: str | Path) -> GatewaySettings:
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: invalid TOML ({exc})") from exc
    store = data.get("store")
    if store is None or (isinstance(store, dict) and "path" not in store and "url" not in store):
        data["store"] = {**(store or {}), "path": str(default_store_path(p))}
    return parse_settings(data, str(p))


def default_settings(store_path: Path | None = None) -> GatewaySettings:
    """No config: local SmolLM2 on both tiers (strong may write 4x longer answers), heuristic router."""
    cheap = DeploymentSettings(name=f"{LOCAL_MODEL}-short", provider="local", model=LOCAL_MODEL,
                               context_window=8192, max_tokens=128, timeout_s=120.0)
    strong = DeploymentSettings(name=f"{LOCAL_MODEL}-long", provider="local", model=LOCAL_MODEL,
                                context_window=8192, max_tokens=512, timeout_s=300.0)
    store = StoreSettings(path=store_path) if store_path is not None else StoreSettings()
    return GatewaySettings(
        tiers=[TierSettings(name="cheap", deployments=[cheap]), TierSettings(name="strong", deployments=[strong])],
        store=store, limits=LimitSettings(request_timeout_s=300.0),  # a CPU model, not interactive latency
    )
