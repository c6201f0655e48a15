"""Config sections of the closed loop: `[shadow]` (with `[shadow.judge]`, `[shadow.triage]`), `[signals]`, `[slo]`.

Kept out of `gateway/settings.py` so that file only grows by three fields. Every section is off by
default (except `[signals]`, which only reads what the gateway already sees), so an existing config
behaves exactly as before.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gearshift.providers.registry import DeploymentSettings


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _band(v: list[float]) -> list[float]:
    if len(v) != 2 or not 0.0 <= v[0] <= v[1] <= 1.0:
        raise ValueError("a band is [low, high] with 0 <= low <= high <= 1")
    return v


class JudgeSettings(_Strict):
    """Who judges shadow pairs. One of `tier` (its deployments, with failover), `deployment` (a configured
    deployment by name) or `endpoint` (a dedicated deployment table, same keys as a tier deployment).
    Default: the strongest tier. `mode`: "pairwise" asks about both answers at once, in both orders;
    "single" rates each answer alone. `epsilon`: score gap (on 0-1) under which answers count as equal."""

    tier: str | None = None
    deployment: str | None = None
    endpoint: dict[str, Any] | None = None
    mode: Literal["pairwise", "single"] = "pairwise"
    epsilon: float = Field(default=0.1, ge=0.0, le=1.0)
    max_answer_chars: int = Field(default=6000, gt=0)
    max_tokens: int = Field(default=200, gt=0)

    @field_validator("endpoint")
    @classmethod
    def _valid_endpoint(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is not None:
            DeploymentSettings.model_validate(v)
        return v

    @model_validator(mode="after")
    def _one_source(self) -> JudgeSettings:
        if sum(x is not None for x in (self.tier, self.deployment, self.endpoint)) > 1:
            raise ValueError("set at most one of judge.tier, judge.deployment, judge.endpoint")
        return self


class TriageSettings(_Strict):
    """A shadowed decision joins the triage queue when its tiers' judged scores differ by `min_gap` or more."""

    enabled: bool = True
    min_gap: float = Field(default=0.3, ge=0.0, le=1.0)
    max_answer_chars: int = Field(default=20_000, gt=0)
    # security: with `[store] text = "redact"|"hash"`, triage items keep the prompt, messages, answers and the
    # judge's reasoning concealed like the records; true keeps them readable for reviewers (an explicit opt-in)
    raw_text: bool = False


class ShadowSettings(_Strict):
    """Send a sample of routed requests also to the tiers the router did not choose, off the request path.

    `every_n` (every Nth eligible request) wins over `rate` (a probability); `segment_rates` overrides
    `rate` per "name=value" segment (e.g. "language=fr" = 0.5). Budgets count upstream calls (shadow
    tiers and judge) and their cost over the last hour; a sample that would exceed either is skipped.
    """

    enabled: bool = False
    every_n: int | None = Field(default=None, ge=1)
    rate: float = Field(default=0.0, ge=0.0, le=1.0)
    segment_rates: dict[str, float] = Field(default_factory=dict)
    tiers: list[str] | None = None  # None: every tier the router did not choose
    max_requests_per_hour: int | None = Field(default=None, ge=0)
    max_usd_per_hour: float | None = Field(default=None, ge=0.0)
    queue_size: int = Field(default=256, gt=0)
    workers: int = Field(default=2, gt=0, le=64)
    timeout_s: float = Field(default=60.0, gt=0.0)
    include_concrete: bool = False
    seed: int | None = None
    judge: JudgeSettings = Field(default_factory=JudgeSettings)
    triage: TriageSettings = Field(default_factory=TriageSettings)

    @field_validator("segment_rates")
    @classmethod
    def _rates(cls, v: dict[str, float]) -> dict[str, float]:
        for key, rate in v.items():
            if "=" not in key or not 0.0 <= rate <= 1.0:
                raise ValueError(f"segment_rates: {key!r} must be 'name=value' with a rate in [0, 1]")
        return v


class SignalSettings(_Strict):
    """Implicit downstream signals: regeneration, follow-up correction, abandonment (client disconnect).

    `memory` bounds the in-process map from conversation keys to the decision that answered them.
    """

    enabled: bool = True
    memory: int = Field(default=50_000, gt=0)
    regeneration_window_s: float = Field(default=3600.0, gt=0.0)


