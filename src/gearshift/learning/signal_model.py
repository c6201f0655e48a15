"""One signal model: what each downstream signal says about an answer, as a reward in [0, 1] or no information.

Bounds, off-policy evaluation, retraining and the dashboard all read signals through this table, so a hand-off
cannot be a bad answer in one report and noise in another.

| signal | reward | why |
| --- | --- | --- |
| `thumbs_up` | 1 | the user said the answer was good |
| `thumbs_down` | 0 | the user said it was not |
| `rating` | its value (clipped to 0–1) | an explicit score |
| `handoff` | 0 | the user needed a human (explicit, or a configured tool call / phrase) |
| `regeneration` | 0 | the same conversation asked again for the same turn |
| `correction` | 0 | the next turn corrected the answer |
| `edit` | 0 | the user reworded the same message (edited it, or re-asked it next turn): the answer missed |
| `abandonment` | none | the client left before the answer arrived: the wait was too long, not the answer bad |
| judge score | the score | the shadow judge's rating of the answer (0–1) |

An answer is *bad* when its reward is below 0.5; a signal without a reward says nothing either way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SIGNAL_REWARD: dict[str, float | None] = {"thumbs_up": 1.0, "thumbs_down": 0.0, "handoff": 0.0,
                                          "regeneration": 0.0, "correction": 0.0, "edit": 0.0,
                                          "abandonment": None}
BAD_BELOW = 0.5


def signal_reward(event: Mapping[str, Any]) -> float | None:
    """The reward one signal event implies (`signal`, and `value` for ratings and valued thumbs), or None."""
    name = str(event.get("signal"))
    value = event.get("value")
    if name == "rating" or (name in ("thumbs_up", "thumbs_down") and value is not None):
        return None if not isinstance(value, (int, float)) else min(1.0, max(0.0, float(value)))
    return SIGNAL_REWARD.get(name)


def is_bad(event: Mapping[str, Any]) -> bool:
    """True when the event says the answer was bad (reward below 0.5); False for good or uninformative ones."""
    reward = signal_reward(event)
    return reward is not None and reward < BAD_BELOW
