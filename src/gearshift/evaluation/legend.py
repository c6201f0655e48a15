"""The words that explain the metrics, shared by the terminal table and the HTML report so they never drift."""

from __future__ import annotations

#: what the reference rows are called, in the terminal table and the HTML report (JSON keeps the keys)
REFERENCE_LABELS = {"all_cheap": "all-cheap", "all_strong": "all-strong", "oracle": "oracle", "random": "random"}


def legend(threshold: float) -> list[str]:
    """What each column means, one line per term."""
    return [
        "APGR: average share of the strong-minus-cheap quality gap recovered, over every share of prompts sent "
        "strong (random 0.5, higher is better). The oracle can exceed 1: it sends strong only where strong "
        "wins and keeps the prompts where cheap answered better, so it beats all-strong.",
        "CPT50/80/95: share of prompts that must go strong to recover 50/80/95 % of the gap (lower is better).",
        "AIQ: mean quality under the cost-quality curve's convex hull (higher is better).",
        f"strong, q-loss: at threshold p_strong >= {threshold:g}, the share sent strong, and the share sent "
        "cheap that needed strong (quality loss).",
        "all-cheap, all-strong, oracle, random: reference policies (oracle knows every prompt's outcomes).",
    ]


def operating_point_note(threshold: float) -> str:
    """Why the one-threshold columns (strong share, losses, weighted loss) can make a good router look bad."""
    return (f"Strong share, quality loss, cost inflation and weighted loss are measured at one operating point "
            f"(p_strong >= {threshold:g}) and move with it: a router that sends most prompts strong there has "
            "little quality loss but much cost inflation, and can have a higher weighted loss than random even "
            "when it ranks prompts far better. Compare routers on APGR and CPT, which cover every operating "
            "point; read the weighted loss together with the strong share, and pick the threshold for your "
            "budget with `gearshift calibrate`.")
