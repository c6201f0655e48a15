"""The online misroute experiment: force a small, tagged share of routed traffic all-cheap or all-strong.

Comparing the live router with both forced arms answers "is the router doing real work" on production
traffic (`gearshift bounds`). The arms are mixed into the logged policy rather than bolted on after it:

    π_full = (1 - f) · π_live + (f / |arms|) · Σ_arm onehot(arm tier)

with f the misroute fraction (inside the slice; 0 outside it) and π_live the live policy, exploration
included. The record logs π_full and the served tier's probability under it, so inverse-propensity
estimates over the whole log stay unbiased for the router, all-cheap and all-strong alike.

The arm draw uses its own stream (`request_rng(seed, "misroute:" + request id)`), independent of the
exploration draw even when both sections share a seed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from gearshift.data.segments import yes_no
from gearshift.errors import ConfigError
from gearshift.policy.exploration import request_rng

ARMS: tuple[str, ...] = ("all_cheap", "all_strong")
#: boolean segment fields, whose keys may say true/false as well as yes/no (`gearshift.data.segments`)
_BOOLEAN_FIELDS = frozenset(("has_code",))
_BOOLEAN_WORDS = {"true": "yes", "false": "no"}


@lru_cache(maxsize=256)
def parse_segment_key(key: str) -> tuple[str, str]:
    """"language=fr" -> ("language", "fr"): how segment thresholds and the experiment slice name a segment."""
    field, sep, value = key.partition("=")
    if not sep or not field or not value:
        raise ConfigError(f"segment key {key!r} must be FIELD=VALUE, e.g. language=fr")
    value = value.lower()
    return field, _BOOLEAN_WORDS.get(value, value) if field in _BOOLEAN_FIELDS else value


def segment_value(segment: Mapping[str, Any], field: str) -> str | None:
    """The segment row's value as it is written in a key (booleans as yes/no, as slice labels write them; lower
    case)."""
    v = segment.get(field)
    if v is None:
        return None
    if isinstance(v, bool):
        return yes_no(v)
    return str(v).lower()


def matches(key: str, segment: Mapping[str, Any]) -> bool:
    field, value = parse_segment_key(key)
    return segment_value(segment, field) == value


def first_match(keyed: Mapping[str, Any], segment: Mapping[str, Any]) -> str | None:
    """The first key (config order) whose FIELD=VALUE the request's segment row has."""
    for key in keyed:
        if matches(key, segment):
            return key
    return None


def arm_tier(arm: str, n_tiers: int) -> int:
    if arm == "all_cheap":
        return 0
    if arm == "all_strong":
        return n_tiers - 1
    raise ConfigError(f"unknown misroute arm {arm!r}; known: {', '.join(ARMS)}")


@dataclass(frozen=True)
class MisrouteExperiment:
    """`fraction` of in-slice requests are forced into `arms`, split evenly; `segment` (FIELD=VALUE) limits
    the slice, None means all routed traffic."""

    fraction: float
    arms: tuple[str, ...] = ARMS
    segment: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction <= 1.0:
            raise ConfigError(f"misroute fraction must be within [0, 1], got {self.fraction}")
        if not self.arms or len(set(self.arms)) != len(self.arms):
            raise ConfigError(f"misroute arms must be distinct and at least one, got {list(self.arms)}")
        for arm in self.arms:
            arm_tier(arm, 2)
        if self.segment is not None:
            parse_segment_key(self.segment)

    @classmethod
    def from_settings(cls, settings: Any) -> MisrouteExperiment:
        """From `[experiment]` (gateway.settings.ExperimentSettings)."""
        return cls(float(settings.misroute_fraction), tuple(settings.arms), settings.segment, int(settings.seed))

    def in_slice(self, segment: Mapping[str, Any]) -> bool:
        return self.segment is None or matches(self.segment, segment)

    def draw(self, request_id: str) -> str | None:
        """The arm this request falls in, or None (served by the live policy). Replayable from the id."""
        if self.fraction <= 0.0:
            return None
        u = float(request_rng(self.seed, "misroute:" + request_id).random())
        if u >= self.fraction:
            return None
        return self.arms[min(int(u / self.fraction * len(self.arms)), len(self.arms) - 1)]

    def mix(self, live: Sequence[float]) -> tuple[float, ...]:
        """π_full from the live policy's probabilities over the tiers (cheap to strong)."""
        k = len(live)
        f = self.fraction
        out = [(1.0 - f) * float(p) for p in live]
        for arm in self.arms:
            out[arm_tier(arm, k)] += f / len(self.arms)
        return tuple(out)


def onehot(index: int, n: int) -> tuple[float, ...]:
    return tuple(1.0 if i == index else 0.0 for i in range(n))
