"""`gearshift bounds`: is the router doing real work? The live router against all-cheap and all-strong.

On logged traffic (`--db`, `--config`, `--store-url`; run `[experiment] misroute_fraction` and/or
`[exploration]` so both tiers are served on every kind of prompt) the three policies are self-normalised
inverse-propensity estimates over the whole log, once with quality from judge labels (shadow/triage) and
once from downstream signals (a thumbs down, regeneration, correction or abandonment makes an answer bad).
Offline, `--data mmlu|gsm8k|FILE --router NAME` reads them off recorded outcomes of both models.

"Real work" means beating a random router with the same strong share (the straight line from all-cheap
to all-strong) with a bootstrap confidence interval above zero. The money check sets the dollars saved
against all-strong against the extra bad answers at `--cost-per-bad-answer` each.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gearshift.cli.common import add_log_source
from gearshift.cli.terminal import add_json_options
from gearshift.errors import ConfigError, DataError

if TYPE_CHECKING:
    import numpy as np

    from gearshift.learning.bounds import BoundsReport
    from gearshift.learning.logs import DecisionLog

#: downstream signals that mark the answer they follow as bad
BAD_SIGNALS = frozenset({"thumbs_down", "regeneration", "correction", "abandonment"})
CI_KEYS = ("gain_over_cheap", "lift_over_random", "headroom", "net_per_request")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("bounds", help="live router vs forced all-cheap / all-strong, with a money check",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_log_source(p)
    p.add_argument("--cost-per-bad-answer", type=float, default=0.05, help="USD a bad answer costs downstream "
                                                                            "(default 0.05)")
    p.add_argument("--n-boot", type=int, default=500, help="bootstrap resamples for the intervals (default 500)")
    p.add_argument("--data", help="offline: recorded outcomes (mmlu, gsm8k or FILE.jsonl) instead of the log")
    p.add_argument("--router", default="heuristic", help="offline: router spec or NAME[/VERSION] (default heuristic)")
    p.add_argument("--threshold", type=float, default=0.5, help="offline: p_strong needed for strong (default 0.5)")
    p.add_argument("--n", type=int, default=2000, help="offline: prompts sampled from --data (default 2000)")
    add_json_options(p, "the report")
    p.set_defaults(handler=run_bounds)


@dataclass(frozen=True)
class SourceResult:
    """One quality source's bounds, its bootstrap intervals (CI_KEYS, per request) and the verdict."""

    report: BoundsReport
    ci: dict[str, tuple[float, float]]
    verdict: str
    real_work: bool
    arm_means: dict[str, dict[str, float]]

    def to_json(self) -> dict[str, Any]:
        return {**self.report.to_json(), "ci95": {k: list(v) for k, v in self.ci.items()}, "verdict": self.verdict,
                "real_work": self.real_work, "arm_means": self.arm_means}


def bootstrap(n: int, n_boot: int, stat: Callable[[np.ndarray], dict[str, np.ndarray]],
              seed: int = 0) -> dict[str, tuple[float, float]]:
    """95% percentile intervals of `stat(multiplicities)` under the Poisson bootstrap, in memory-bounded chunks."""
    import numpy as np

    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_boot, 2_000_000 // max(n, 1)))
    out: dict[str, list[np.ndarray]] = {}
    for start in range(0, n_boot, chunk):
        mult = rng.poisson(1.0, size=(min(chunk, n_boot - start), n)).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            for k, v in stat(mult).items():
                out.setdefault(k, []).append(v)
    ci = {}
    for k, parts in out.items():
        v = np.concatenate(parts)
        v = v[np.isfinite(v)]
        ci[k] = (float(np.quantile(v, 0.025)), float(np.quantile(v, 0.975))) if v.size else (float("nan"),) * 2
    return ci


def _derived(rq: np.ndarray, cq: np.ndarray, sq: np.ndarray, rc: np.ndarray, sc: np.ndarray, share: np.ndarray,
             cost_per_bad: float) -> dict[str, np.ndarray]:
    return {"gain_over_cheap": rq - cq, "lift_over_random": rq - (cq + share * (sq - cq)), "headroom": sq - rq,
            "net_per_request": (sc - rc) - (sq - rq) * cost_per_bad}


