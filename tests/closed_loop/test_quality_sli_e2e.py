"""Quality and escalation SLIs per segment and per client, through the real gateway (uvicorn on 127.0.0.1).

Every request is routed cheap and shadowed on the strong tier; the judge upstream scores an answer 9 when
it contains "strong" and 3 otherwise. The cheap upstream gives a good answer ("a strong enough answer")
unless the prompt holds a word from `FAILING`, so a segment whose cheap answers fail is made by its
prompts, and the judge says so on its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from closed_loop.shadow_harness import JudgeUpstream, KeywordRouter, WebhookReceiver, judge_endpoint, settings
from closed_loop.shadow_harness import wait_until
from gateway.harness import GatewayServer
from gearshift.errors import ConfigError
from gearshift.gateway.app import create_app
from gearshift.gateway.settings import hash_key, parse_settings
from support.fake_upstream import Behaviour, FakeUpstream

FAILING = ("bitte", "please")
DE = ["Wie viele Einwohner hat die Stadt Berlin heute ungefähr, bitte?",
      "Erkläre mir bitte, warum der Himmel am Tag blau ist.",
      "Kannst du mir bitte sagen, wie hoch die Zugspitze ist?",
      "Bitte beschreibe kurz, wie eine Dampfmaschine funktioniert.",
      "Nenne mir bitte drei bekannte Werke von Goethe.",
      "Wie lange dauert eine Zugfahrt von Hamburg nach München, bitte?"]
EN = ["How many people live in the city of Berlin today?", "Why is the sky blue during the day?",
      "How tall is the Zugspitze mountain, please?", "Describe briefly how a steam engine works.",
      "Name three well known works by Goethe.", "How long is a train ride from Hamburg to Munich, please?"]
KEYS = {"team-a": "sk-team-a-0001", "team-b": "sk-team-b-0002"}


class CheapUpstream(FakeUpstream):
    """A good answer, except for prompts holding a word of `FAILING`."""

    def _completion(self, req: dict[str, Any], b: Behaviour, text: str) -> dict[str, Any]:
        prompt = str((req.get("messages") or [{}])[-1].get("content", "")).lower()
        text = "cheap guess" if any(w in prompt for w in FAILING) else "a strong enough answer"
        return super()._completion(req, b, text)


@pytest.fixture(scope="module")
def ups() -> Iterator[tuple[FakeUpstream, FakeUpstream, JudgeUpstream]]:
    cheap, strong, judge = CheapUpstream(), FakeUpstream(answer="the strong answer is 42"), JudgeUpstream()
    for u in (cheap, strong, judge):
        u.start()
    yield cheap, strong, judge
    for u in (cheap, strong, judge):
        u.stop()


def _gateway(ups: tuple[FakeUpstream, FakeUpstream, JudgeUpstream], db: Path, hook: str, *,
             bands: dict[str, Any], **slo: Any) -> GatewayServer:
    cheap, strong, judge = ups
    extra: dict[str, Any] = {"auth": {"keys": [{"id": k, "sha256": hash_key(v), "scopes": ["inference", "admin"]}
                                               for k, v in KEYS.items()]}}
    cfg = settings(cheap, strong, db, **extra,
                   shadow={"enabled": True, "every_n": 1, "judge": {"endpoint": judge_endpoint(judge)}},
                   slo={"enabled": True, "window_s": 120.0, "check_interval_s": 0.1, "min_events": 6,
                        "min_judged": 6, "strong_share": [0.0, 1.0], "escalation_rate": [0.0, 0.5],
                        "quality_loss": [0.0, 0.7], "webhook_url": hook, "segment_bands": bands, **slo})
    return GatewayServer(create_app(cfg, router=KeywordRouter()))


def _send(gw: GatewayServer, prompts: list[str], key: str = "team-a") -> None:
    with gw.client(headers={"Authorization": f"Bearer {KEYS[key]}"}) as c:
        for p in prompts:
            r = c.post("/v1/chat/completions", json={"model": "gearshift/auto",
                                                     "messages": [{"role": "user", "content": p}]})
            assert r.status_code == 200, r.text


def _settled(gw: GatewayServer, judged: int) -> None:
    """Every judgement in, then two more checks, so an alert that would fire has fired."""
    monitor = gw.gateway.closed_loop.monitor
    assert wait_until(lambda: monitor.judged == judged, 10.0), monitor.judged
    checks = monitor.snapshot["time"]
    assert wait_until(lambda: monitor.snapshot["time"] != checks, 5.0)
    checks = monitor.snapshot["time"]
    assert wait_until(lambda: monitor.snapshot["time"] != checks, 5.0)


def _fired(hook: WebhookReceiver, kind: str) -> list[str]:
    return sorted(a["segment"] for a in hook.alerts() if a["kind"] == kind)


def test_a_language_whose_cheap_answers_fail_raises_a_quality_alert(ups: Any, tmp_path: Path) -> None:
    # German: every cheap answer fails (loss 1.0, band 0-0.2 for language=de); English: one in three fails
    # (0.33, under the global band 0-0.7), and all traffic together (0.67) stays under it too
    with WebhookReceiver() as hook:
        with _gateway(ups, tmp_path / "gw.sqlite", hook.url,
                      bands={"language=de": {"quality_loss": [0.0, 0.2]}}) as gw:
            _send(gw, DE + EN)
            _settled(gw, 12)
            assert _fired(hook, "quality_loss") == ["language=de"]
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
    with WebhookReceiver() as hook:
        with _gateway(ups, tmp_path / "gw.sqlite", hook.url, bands={"language=de": {"quality_loss": [0.0, 0.2]}},
                      min_judged=7) as gw:
            _send(gw, DE + EN)
            _settled(gw, 12)
    assert _fired(hook, "quality_loss") == []  # 6 German judgements < 7


def test_a_client_whose_cheap_answers_fail_raises_a_quality_alert(ups: Any, tmp_path: Path) -> None:
    # same English prompts from two keys; team-b's all hold "please" (every cheap answer fails)
    plain = [p.replace(", please", "") for p in EN]
    with WebhookReceiver() as hook:
        with _gateway(ups, tmp_path / "gw.sqlite", hook.url,
                      bands={"client=team-b": {"quality_loss": [0.0, 0.2]}}) as gw:
            _send(gw, plain, key="team-a")
            _send(gw, [p.rstrip("?.") + ", please?" for p in plain], key="team-b")
            _settled(gw, 12)
    assert _fired(hook, "quality_loss") == ["client=team-b"]


def test_escalation_band_per_segment(ups: Any, tmp_path: Path) -> None:
    # a third of the prompts with code and a third of those without are escalated (router unsure): 0.33 is
    # inside the global band 0-0.5 but outside has_code=yes's own 0-0.1
    code = [f"Fix this: ```python\ndef f{i}(x):\n    return x + {i}\n```" for i in range(6)]
    code[0], code[3] = "UNSURE " + code[0], "UNSURE " + code[3]
    prose = [f"UNSURE {p}" if i in (1, 4) else p for i, p in enumerate(plain_en())]
    with WebhookReceiver() as hook:
        with _gateway(ups, tmp_path / "gw.sqlite", hook.url,
                      bands={"has_code=yes": {"escalation_rate": [0.0, 0.1]}}) as gw:
            _send(gw, code + prose)
            _settled(gw, 12)
    assert _fired(hook, "escalation_rate") == ["has_code=yes"]
    alert = next(a for a in hook.alerts() if a["kind"] == "escalation_rate")
    assert alert["value"] == pytest.approx(1 / 3) and alert["band"] == [0.0, 0.1]


def plain_en() -> list[str]:
    return [p.replace(", please", "") for p in EN]


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
