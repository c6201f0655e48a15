"""`gearshift calibrate`: thresholds from the scores of recent logged traffic, not from a benchmark.

Three targets: a strong-tier share, an average cost per 1,000 requests (tier costs as logged), or a
bounded quality loss with a confidence (risk control on labelled prompts: shadow/triage labels in the
log, or a recorded-outcomes dataset with --data for offline use). Prints the TOML to paste into the
gateway config (or writes it with --write) and the expected quality change on labelled decisions.
`--per-segment FIELD` meets the target within each segment value too, as `[router] segment_thresholds`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gearshift.cli.common import add_log_source
from gearshift.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

    from gearshift.learning.logs import DecisionLog

MIN_SEGMENT = 20  #: fewer logged decisions than this in a segment: no per-segment threshold


def register(subparsers: Any) -> None:
    cal = subparsers.add_parser("calibrate", help="set thresholds from logged scores: share, cost or risk target",
                                description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_log_source(cal)
    target = cal.add_mutually_exclusive_group(required=True)
    target.add_argument("--target-strong-share", type=float, help="share of requests sent to the strongest tier")
    target.add_argument("--target-cost-per-1k", type=float, help="average USD per 1,000 requests")
    target.add_argument("--max-quality-loss", type=float, help="quality loss vs all-strong to stay under (risk)")
    cal.add_argument("--confidence", type=float, default=0.95, help="risk control confidence (default 0.95)")
    cal.add_argument("--method", choices=["ltt", "crc"], default="ltt", help="risk control method (default ltt)")
    cal.add_argument("--per-segment", choices=["language", "length_bucket", "has_code", "turn"],
                     help="also set thresholds per value of this segment field ([router] segment_thresholds)")
    cal.add_argument("--router", help="re-score the logged prompts with this version (NAME[/VERSION], champion) "
                                      "or router spec instead of using the logged scores")
    cal.add_argument("--data", help="risk control on a recorded-outcomes dataset (mmlu, gsm8k or FILE.jsonl) "
                                    "instead of the log's labels")
    cal.add_argument("--n", type=int, default=2000, help="prompts sampled from --data (default 2000)")
    cal.add_argument("--write", type=Path, metavar="FILE", help="write the TOML snippet to this file")
    cal.set_defaults(handler=run_calibrate)


def _thresholds(args: argparse.Namespace, scores: np.ndarray, tier_costs: np.ndarray | None,
                tiers: tuple[str, ...]) -> tuple[float, ...]:
    from gearshift.routers.calibrate import calibrate_cost, calibrate_share

    if args.target_strong_share is not None:
        if len(tiers) != 2:
            raise ConfigError("--target-strong-share calibrates two tiers; use --target-cost-per-1k for more")
        return calibrate_share(scores, args.target_strong_share, tiers=tiers, tolerance=0.0).thresholds
    if tier_costs is None:
        raise ConfigError("no logged costs per tier: every tier needs decisions with cost_usd")
    return calibrate_cost(scores, tier_costs, args.target_cost_per_1k / 1000.0, tiers=tiers).thresholds


def segment_thresholds(args: argparse.Namespace, log: DecisionLog, scores: np.ndarray,
                       costs: np.ndarray | None) -> dict[str, tuple[float, ...]]:
    """The same target met within each value of `--per-segment` that has MIN_SEGMENT decisions, keyed
    FIELD=VALUE as `[router] segment_thresholds` matches it against the gateway's segment row."""
    import numpy as np

    from gearshift.policy.experiment import segment_value

    field = args.per_segment
    values = np.array([segment_value(s, field) or "und" for s in log.segments])
    out: dict[str, tuple[float, ...]] = {}
    for v in sorted(set(values.tolist())):
        m = values == v
        if m.sum() >= MIN_SEGMENT:
            out[f"{field}={v}"] = _thresholds(args, scores[m], costs, log.tiers)
    return out


def _tier_costs(log: DecisionLog) -> np.ndarray | None:
    import numpy as np

    out = []
    for a in range(len(log.tiers)):
        seen = log.costs[log.actions == a]
        if seen.size == 0:
            return None
        out.append(float(seen.mean()))
    return np.maximum.accumulate(np.array(out))  # calibrate_cost wants costs non-decreasing cheap to strong


def _risk(args: argparse.Namespace, log: DecisionLog | None, scores: np.ndarray | None, router: Any,
          ) -> tuple[float, str]:
    """(threshold, description of the calibration set) under `calibrate_risk`."""
    import numpy as np

    from gearshift.learning.risk_control import calibrate_risk, cheap_losses

    if args.data:
        from gearshift.data.registry import load_dataset
        from gearshift.evaluation.labels import default_pair

        if router is None:
            raise ConfigError("--data needs --router (the router whose scores the thresholds apply to)")
        from gearshift.cli.common import score_prompts

        data = load_dataset(args.data)
        rng = np.random.default_rng(0)
        data = data.subset(np.sort(rng.choice(len(data), min(args.n, len(data)), replace=False)))
        strong, weak = default_pair(data)
        p = score_prompts(router, data.prompts, f"scoring {args.data}")
        losses, what = cheap_losses(data.scores(strong), data.scores(weak)), f"{len(data)} {args.data} prompts"
    else:
        if log is None or scores is None:
            raise ConfigError("risk control needs labelled decisions in the log, or --data")
        labelled = np.isfinite(log.gaps)
        if not labelled.any():
            raise ConfigError("no labelled decisions in the window (shadow or triage labels); use --data for offline")
        p, losses = scores[labelled], np.clip(log.gaps[labelled], 0.0, 1.0)
        what = f"{int(labelled.sum())} labelled decisions"
    r = calibrate_risk(p, losses, max_quality_loss=args.max_quality_loss, confidence=args.confidence,
                       method=args.method)
    return r.threshold, (f"{what}: strong share {r.strong_share:.1%}, empirical loss {r.empirical_loss:.4f}, "
                         f"bound {r.loss_bound:.4f} <= {r.max_quality_loss} ({r.method}, {r.confidence:.0%})")


