"""The words that explain the metrics, shared by the terminal table and the HTML report so they never drift."""

from __future__ import annotations

from gearshift.evaluation.metrics import MetricSettings

#: what the reference rows are called, in the terminal table and the HTML report (JSON keeps the keys)
REFERENCE_LABELS = {"all_cheap": "all-cheap", "all_strong": "all-strong", "oracle": "oracle", "random": "random"}


def operating_point(settings: MetricSettings) -> str:
    """Where the one-threshold columns are measured, in words."""
    if settings.target_strong_share is not None:
        return (f"each router's own threshold that sends {settings.target_strong_share:.0%} of the test prompts "
                "strong (its operating point)")
    return f"the fixed threshold p_strong >= {settings.threshold:g}"


def legend(settings: MetricSettings) -> list[str]:
    """What each column means, one line per term."""
    return [
        "APGR: average share of the strong-minus-cheap quality gap recovered, over every share of prompts sent "
        "strong (random 0.5, higher is better). The oracle can exceed 1: it sends strong only where strong "
        "wins and keeps the prompts where cheap answered better, so it beats all-strong.",
        "CPT50/80/95: share of prompts that must go strong to recover 50/80/95 % of the gap (lower is better).",
        "AIQ: mean quality under the cost-quality curve's convex hull (higher is better).",
        f"strong, q-loss: at {operating_point(settings)}, the share sent strong, and the share sent cheap that "
        "needed strong (quality loss).",
        "all-cheap, all-strong, oracle, random: reference policies (oracle knows every prompt's outcomes).",
    ]


def operating_point_note(settings: MetricSettings) -> str:
    """Why the one-threshold columns (strong share, losses, weighted loss) must be read with care."""
    if settings.target_strong_share is not None:
        return (f"Strong share, quality loss, cost inflation and weighted loss are measured at "
                f"{operating_point(settings)}: every router sends about the same share strong there, so these "
                "columns compare which prompts each one picks, at that one budget (a router whose scores tie in "
                "blocks, like the heuristic, lands as near as its ties allow: its strong column says where). APGR "
                "and CPT cover every budget; pick your own with `gearshift calibrate`.")
    return (f"Strong share, quality loss, cost inflation and weighted loss are measured at "
            f"{operating_point(settings)} and move with it: a router that sends most prompts strong there has "
            "little quality loss but much cost inflation, and can have a higher weighted loss than random even "
            "when it ranks prompts far better. Compare routers on APGR and CPT, which cover every operating "
            "point; read the weighted loss together with the strong share, and pick the threshold for your "
            "budget with `gearshift calibrate`.")
