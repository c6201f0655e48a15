"""Configuration sections for *how* requests are routed and learned from: `[router]` (with its gate, routes
and LLM-as-router), `[exploration]` and `[experiment]`. Split from `gateway/settings.py`, which holds the
file as a whole (deployments, tiers, store, limits, auth...) and re-exports these names.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: segment row fields a FIELD=VALUE key may name
SEGMENT_FIELDS = ("language", "length_bucket", "has_code", "turn", "topic", "client")
SEGMENT_KEY = re.compile(rf"(?:{'|'.join(SEGMENT_FIELDS)})=\S+")


class Strict(BaseModel):
    """Unknown keys are errors (a typo must not silently fall back to a default); sections are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class LLMRouterSettings(Strict):
    """LLM-as-router: `deployment` (any configured deployment name) or `tier` (its deployments, in failover
    order; default: the cheapest tier) answers the fixed classification prompt within `timeout_s`."""

    deployment: str | None = None
    tier: str | None = None
    labels: dict[str, str] | None = None  # label -> tier name; None: policy.llm_router.DEFAULT_LABEL_TIERS
    default_tier: str | None = None  # unparseable reply or failed call; None: the strongest tier
    max_tokens: int = Field(default=5, gt=0)
    timeout_s: float = Field(default=2.0, gt=0.0)
    max_prompt_chars: int = Field(default=4000, gt=0)

    @model_validator(mode="after")
    def _one_target(self) -> LLMRouterSettings:
        if self.deployment is not None and self.tier is not None:
            raise ValueError("set `deployment` or `tier`, not both")
        return self


