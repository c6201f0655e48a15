"""Build a cascade's config and verifiers from the `cascade:` section of the gateway config.

Keys (all optional): `verifiers` (names, in order; default :data:`DEFAULT_VERIFIERS`), `max_escalations`,
`start_tier`, `escalate_on_error`, `stream_mode`, plus per-verifier options: `refusal_phrases`,
`refusal_window`, `empty_min_chars`, `truncation_reasons`, `json_allow_code_fence`, `min_mean_logprob`,
`final_answer_markers`, `arithmetic_rel_tol`, `judge_model`, `judge_min_rating`,
`judge_unparseable_passes`, `answer_model_path` (a fitted `cascade/answer_model.py` JSON),
`answer_model_min_p`. `enabled` is the gateway's and ignored here. Unknown keys are a ConfigError,
so a typo never silently turns a check off.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gearshift.cascade.answer_model import AnswerModel, AnswerModelVerifier
from gearshift.cascade.consistency import ConsistencyVerifier
from gearshift.cascade.judge import CompletionFn, JudgeVerifier
from gearshift.cascade.math_verifiers import DEFAULT_FINAL_MARKERS, ArithmeticVerifier, FinalAnswerVerifier
from gearshift.cascade.runner import CascadeConfig
from gearshift.cascade.verifiers import (
    DEFAULT_REFUSAL_PHRASES,
    EmptyAnswerVerifier,
    JsonVerifier,
    LogprobVerifier,
    RefusalVerifier,
    ShapeVerifier,
    TruncationVerifier,
    Verifier,
)
from gearshift.errors import ConfigError

#: Free, model-less checks that make sense for any request. `judge` and the math checks are opt-in.
DEFAULT_VERIFIERS: tuple[str, ...] = ("shape", "empty", "truncation", "refusal", "json", "logprob")
VERIFIER_NAMES: tuple[str, ...] = (*DEFAULT_VERIFIERS, "final_answer", "arithmetic", "judge", "consistency",
                                   "answer_model")

_RUNNER_KEYS = {"max_escalations", "start_tier", "escalate_on_error", "skip_costly_after_failure", "stream_mode",
                "request_logprobs", "buffer_max_s", "combine", "combine_weights", "combine_min_score",
                "combine_by_segment"}
_OPTION_KEYS = {
    "refusal_phrases", "refusal_window", "empty_min_chars", "truncation_reasons", "json_allow_code_fence",
    "min_mean_logprob", "final_answer_markers", "arithmetic_rel_tol", "judge_model", "judge_min_rating",
    "judge_unparseable_passes", "consistency_rel_tol", "consistency_min_similarity", "answer_model_path",
    "answer_model_min_p",
}


#: the gateway's keys: which deployment judges and its budget (gateway/judge_verifier.py)
JUDGE_TARGET_KEYS = {"judge_deployment", "judge_tier", "judge_timeout_s", "judge_max_usd_per_hour",
                     "consistency_deployment", "consistency_tier", "consistency_timeout_s",
                     "consistency_max_usd_per_hour"}
#: every key `[cascade]` accepts: the gateway's settings reject any other when the config is loaded
CASCADE_KEYS = frozenset({"enabled", "verifiers", *_RUNNER_KEYS, *_OPTION_KEYS, *JUDGE_TARGET_KEYS})


def _builders(o: Mapping[str, Any], judge: CompletionFn | None,
              second: CompletionFn | None) -> dict[str, Callable[[], Verifier]]:
    def make_consistency() -> Verifier:
        if second is None:
            raise ConfigError("cascade verifier 'consistency' needs a second cheap answer (no completion callable)")
        return ConsistencyVerifier(second, rel_tol=float(o.get("consistency_rel_tol", 1e-6)),
                                   min_similarity=float(o.get("consistency_min_similarity", 0.5)))

    def make_judge() -> Verifier:
        if judge is None:
            raise ConfigError("cascade verifier 'judge' needs a judge deployment (no completion callable given)")
        return JudgeVerifier(judge, model=str(o.get("judge_model", "judge")),
                             min_rating=int(o.get("judge_min_rating", 7)),
                             unparseable_passes=bool(o.get("judge_unparseable_passes", False)))

    def make_answer_model() -> Verifier:
        path = o.get("answer_model_path")
        if not path:
            raise ConfigError("cascade verifier 'answer_model' needs answer_model_path (a model saved by "
                              "AnswerModel.save, e.g. benchmarks/answer_verifier.py --save FILE)")
        min_p = o.get("answer_model_min_p")
        return AnswerModelVerifier(AnswerModel.load(str(path)), None if min_p is None else float(min_p))

    return {
        "shape": ShapeVerifier,
        "empty": lambda: EmptyAnswerVerifier(int(o.get("empty_min_chars", 1))),
        "truncation": lambda: TruncationVerifier(o.get("truncation_reasons", ("length",))),
        "refusal": lambda: RefusalVerifier(o.get("refusal_phrases", DEFAULT_REFUSAL_PHRASES),
                                           int(o.get("refusal_window", 300))),
        "json": lambda: JsonVerifier(bool(o.get("json_allow_code_fence", False))),
        "logprob": lambda: LogprobVerifier(float(o.get("min_mean_logprob", -0.5))),
        "final_answer": lambda: FinalAnswerVerifier(o.get("final_answer_markers", DEFAULT_FINAL_MARKERS)),
        "arithmetic": lambda: ArithmeticVerifier(float(o.get("arithmetic_rel_tol", 0.01))),
        "judge": make_judge,
        "consistency": make_consistency,
        "answer_model": make_answer_model,
    }


def build_cascade(settings: Mapping[str, Any], *, judge: CompletionFn | None = None,
                  second: CompletionFn | None = None) -> tuple[CascadeConfig, list[Verifier]]:
    """(runner config, verifiers in the configured order) from a `cascade:` mapping.

    `judge` is the completion callable bound to the judge deployment; required only if `judge` is listed.
    """
    unknown = set(settings) - _RUNNER_KEYS - _OPTION_KEYS - JUDGE_TARGET_KEYS - {"verifiers", "enabled"}
    if unknown:
        raise ConfigError(f"cascade: unknown keys {sorted(unknown)}")
    names = tuple(settings.get("verifiers", DEFAULT_VERIFIERS))
    bad = [n for n in names if n not in VERIFIER_NAMES]
    if bad:
        raise ConfigError(f"cascade.verifiers: unknown {bad}; known: {list(VERIFIER_NAMES)}")
    builders = _builders(settings, judge, second)
    try:
        verifiers = [builders[n]() for n in names]
        config = CascadeConfig(verifiers=names, **{k: settings[k] for k in _RUNNER_KEYS if k in settings})
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"cascade: invalid option ({exc})") from exc
    return config, verifiers
