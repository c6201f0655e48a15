"""Fault benchmark: every upstream fault, streamed and not, alone and with a healthy fallback, through the real
gateway; what the client saw against what the decision log recorded.

    python benchmarks/faults.py [--requests 3] [--deadline 2.0] [--json out.json]

For each scenario x {json, stream} x {plain (the faulty deployment alone), failover (a healthy one behind
it), midstream (the same, with `[reliability] midstream_failover` on and the healthy deployment able to
continue a prefix)} it sends `--requests` requests and classifies each response as the client sees it:
`answer` (the complete, exact text), `error` (an OpenAI error body; its status), `cut` (a stream that ended
with an error event after text) or `hung` (no answer within the deadline + 1 s). Both upstreams give the
same answer (replicas of one model), so a continued answer can be checked word for word. It then reads the
decision log: one record per request, and whether each record's status agrees with the client's view
(ok<->answer, error<->error with the same HTTP status, truncated<->cut). The `healthy` rows are the
baseline of the same run. Upstreams are `tests/support/fake_upstream.py` servers on 127.0.0.1; the
gateway runs in-process (uvicorn).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from gateway.harness import serve
from gearshift.gateway.settings import parse_settings
from gearshift.store.base import DecisionQuery
from gearshift.store.sqlite import SQLiteDecisionStore
from support.fake_upstream import Behaviour, FakeUpstream, closed_port

ANSWER = "one answer of several words from either replica"
SCENARIOS: dict[str, Behaviour] = {
    "healthy": Behaviour(),
    "refused": Behaviour(kind="refused"),
    "timeout_before_headers": Behaviour(latency_s=30.0),
    "stalled_body": Behaviour.stall_body(),
    "malformed_json_or_sse": Behaviour.malformed_json(),
    "error_body_or_event": Behaviour.error_body_200(),
    "429_retry_after": Behaviour.status_code(429, retry_after="1"),
    "400_bad_request": Behaviour.status_code(400),
    "500": Behaviour.status_code(500),
    "503": Behaviour.status_code(503),
    "oversized": Behaviour.oversized(400_000),
    "trickle": Behaviour.trickle(bytes_per_tick=1, tick_s=0.5),
    "stream_stall_before_text": Behaviour.stall_stream(after_chunks=1),
    "stream_cut_before_text": Behaviour.cut_stream(after_chunks=1),
    "stream_stall_after_text": Behaviour.stall_stream(after_chunks=3),
    "stream_cut_after_text": Behaviour.cut_stream(after_chunks=3),
    "stream_dropped_after_text": Behaviour.cut_stream(after_chunks=3, abort=True),
}
STREAM_ONLY = {"malformed_json_or_sse": Behaviour.malformed_sse(),
               "error_body_or_event": Behaviour.error_event()}  # the stream's version of the fault
JSON_ONLY = {"oversized", "trickle"}  # the fake upstream streams these normally


def _modes(name: str) -> tuple[bool, ...]:
    """The `stream` values a scenario is a fault in."""
    if name.startswith("stream_"):
        return (True,)
    return (False,) if name in JSON_ONLY else (False, True)


MODES = ("plain", "failover", "midstream")


def _settings(faulty_url: str, healthy_url: str, db: Path, mode: str, deadline: float) -> Any:
    def dep(name: str, url: str) -> dict[str, Any]:  # an attempt may take a third of the deadline
        return {"name": name, "provider": "openai", "model": name, "base_url": url, "timeout_s": deadline / 3,
                "idle_timeout_s": deadline / 4, "max_response_bytes": 200_000,
                "continuation": "prefill" if mode == "midstream" else "none"}

    cheap = [dep("faulty", faulty_url)] + ([dep("healthy", healthy_url)] if mode != "plain" else [])
    return parse_settings({"tiers": [{"name": "cheap", "deployments": cheap},
                                     {"name": "strong", "deployments": [dep("strong", healthy_url)]}],
                           "router": {"name": "heuristic", "thresholds": [0.99]}, "store": {"path": str(db)},
                           "reliability": {"max_retries": 0, "base_delay_s": 0.0,
                                           "midstream_failover": mode == "midstream"},
                           "limits": {"request_timeout_s": deadline}}, "bench")


def _send(root: str, stream: bool, deadline: float) -> tuple[str, int]:
    """(client view, HTTP status)."""
    payload = {"model": "gearshift/auto", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    try:
        with httpx.Client(timeout=deadline + 1.0) as c, c.stream("POST", root + "/v1/chat/completions",
                                                                  json=payload) as r:
            raw = r.read().decode()
    except httpx.TimeoutException:
        return "hung", 0
    if r.status_code != 200:
        return "error", r.status_code
    if not stream:
        return ("answer" if json.loads(raw)["choices"][0]["message"]["content"] == ANSWER else "wrong"), 200
    events = [line[6:] for line in raw.splitlines() if line.startswith("data: ")]
    if events and events[-1] == "[DONE]":
        text = "".join((json.loads(e)["choices"] or [{}])[0].get("delta", {}).get("content") or ""
                       for e in events[:-1])
        return ("answer" if text == ANSWER else "wrong"), 200
    return ("cut" if len(events) > 1 else "error"), 200


def _agrees(view: str, status: int, rec: dict[str, Any]) -> bool:
    expected = {"answer": "ok", "error": "error", "cut": "truncated"}.get(view)
    return rec["status"] == expected and (view != "error" or status == 200 or rec["http_status"] == status)


def run(requests: int, deadline: float) -> list[dict[str, Any]]:
    rows = []
    with FakeUpstream(answer=ANSWER) as faulty, \
            FakeUpstream(answer=ANSWER) as healthy, tempfile.TemporaryDirectory() as tmp:
        for name, behaviour in SCENARIOS.items():
            for stream in _modes(name):
                for mode in MODES:
                    b = STREAM_ONLY.get(name, behaviour) if stream else behaviour
                    faulty.reset()
                    faulty.default = b
                    url = f"http://127.0.0.1:{closed_port()}/v1" if b.kind == "refused" else faulty.base_url
                    db = Path(tmp) / f"{name}-{stream}-{mode}.sqlite"
                    server = serve(_settings(url, healthy.base_url, db, mode, deadline))
                    try:
                        views = [_send(server.root, stream, deadline) for _ in range(requests)]
                        server.flush()
                    finally:
                        server.stop()
                    store = SQLiteDecisionStore(db)
                    recs = list(reversed(store.query(DecisionQuery(limit=None))))
                    store.close()
                    rows.append({"scenario": name, "stream": stream, "mode": mode,
                                 "client": dict(Counter(v for v, _ in views)),
                                 "statuses": sorted({s for _, s in views}), "records": len(recs),
                                 "agree": sum(_agrees(v, s, r) for (v, s), r in zip(views, recs, strict=False))})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=3, help="requests per cell")
    ap.add_argument("--deadline", type=float, default=2.0, help="[limits] request_timeout_s and timeout_s")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    rows = run(args.requests, args.deadline)
    print(f"{'scenario':27} {'kind':6} {'mode':9} {'client saw':24} {'status':10} records agree")
    for r in rows:
        saw = ", ".join(f"{k} {v}" for k, v in sorted(r["client"].items()))
        kind, statuses = "stream" if r["stream"] else "json", "/".join(map(str, r["statuses"]))
        print(f"{r['scenario']:27} {kind:6} {r['mode']:9} {saw:24} {statuses:10} {r['records']:>3}/{args.requests} "
              f"{r['agree']:>3}/{args.requests}")
    cells = [r for r in rows if r["scenario"] != "healthy"]
    total = len(rows) * args.requests
    print(f"\nrequests {total}: records {sum(r['records'] for r in rows)}, record agrees with the client "
          f"{sum(r['agree'] for r in rows)}, hung {sum(r['client'].get('hung', 0) for r in rows)}, "
          f"wrong text {sum(r['client'].get('wrong', 0) for r in rows)}")
    for mode in MODES:
        mine = [r for r in cells if r["mode"] == mode]
        base = sum(r["client"].get("answer", 0) for r in rows if r["scenario"] == "healthy" and r["mode"] == mode)
        print(f"{mode:9}: fault cells answered in full {sum(r['client'].get('answer', 0) for r in mine)}/"
              f"{len(mine) * args.requests} (baseline, no fault: {base}/{2 * args.requests})")
    print(f"{time.perf_counter() - t0:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