def logged_result(served: np.ndarray, want: np.ndarray, quality: np.ndarray, cost: np.ndarray,
                  propensity: np.ndarray, arms: list[str | None], *, cost_per_bad_answer: float, source: str,
                  n_boot: int = 500) -> SourceResult:
    """Bounds from logged rows (booleans served/wanted strong, quality in [0, 1], USD, served-tier propensity)."""
    import numpy as np

    from gearshift.learning.bounds import LoggedOutcome, bounds_from_logs

    rows = [LoggedOutcome(bool(s), bool(w), float(q), float(c), float(p))
            for s, w, q, c, p in zip(served, want, quality, cost, propensity, strict=True)]
    report = bounds_from_logs(rows, cost_per_bad_answer=cost_per_bad_answer, slice_name=source)
    w = 1.0 / np.asarray(propensity, dtype=np.float64)
    masks = {"r": served == want, "c": ~served, "s": served}

    def stat(mult: np.ndarray) -> dict[str, np.ndarray]:
        mw = mult * w
        val = {k: (mw[:, m] @ quality[m]) / mw[:, m].sum(axis=1) for k, m in masks.items()}
        cst = {k: (mw[:, m] @ cost[m]) / mw[:, m].sum(axis=1) for k, m in masks.items()}
        share = (mult @ want.astype(np.float64)) / mult.sum(axis=1)
        return _derived(val["r"], val["c"], val["s"], cst["r"], cst["s"], share, cost_per_bad_answer)

    arm_means = {}
    labels = np.array(["live" if a is None else a for a in arms])
    for arm in ("live", "all_cheap", "all_strong"):
        m = labels == arm
        if m.any():
            arm_means[arm] = {"n": int(m.sum()), "quality": float(quality[m].mean()), "cost_usd": float(cost[m].mean()),
                              "strong_share": float(served[m].mean())}
    return _result(report, bootstrap(len(rows), n_boot, stat), arm_means)


def recorded_result(s_strong: np.ndarray, s_weak: np.ndarray, c_strong: np.ndarray, c_weak: np.ndarray,
                    routed: np.ndarray, *, cost_per_bad_answer: float, source: str, n_boot: int = 500) -> SourceResult:
    """Bounds from recorded outcomes of both models (paired bootstrap over prompts)."""
    import numpy as np

    from gearshift.learning.bounds import misroute_bounds

    report = misroute_bounds(s_strong, s_weak, c_strong, c_weak, routed, cost_per_bad_answer=cost_per_bad_answer,
                             slice_name=source)
    rq, rc = np.where(routed, s_strong, s_weak), np.where(routed, c_strong, c_weak)

    def stat(mult: np.ndarray) -> dict[str, np.ndarray]:
        tot = mult.sum(axis=1)

        def mean(x: np.ndarray) -> np.ndarray:
            out: np.ndarray = (mult @ x.astype(np.float64)) / tot
            return out

        return _derived(mean(rq), mean(s_weak), mean(s_strong), mean(rc), mean(c_strong), mean(routed),
                        cost_per_bad_answer)

    return _result(report, bootstrap(len(routed), n_boot, stat), {})


def _result(report: BoundsReport, ci: dict[str, tuple[float, float]],
            arm_means: dict[str, dict[str, float]]) -> SourceResult:
    r, c, s = report.router, report.all_cheap, report.all_strong
    lift = r.quality - (c.quality + r.strong_share * (s.quality - c.quality))
    lo, hi = ci["lift_over_random"]
    real = lo > 0
    gl, gh = ci["gain_over_cheap"]
    parts = [f"router beats all-cheap on quality by {r.quality - c.quality:+.4f} (95% CI {gl:+.4f} to {gh:+.4f})",
             f"and a random router at its strong share ({r.strong_share:.1%}) by {lift:+.4f} "
             f"(95% CI {lo:+.4f} to {hi:+.4f})"]
    parts.append("-> doing real work." if real else ("-> worse than random routing." if hi < 0
                                                     else "-> NOT shown to do real work."))
    m = report.money
    nl, nh = ci["net_per_request"]
    parts.append(f"Money: saves ${m.dollars_saved:.4f} vs all-strong, {m.extra_bad_answers:.1f} extra bad answers "
                 f"x ${m.cost_per_bad_answer:g} = ${m.downstream_cost:.4f}, net ${m.net_usd:+.4f} "
                 f"(95% CI ${nl * report.n:+.4f} to ${nh * report.n:+.4f}) -> " + _money_word(m.worth_it, nl, nh))
    return SourceResult(report, ci, " ".join(parts), real, arm_means)


def _money_word(worth_it: bool, lo: float, hi: float) -> str:
    if lo > 0:
        return "worth it."
    if hi < 0:
        return "not worth it."
    return ("worth it" if worth_it else "not worth it") + " on the point estimate, but the interval spans zero."


# -- reading -------------------------------------------------------------------------------------------------
def bad_answer_ids(url: str, since: float | None) -> set[str]:
    from gearshift.store.factory import open_label_store

    labels = open_label_store(url)
    try:
        return {str(ev["request_id"]) for ev in labels.signals(since=since) if ev.get("signal") in BAD_SIGNALS}
    finally:
        labels.close()