def expected_quality(log: DecisionLog, scores: np.ndarray, thresholds: tuple[float, ...]) -> tuple[float, float, int]:
    """(quality now, quality with `thresholds`, n): judge scores of the tier each policy picks, on decisions
    whose shadow label scored every tier either policy uses."""
    import numpy as np

    new = np.searchsorted(np.asarray(thresholds), scores, side="right")
    old = log.base_tiers()
    now, after = [], []
    for i, s in enumerate(log.tier_scores):
        a, b = log.tiers[int(old[i])], log.tiers[int(min(new[i], len(log.tiers) - 1))]
        if a in s and b in s:
            now.append(s[a])
            after.append(s[b])
    if not now:
        return float("nan"), float("nan"), 0
    return float(np.mean(now)), float(np.mean(after)), len(now)


def snippet(thresholds: tuple[float, ...], version: str | None, per_segment: dict[str, tuple[float, ...]],
            field: str | None) -> str:
    lines = ["[router]"]
    if version is not None:
        lines.append(f'version = "{version}"')
    lines.append("thresholds = [" + ", ".join(f"{t:.6f}" for t in thresholds) + "]")
    if per_segment:  # applied per request by the gateway (policy/draw.py); others use `thresholds`
        lines.append(f"# per {field}: requests whose segment has {field}=VALUE use these thresholds")
        lines.append("segment_thresholds = { " + ", ".join(
            f'"{k}" = [' + ", ".join(f"{t:.6f}" for t in v) + "]" for k, v in sorted(per_segment.items())) + " }")
    return "\n".join(lines) + "\n"


def run_calibrate(args: argparse.Namespace) -> int:
    import numpy as np
    from rich.console import Console

    from gearshift.cli.common import read, registry, score_prompts, store_exists
    from gearshift.learning.candidates import resolve_candidate

    console = Console()
    if args.max_quality_loss is not None and args.per_segment:
        raise ConfigError("--per-segment works with share and cost targets")
    router, version = None, None
    log = None if (args.data and args.max_quality_loss is not None) else read(args)
    if args.router:
        reg = registry(args) if store_exists(args) else None
        try:
            router, _, v = resolve_candidate(args.router, reg)
        finally:
            if reg is not None:
                reg.close()
        version = v.ref if v is not None else None
    scores = None
    if log is not None:
        if router is None:
            scores = log.scores
        else:
            keep = [i for i, p in enumerate(log.prompts) if p is not None]
            if len(keep) < len(log):
                raise ConfigError(f"{len(log) - len(keep)} logged decisions have no prompt text to re-score")
            scores = score_prompts(router, [str(p) for p in log.prompts])
    per_segment: dict[str, tuple[float, ...]] = {}
    if args.max_quality_loss is not None:
        t, what = _risk(args, log, scores, router)
        thresholds: tuple[float, ...] = (t,)
        console.print(f"risk-controlled threshold {t:.4f} on {what}", highlight=False)
    else:
        if log is None or scores is None:
            raise ConfigError("share and cost targets need the decision log")
        costs = _tier_costs(log) if args.target_cost_per_1k is not None else None
        thresholds = _thresholds(args, scores, costs, log.tiers)
        if args.per_segment:
            per_segment = segment_thresholds(args, log, scores, costs)
            for key, seg_t in sorted(per_segment.items()):
                console.print(f"{key}: thresholds {', '.join(f'{x:.4f}' for x in seg_t)}", highlight=False)
        idx = np.searchsorted(np.asarray(thresholds), scores, side="right")
        shares = np.bincount(idx, minlength=len(log.tiers)) / len(scores)
        console.print(f"on {len(scores)} logged decisions: " + ", ".join(
            f"{t} {s:.1%}" for t, s in zip(log.tiers, shares, strict=True)), highlight=False)
        if costs is not None:
            console.print(f"expected cost per 1k requests: ${float(np.mean(costs[idx])) * 1000:.4f}", highlight=False)
    if log is not None and scores is not None:
        q_now, q_new, n = expected_quality(log, scores, thresholds)
        if n:
            console.print(f"expected quality on {n} labelled decisions: {q_now:.4f} -> {q_new:.4f} "
                          f"({q_new - q_now:+.4f})", highlight=False)
        else:
            console.print("no shadow labels covering both policies' tiers: quality change unknown", highlight=False)
    text = snippet(thresholds, version, per_segment, args.per_segment)
    console.print(text, markup=False, highlight=False)
    if args.write:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        args.write.write_text(text, encoding="utf-8")
        console.print(f"wrote {args.write}", highlight=False)
    return 0
