from __future__ import annotations

import numpy as np
import pytest

from gearshift.errors import DataError
from gearshift.evaluation.confusion import routing_confusion
from gearshift.evaluation.labels import needs_strong


def test_strong_is_needed_only_beyond_the_tolerance() -> None:
    gaps = np.array([-1.0, 0.0, 0.05, 0.2, 1.0])
    assert needs_strong(gaps).tolist() == [False, False, True, True, True]
    assert needs_strong(gaps, eps=0.1).tolist() == [False, False, False, True, True]
    with pytest.raises(DataError):
        needs_strong(gaps, eps=-0.1)


def test_counts_add_up_and_errors_are_named_by_direction() -> None:
    rng = np.random.default_rng(0)
    need = rng.random(1000) < 0.3
    sent = rng.random(1000) < 0.4
    c = routing_confusion(need, sent)
    assert c.n == 1000
    assert c.strong_needed_sent_strong + c.quality_loss == need.sum()
    assert c.cost_inflation + c.cheap_enough_sent_cheap == (~need).sum()
    assert c.strong_needed_sent_strong + c.cost_inflation == sent.sum()
    assert c.quality_loss == int(np.sum(need & ~sent))  # sent cheap, strong was needed
    assert c.cost_inflation == int(np.sum(~need & sent))  # sent strong, cheap was enough
    assert c.strong_share == pytest.approx(sent.mean())


def test_weighted_loss_weighs_the_two_errors_separately() -> None:
    need = np.array([True, True, False, False])
    sent = np.array([False, True, True, False])  # one quality loss, one cost inflation
    assert routing_confusion(need, sent, cost_weight=1, quality_weight=1).weighted_loss == pytest.approx(0.5)
    assert routing_confusion(need, sent, cost_weight=1, quality_weight=3).weighted_loss == pytest.approx(1.0)
    assert routing_confusion(need, sent, cost_weight=0, quality_weight=1).weighted_loss == pytest.approx(0.25)
    j = routing_confusion(need, sent).to_json()
    assert j["quality_loss"] == 1 and j["cost_inflation"] == 1 and j["quality_loss_rate"] == 0.25


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(DataError):
        routing_confusion(np.array([True]), np.array([True, False]))