def logged_results(log: DecisionLog, arms: dict[str, str | None], bad: set[str], *, cost_per_bad_answer: float,
                   n_boot: int = 500) -> dict[str, SourceResult]:
    """Per quality source ("judge" on labelled rows, "signals" on all): the logged bounds."""
    import numpy as np

    if len(log.tiers) != 2:
        raise DataError(f"bounds compare two tiers; the log has {len(log.tiers)} ({', '.join(log.tiers)})")
    served, want = log.actions == 1, log.base_tiers() == 1
    arm = [arms.get(rid) for rid in log.request_ids]
    signal_q = np.array([0.0 if rid in bad else 1.0 for rid in log.request_ids])
    out = {}
    for source, quality in (("judge", log.judge), ("signals", signal_q)):
        keep = np.flatnonzero(np.isfinite(quality))
        if keep.size == 0:
            continue
        try:
            out[source] = logged_result(served[keep], want[keep], quality[keep], log.costs[keep],
                                        np.clip(log.propensities[keep], 1e-12, 1.0), [arm[i] for i in keep],
                                        cost_per_bad_answer=cost_per_bad_answer, source=source, n_boot=n_boot)
        except DataError as exc:
            out.pop(source, None)
            if source == "signals":
                raise
            _warn(f"judge labels: {exc}")
    return out


def _warn(text: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(f"[yellow]warning:[/] {text}", highlight=False)


def _offline(args: argparse.Namespace) -> dict[str, SourceResult]:
    import numpy as np

    from gearshift.cli.common import score_prompts
    from gearshift.cli.learn import resolve_candidate
    from gearshift.data.registry import load_dataset
    from gearshift.evaluation.labels import default_pair
    from gearshift.evaluation.metrics import Outcomes

    router, _, _ = resolve_candidate(args.router, None)
    if router is None:
        raise ConfigError("offline bounds need a router (--router), not the live policy")
    data = load_dataset(args.data)
    rng = np.random.default_rng(0)
    data = data.subset(np.sort(rng.choice(len(data), min(args.n, len(data)), replace=False)))
    strong, weak = default_pair(data)
    o = Outcomes.from_dataset(data, strong, weak)
    if not (np.all(np.isfinite(o.c_strong)) and np.all(np.isfinite(o.c_weak))):
        raise DataError(f"{args.data}: recorded outcomes lack costs for {strong} or {weak}")
    routed = score_prompts(router, data.prompts, f"scoring {args.data}") >= args.threshold
    return {"recorded": recorded_result(o.s_strong, o.s_weak, o.c_strong, o.c_weak, routed,
                                        cost_per_bad_answer=args.cost_per_bad_answer, source="recorded",
                                        n_boot=args.n_boot)}


def _print(results: dict[str, SourceResult]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for source, res in results.items():
        rep = res.report
        table = Table(title=f"{source}: {rep.n} requests ({rep.source})")
        for col in ("policy", "quality", "cost / request", "strong share", "n"):
            table.add_column(col, justify="left" if col == "policy" else "right")
        for v in (rep.all_cheap, rep.router, rep.all_strong):
            table.add_row(v.name, f"{v.quality:.4f}", f"${v.cost_usd:.6f}", f"{v.strong_share:.1%}", str(v.n))
        console.print(table)
        if res.arm_means:
            console.print("served per arm: " + ", ".join(f"{a} n={m['n']} quality={m['quality']:.3f}"
                                                         for a, m in res.arm_means.items()), highlight=False)
        console.print(res.verdict, highlight=False)


def run_bounds(args: argparse.Namespace) -> int:

    if args.cost_per_bad_answer < 0:
        raise ConfigError("--cost-per-bad-answer must be >= 0")
    if args.data:
        results = _offline(args)
    else:
        from gearshift.cli.common import parse_since, read, store_url

        log = read(args)
        since, url = parse_since(args.since), store_url(args)
        arms = dict(zip(log.request_ids, log.experiment_arms, strict=True))  # read with the log, not again
        if not any(a is not None for a in arms.values()) and not log.explored.any():
            _warn("no misroute experiment or exploration in the window: only the router's own choices were "
                  "served, so the bounds are biased; set [experiment] misroute_fraction")
        results = logged_results(log, arms, bad_answer_ids(url, since),
                                 cost_per_bad_answer=args.cost_per_bad_answer, n_boot=args.n_boot)
    from rich.console import Console

    from gearshift.cli.terminal import emit_json, json_outputs

    err = Console(stderr=True, soft_wrap=True)
    json_stdout, json_path = json_outputs(args, err)
    if not json_stdout:
        _print(results)
    if json_stdout or json_path:
        emit_json({k: v.to_json() for k, v in results.items()}, json_stdout, json_path, err, "bounds")
    return 0