class DriftSettings(_Strict):
    """`[slo.drift]`: live decisions against the serving router's reference distribution (closed_loop/drift_watch.py).

    `reference`: a `score_reference.json` to compare against; unset, the saved router's own (beside `[router] path`
    or the registered version's directory), else the first `min_samples` routed decisions after start (the default
    heuristic router ships no calibration data of its own). `window_s` of traffic, `min_samples` routed decisions
    before comparing; PSI above `psi_threshold` (0.2: the conventional "major shift") and, for shares and mix, a
    chi-square p under `alpha`; KS needs p < `ks_alpha` and a statistic >= `ks_min_statistic`."""

    enabled: bool = True
    reference: str | None = None
    window_s: float = Field(default=900.0, gt=0.0)
    min_samples: int = Field(default=200, ge=10)
    psi_threshold: float = Field(default=0.2, gt=0.0)
    alpha: float = Field(default=0.01, gt=0.0, lt=1.0)
    ks_alpha: float = Field(default=0.01, gt=0.0, lt=1.0)
    ks_min_statistic: float = Field(default=0.1, ge=0.0, le=1.0)
    quality_margin: float = Field(default=0.05, ge=0.0, le=1.0)
    cost_ratio: float = Field(default=1.05, ge=1.0)
    page_shift: bool = True  # false: a shift (moved, no cost or quality reading) is in /metrics and the dashboard only


class SegmentBands(_Strict):
    """`[slo.segment_bands."name=value"]`: bands for one segment (unset ones: the global band)."""

    strong_share: list[float] | None = None
    escalation_rate: list[float] | None = None
    quality_loss: list[float] | None = None

    @field_validator("strong_share", "escalation_rate", "quality_loss")
    @classmethod
    def _bands(cls, v: list[float] | None) -> list[float] | None:
        return None if v is None else _band(v)


class SLOSettings(_Strict):
    """Routing and quality SLIs (`gearshift.closed_loop.sli`) checked every `check_interval_s`: decisions over
    `window_s`, shadow judgements (quality loss) over `quality_window_s`. `segment_bands."name=value"` is
    either a strong-share band or a table of bands; `cooldown_s` is the least time between two pages of one
    alert. With `[redis] url` and `fleet` (the default) the windows and the alerts are the fleet's."""

    enabled: bool = False
    window_s: float = Field(default=300.0, gt=0.0)
    check_interval_s: float = Field(default=10.0, gt=0.0)
    min_events: int = Field(default=30, ge=1)
    strong_share: list[float] = Field(default_factory=lambda: [0.05, 0.6])
    escalation_rate: list[float] = Field(default_factory=lambda: [0.0, 0.2])
    quality_loss: list[float] = Field(default_factory=lambda: [0.0, 0.2])
    min_judged: int = Field(default=20, ge=1)
    quality_window_s: float = Field(default=3600.0, gt=0.0)
    cooldown_s: float = Field(default=900.0, ge=0.0)
    fleet: bool = True
    segment_bands: dict[str, list[float] | SegmentBands] = Field(default_factory=dict)
    segments: list[str] | None = None  # segment names to slice by; None: all
    collapse_entropy: float = Field(default=0.05, ge=0.0, le=1.0)
    webhook_url: str | None = None
    webhook_timeout_s: float = Field(default=2.0, gt=0.0)
    log: bool = True
    drift: DriftSettings = Field(default_factory=DriftSettings)  # drift against the router's reference

    _bands = field_validator("strong_share", "escalation_rate", "quality_loss")(_band)

    @field_validator("segment_bands")
    @classmethod
    def _segment_bands(cls, v: dict[str, list[float] | SegmentBands]) -> dict[str, list[float] | SegmentBands]:
        for key, band in v.items():
            if "=" not in key:
                raise ValueError(f"segment_bands: {key!r} must be 'name=value'")
            if isinstance(band, list):
                _band(band)
        return v

    def bands_of(self, segment: str) -> SegmentBands | None:
        """The bands set for `segment` (a bare list is its strong-share band)."""
        got = self.segment_bands.get(segment)
        return SegmentBands(strong_share=got) if isinstance(got, list) else got

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("webhook_url must start with http:// or https://")
        return v
