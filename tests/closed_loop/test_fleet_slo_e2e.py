"""Fleet-wide SLO windows: two real gateways (uvicorn on 127.0.0.1) sharing one Redis key prefix see the
fleet's traffic in their windows, and the fleet pages once; without Redis each sees only its half.

Every request is routed cheap and shadowed on the strong tier; German prompts get failing cheap answers
(`shadow_harness.CheapUpstream`), so the judge finds a quality loss on every German decision.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import ExitStack
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
from gateway.harness import GatewayServer
from support.fake_upstream import FakeUpstream
from support.services import pg_schema, redis_prefix

pytestmark = [pytest.mark.services]

BANDS = {"language=de": {"quality_loss": [0.0, 0.2]}}


@pytest.fixture(scope="module")
def ups() -> Iterator[tuple[FakeUpstream, FakeUpstream, JudgeUpstream]]:
    with sli_upstreams() as u:
        yield u


def _pair(stack: ExitStack, ups: Any, tmp: Path, hook: WebhookReceiver, redis: dict[str, Any] | None,
          **slo: Any) -> list[GatewayServer]:
    sections = {"redis": redis} if redis is not None else {}
    return [stack.enter_context(sli_gateway(ups, tmp / f"{n}.sqlite", hook.url, bands=BANDS, sections=sections,
                                            min_judged=8, **slo)) for n in ("a", "b")]


def _metric(gw: GatewayServer, pattern: str) -> float:
    with gw.client(headers={"Authorization": f"Bearer {KEYS['team-a']}"}) as c:
        text = c.get("/metrics").text
    found = re.findall(rf"^{pattern} (\S+)$", text, flags=re.MULTILINE)
    return float(found[0]) if found else 0.0


def test_two_gateways_each_under_min_judged_page_one_fleet_alert(ups: Any, tmp_path: Path) -> None:
    # 3 English (fine) then 5 German (failing) per gateway: 5 judged German decisions each, under
    # min_judged = 8; the fleet's 10 are over it. All traffic: 10 losses in 16 (0.63), inside the global 0-0.7
    with redis_prefix() as (url, prefix), WebhookReceiver() as hook, ExitStack() as stack:
        a, b = _pair(stack, ups, tmp_path, hook, {"url": url, "prefix": prefix})
        send_as(a, PLAIN[:3], judged=True)
        send_as(b, PLAIN[3:6], judged=True)
        send_as(a, DE[:5])
        send_as(b, DE[1:6])
        settled([a, b], hook, 8)
        assert fired(hook, "quality_loss") == ["language=de"]  # once for the fleet, not once per gateway
        alert = next(x for x in hook.alerts() if x["kind"] == "quality_loss")
        assert 8 <= alert["n"] <= 10 and alert["value"] == 1.0  # fired once the fleet had enough (> 5 alone)
        # exactly one gateway paged; both count and show the fleet's window and alert
        paged = [_metric(gw, r'gearshift_alerts_total\{direction="high",kind="quality_loss",segment="language=de"\}')
                 for gw in (a, b)]
        assert sorted(paged) == [0.0, 1.0]
        for gw in (a, b):
            assert _metric(gw, r'gearshift_slo_sli_samples\{scope="fleet",segment="language=de",sli="quality_loss"\}'
                           ) == 10.0
            assert _metric(gw, r'gearshift_slo_sli_samples\{scope="fleet",segment="\*",sli="strong_share"\}') == 16.0
            with gw.client(headers={"Authorization": f"Bearer {KEYS['team-a']}"}) as c:
                summary = c.get("/dashboard/api/summary").json()
            assert summary["slis"]["scope"] == "fleet"
            assert [(x["kind"], x["segment"]) for x in summary["alerts"] if x["kind"] == "quality_loss"] == [
                ("quality_loss", "language=de")]


def test_without_redis_each_gateway_sees_only_its_half(ups: Any, tmp_path: Path) -> None:
    # the control: the same traffic, no shared windows -> each gateway's 5 judgements stay under min_judged
    with WebhookReceiver() as hook, ExitStack() as stack:
        a, b = _pair(stack, ups, tmp_path, hook, None)
        send_as(a, PLAIN[:3], judged=True)
        send_as(b, PLAIN[3:6], judged=True)
        send_as(a, DE[:5])
        send_as(b, DE[1:6])
        settled([a, b], hook, 8)
        assert a.gateway.closed_loop.monitor.snapshot["scope"] == "process"
    assert fired(hook, "quality_loss") == []


def test_fleet_escalation_alert_pages_once(ups: Any, tmp_path: Path) -> None:
    # decisions too: 6 per gateway (under min_events = 10 alone), half escalated; the fleet's 12 are at 0.5,
    # over the escalation band 0-0.2 (it fires as soon as the fleet has 10)
    mixed = [f"UNSURE {p}" if i % 2 else p for i, p in enumerate(EN)]
    with redis_prefix() as (url, prefix), WebhookReceiver() as hook, ExitStack() as stack:
        a, b = _pair(stack, ups, tmp_path, hook, {"url": url, "prefix": prefix}, min_events=10,
                     escalation_rate=[0.0, 0.2])
        send_as(a, mixed)
        send_as(b, mixed)
        settled([a, b], hook, 6)
    esc = [x for x in hook.alerts() if x["kind"] == "escalation_rate"]
    assert sorted(x["segment"] for x in esc) == sorted({x["segment"] for x in esc})  # one page per segment
    star = [x for x in esc if x["segment"] == "*"]
    assert len(star) == 1 and star[0]["n"] >= 10 and star[0]["value"] > 0.4  # each gateway alone: 6 decisions


def test_with_redis_down_a_gateway_alerts_on_its_own_windows(ups: Any, tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    # nothing listens on port 1: every fleet check meets an outage and falls back to this process's windows
    with WebhookReceiver() as hook, sli_gateway(ups, tmp_path / "gw.sqlite", hook.url, bands=BANDS,
                                                sections={"redis": {"url": "redis://127.0.0.1:1/0"}}) as gw:
        send_as(gw, PLAIN[:3], judged=True)
        send_as(gw, DE)
        settled([gw], hook, 9)
        assert gw.gateway.closed_loop.monitor.snapshot["scope"] == "process"
    assert fired(hook, "quality_loss") == ["language=de"]
    assert any("slo" in r.getMessage() for r in caplog.records)


def test_two_gateways_on_one_postgresql_store_page_one_fleet_alert(ups: Any, tmp_path: Path) -> None:
    # no Redis: the shared PostgreSQL store holds the fleet's windows and claims (migration 0004)
    with pg_schema("gs_slo") as store_url, WebhookReceiver() as hook, ExitStack() as stack:
        a, b = [stack.enter_context(sli_gateway(ups, tmp_path / f"{n}.sqlite", hook.url, bands=BANDS,
                                                sections={"store": {"url": store_url}}, min_judged=8))
                for n in ("a", "b")]
        send_as(a, PLAIN[:3], judged=True)
        send_as(b, PLAIN[3:6], judged=True)
        send_as(a, DE[:5])
        send_as(b, DE[1:6])
        settled([a, b], hook, 8)
        assert fired(hook, "quality_loss") == ["language=de"]
        for gw in (a, b):
            snapshot = gw.gateway.closed_loop.monitor.snapshot
            rows = {r["segment"]: r for r in snapshot["rows"]}
            assert snapshot["scope"] == "fleet" and rows["language=de"]["quality_loss"]["n"] == 10
