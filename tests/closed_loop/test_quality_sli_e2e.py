"""Quality and escalation SLIs per segment and per client, through the real gateway (uvicorn on 127.0.0.1).

Every request is routed cheap and shadowed on the strong tier; the judge upstream scores an answer 9 when
it contains "strong" and 3 otherwise. The cheap upstream gives a good answer ("a strong enough answer")
unless the prompt holds a word from `FAILING` (`shadow_harness`), so a segment whose cheap answers fail is made by its
prompts, and the judge says so on its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from closed_loop.shadow_harness import (
    DE,
    EN,
    KEYS,
    PLAIN,
    JudgeUpstream,
    WebhookReceiver,
    fired,
    send_as,
    settled,
    sli_gateway,
    sli_upstreams,
)
from gearshift.errors import ConfigError
from gearshift.gateway.settings import parse_settings
from support.fake_upstream import FakeUpstream


@pytest.fixture(scope="module")
def ups() -> Iterator[tuple[FakeUpstream, FakeUpstream, JudgeUpstream]]:
    with sli_upstreams() as u:
        yield u


def test_a_language_whose_cheap_answers_fail_raises_a_quality_alert(ups: Any, tmp_path: Path) -> None:
    # German: every cheap answer fails (loss 1.0, band 0-0.2 for language=de); English: one in three fails
    # (0.33, under the global band 0-0.7), and all traffic together (0.67) stays under it too (English is
    # judged first, so the mix rises to 0.67 and never passes it)
    bands = {"language=de": {"quality_loss": [0.0, 0.2]}}
    with WebhookReceiver() as hook, sli_gateway(ups, tmp_path / "gw.sqlite", hook.url, bands=bands) as gw:
        send_as(gw, EN, judged=True)
        send_as(gw, DE)
        settled([gw], hook, 12)
        assert fired(hook, "quality_loss") == ["language=de"]
        with gw.client(headers={"Authorization": f"Bearer {KEYS['team-a']}"}) as c:
            metrics = c.get("/metrics").text
            page = c.get("/dashboard").text
            slis = c.get("/dashboard/api/summary").json()["slis"]
    alert = next(a for a in hook.alerts() if a["kind"] == "quality_loss")
    assert alert["value"] == 1.0 and alert["n"] == 6 and alert["band"] == [0.0, 0.2] and alert["direction"] == "high"
    assert 'gearshift_alerts_total{direction="high",kind="quality_loss",segment="language=de"} 1.0' in metrics
    assert 'gearshift_slo_sli{scope="process",segment="language=de",sli="quality_loss"} 1.0' in metrics
    assert 'gearshift_slo_sli_samples{scope="process",segment="language=de",sli="quality_loss"} 6.0' in metrics
    rows = {r["segment"]: r for r in slis["rows"]}
    assert slis["scope"] == "process"
    assert rows["language=de"]["quality_loss"] == {"value": 1.0, "n": 6, "band": [0.0, 0.2], "out": True}
    assert rows["language=en"]["quality_loss"]["value"] == pytest.approx(1 / 3)
    assert not rows["language=en"]["quality_loss"]["out"]
    assert 'id="slis"' in page and "language=de" in page


def test_min_judged_holds_back_a_segment_with_too_few_judgements(ups: Any, tmp_path: Path) -> None:
    bands = {"language=de": {"quality_loss": [0.0, 0.2]}}
    with WebhookReceiver() as hook, sli_gateway(ups, tmp_path / "gw.sqlite", hook.url, bands=bands, min_judged=7) as gw:
        send_as(gw, EN, judged=True)
        send_as(gw, DE)
        settled([gw], hook, 12)
    assert fired(hook, "quality_loss") == []  # 6 German judgements < 7


def test_a_client_whose_cheap_answers_fail_raises_a_quality_alert(ups: Any, tmp_path: Path) -> None:
    # same English prompts from two keys; team-b's all hold "please" (every cheap answer fails); all traffic
    # together: 0.5, under the global band 0-0.7
    bands = {"client=team-b": {"quality_loss": [0.0, 0.2]}}
    with WebhookReceiver() as hook, sli_gateway(ups, tmp_path / "gw.sqlite", hook.url, bands=bands) as gw:
        send_as(gw, PLAIN, key="team-a", judged=True)
        send_as(gw, [p.rstrip("?.") + ", please?" for p in PLAIN], key="team-b")
        settled([gw], hook, 12)
    assert fired(hook, "quality_loss") == ["client=team-b"]


def test_escalation_band_per_segment(ups: Any, tmp_path: Path) -> None:
    # a third of the prompts with code and a third of those without are escalated (router unsure): 0.33 is
    # inside the global band 0-0.5 but outside has_code=yes's own 0-0.1
    code = [f"Fix this: ```python\ndef f{i}(x):\n    return x + {i}\n```" for i in range(6)]
    code[0], code[3] = "UNSURE " + code[0], "UNSURE " + code[3]
    prose = [f"UNSURE {p}" if i in (1, 4) else p for i, p in enumerate(PLAIN)]
    bands = {"has_code=yes": {"escalation_rate": [0.0, 0.1]}}
    with WebhookReceiver() as hook, sli_gateway(ups, tmp_path / "gw.sqlite", hook.url, bands=bands) as gw:
        send_as(gw, code + prose)
        settled([gw], hook, 12)
    assert fired(hook, "escalation_rate") == ["has_code=yes"]
    alert = next(a for a in hook.alerts() if a["kind"] == "escalation_rate")
    assert alert["value"] == pytest.approx(1 / 3) and alert["band"] == [0.0, 0.1]


def test_segment_bands_are_validated() -> None:
    base = {"tiers": [{"name": "a", "deployments": [{"model": "m", "base_url": "http://x"}]},
                      {"name": "b", "deployments": [{"model": "n", "base_url": "http://x"}]}]}
    with pytest.raises(ConfigError, match="segment_bands"):
        parse_settings({**base, "slo": {"segment_bands": {"de": {"quality_loss": [0.0, 0.2]}}}})
    with pytest.raises(ConfigError, match="quality_loss"):
        parse_settings({**base, "slo": {"segment_bands": {"language=de": {"quality_loss": [0.5, 0.2]}}}})
    with pytest.raises(ConfigError, match="max_loss"):
        parse_settings({**base, "slo": {"segment_bands": {"language=de": {"max_loss": [0.0, 0.2]}}}})
    ok = parse_settings({**base, "slo": {"segment_bands": {"has_code=yes": [0.05, 0.9],
                                                           "client=k": {"quality_loss": [0.0, 0.1]}}}})
    assert ok.slo.bands_of("has_code=yes").strong_share == [0.05, 0.9]  # type: ignore[union-attr]