class GateSettings(Strict):
    """A cheap router (`name` + `params`, or a saved one at `path`) deciding p_strong < low (cheapest tier)
    and p_strong > high (strongest tier) on its own."""

    name: str = "heuristic"
    params: dict[str, Any] = Field(default_factory=dict)
    path: Path | None = None
    low: float = Field(default=0.2, ge=0.0, le=1.0)
    high: float = Field(default=0.8, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> GateSettings:
        if self.low > self.high:
            raise ValueError(f"gate low ({self.low}) must not exceed high ({self.high})")
        return self


class RouteSettings(Strict):
    """A category route: requests matching `keywords` (whole words), `patterns` (regexes), the `preset`
    ("code": policy.rules.CODE_PATTERNS) or `min_tokens` go to `deployments` (names from the tiers
    or `[[extra_deployments]]`). `tier` is what the record, metrics and budgets count them as (default:
    the strongest tier holding one of the deployments, else the strongest tier)."""

    name: str = Field(min_length=1)
    deployments: list[str] = Field(min_length=1)
    keywords: list[str] = Field(default_factory=list)
    patterns: list[str] = Field(default_factory=list)
    preset: Literal["code"] | None = None
    min_tokens: int | None = Field(default=None, gt=0)
    tier: str | None = None


class RouterSettings(Strict):
    """`path` loads a saved trainable router; otherwise `name` + `params` build one."""

    name: str = "heuristic"
    params: dict[str, Any] = Field(default_factory=dict)
    path: Path | None = None
    thresholds: list[float] = Field(default_factory=lambda: [0.5])
    ood_escalate: float | None = Field(default=None, gt=0.0)
    min_confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    # learning: "champion" or NAME[/VERSION] from `gearshift versions`; loaded at start and swapped in without a
    # restart by `POST /v1/admin/router/reload`, SIGHUP (`gearshift serve`) or polling (gateway/reload.py)
    version: str | None = None
    # learning: check the registry's `version` every this many seconds and reload when it names another
    # version (how `promote`/`rollback` reach a fleet sharing one store); 0 = off
    reload_interval_s: float = Field(default=0.0, ge=0.0)
    # routing rules (gateway/rules_wiring.py): "llm" asks a small model for a label instead of `name`
    kind: Literal["model", "llm"] = "model"
    llm: LLMRouterSettings | None = None
    gate: GateSettings | None = None  # a cheap router first; `kind`'s router only scores what it leaves undecided
    # learning: thresholds per segment, keyed "FIELD=VALUE" over the decision record's segment (language,
    # length_bucket, has_code, turn; values as `gearshift.data.segments` defines them, has_code=yes/no),
    # e.g. {"language=fr" = [0.4], "length_bucket=long" = [0.3]}; the first
    # matching key wins, unmatched requests use `thresholds`; `gearshift calibrate --per-segment` writes them
    segment_thresholds: dict[str, list[float]] = Field(default_factory=dict)

    @field_validator("thresholds")
    @classmethod
    def _in_unit(cls, v: list[float]) -> list[float]:
        if any(not 0.0 <= t <= 1.0 for t in v):
            raise ValueError("thresholds must lie in [0, 1]")
        if any(b < a for a, b in itertools.pairwise(v)):
            raise ValueError("thresholds must be non-decreasing")
        return v

    @model_validator(mode="after")
    def _reload_needs_version(self) -> RouterSettings:
        if self.reload_interval_s > 0 and self.version is None:
            raise ValueError("router.reload_interval_s polls the version registry: set router.version too")
        return self

    @field_validator("segment_thresholds")
    @classmethod
    def _segment_keys(cls, v: dict[str, list[float]]) -> dict[str, list[float]]:
        for key, thresholds in v.items():
            if SEGMENT_KEY.fullmatch(key) is None:
                raise ValueError(f"segment_thresholds key {key!r} must be FIELD=VALUE with FIELD one of "
                                 f"{', '.join(SEGMENT_FIELDS)}")
            cls._in_unit(thresholds)
        return v


class ExplorationSettings(Strict):
    """learning: spend `epsilon` of routed traffic on random tiers so logs support off-policy learning.

    `epsilon_by_segment` overrides it per value of the request segment field `segment_key`; `seed` fixes
    each request's draw (replayable from the request id); `min_propensity` floors every tier's probability.
    `record_prompts` keeps the prompt text in decision records (subject to `[store] text`) for retraining.
    """

    epsilon: float = Field(default=0.0, ge=0.0, le=1.0)
    mode: Literal["uniform", "matching"] = "uniform"
    epsilon_by_segment: dict[str, float] = Field(default_factory=dict)
    segment_key: Literal["language", "length_bucket", "has_code", "turn", "topic", "client"] = "language"
    seed: int = 0
    min_propensity: float = Field(default=0.0, ge=0.0, le=0.5)
    record_prompts: bool = True
    max_prompt_chars: int = Field(default=8000, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _boolean_segment_values(cls, data: Any) -> Any:
        """has_code values are yes/no, as everywhere segments are labels; true/false are accepted too."""
        if isinstance(data, dict) and data.get("segment_key") == "has_code" and isinstance(
                data.get("epsilon_by_segment"), dict):
            words = {"true": "yes", "false": "no"}
            data = {**data, "epsilon_by_segment": {words.get(str(k).lower(), str(k).lower()): v
                                                   for k, v in data["epsilon_by_segment"].items()}}
        return data


class ExperimentSettings(Strict):
    """closed loop: deliberate-misroute bounds. `misroute_fraction` of routed requests (only those whose segment
    matches `segment`, a FIELD=VALUE key, when set) are forced into one of `arms`, split evenly: all_cheap serves
    the cheapest tier, all_strong the strongest. Each request's draw is fixed by (`seed`, request id); records
    carry `experiment_arm`, and the propensities of the whole mixed policy. `gearshift bounds` reads them."""

    misroute_fraction: float = Field(default=0.0, ge=0.0, le=1.0)
    arms: list[Literal["all_cheap", "all_strong"]] = Field(
        default_factory=lambda: list[Literal["all_cheap", "all_strong"]](["all_cheap", "all_strong"]), min_length=1)
    segment: str | None = None
    seed: int = 0

    @field_validator("arms")
    @classmethod
    def _unique_arms(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("arms must not repeat")
        return v

    @field_validator("segment")
    @classmethod
    def _segment_key(cls, v: str | None) -> str | None:
        if v is not None and SEGMENT_KEY.fullmatch(v) is None:
            raise ValueError(f"segment must be FIELD=VALUE with FIELD one of {', '.join(SEGMENT_FIELDS)}")
        return v


class PolicyConfig(Protocol):
    """The sections of the gateway's settings the tier draw reads (`GatewaySettings` is one)."""

    @property
    def router(self) -> RouterSettings: ...

    @property
    def exploration(self) -> ExplorationSettings: ...

    @property
    def experiment(self) -> ExperimentSettings: ...
