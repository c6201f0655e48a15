"""One signal model (#14): bounds and off-policy evaluation read a signal the same way."""

from __future__ import annotations

import pytest

from gearshift.learning.logs import _feedback_rewards
from gearshift.learning.signal_model import is_bad, signal_reward


@pytest.mark.parametrize(("event", "reward"), [
    ({"signal": "thumbs_up"}, 1.0), ({"signal": "thumbs_down"}, 0.0), ({"signal": "handoff"}, 0.0),
    ({"signal": "regeneration"}, 0.0), ({"signal": "correction"}, 0.0), ({"signal": "abandonment"}, None),
    ({"signal": "rating", "value": 0.8}, 0.8), ({"signal": "rating", "value": 7}, 1.0),
    ({"signal": "rating"}, None), ({"signal": "something new"}, None),
])
def test_each_signal_has_one_reward(event: dict[str, object], reward: float | None) -> None:
    assert signal_reward(event) == reward


def test_bounds_and_ope_agree_on_handoff_and_abandonment() -> None:
    events = [{"request_id": "a", "signal": "handoff", "source": "explicit"},
              {"request_id": "b", "signal": "abandonment", "source": "implicit"},
              {"request_id": "c", "signal": "rating", "value": 0.3, "source": "explicit"}]
    rewards = _feedback_rewards(events)  # what OPE and retraining read
    bad = {str(e["request_id"]) for e in events if is_bad(e)}  # what bounds read
    assert rewards == {"a": 0.0, "c": 0.3}
    assert bad == {"a", "c"}  # a hand-off is a bad answer for both; abandonment is no information for both
    assert bad == {rid for rid, r in rewards.items() if r < 0.5}
