"""Learning a new distribution from its own traffic, played through the real gateway (issue #11 part 4).

A deployment: a stack router trained with `gearshift train`'s code on MMLU + GSM8K (thresholds calibrated out of
fold to send 30 % strong) serves prompts of a family it never saw, through a real `gearshift` gateway (uvicorn,
SQLite store). One local HTTP server plays both tiers and the judge from the recorded data: a tier's answer is a
token naming the prompt and the tier, and the shadow judge (pairwise, both orders) rates each answer with that
tier's recorded score on the prompt (1 + 9 x score). Every request is shadowed (one judge conversation per request:
the label cost printed below) and 10 % are explored. After 100 / 250 / 500 / 1,000 labelled requests the loop
runs as a team would: `gearshift retrain --router stack` on the store, then `gearshift promote` (off-policy
check against the champion or the live policy, then the routing probes; a refusal keeps the champion).

APGR (0.5 = random) on untouched prompts of the family (the other half of its fixed split, never sent):
- start: the deployed router; retrained: the version `retrain` registered; served: the champion after `promote`
  (start until a promotion); offline: a stack fitted by hand on the same prompts with their *recorded* outcomes
  (what the labels would be worth with a perfect judge and no logging policy); length: prompt length alone.

    .venv/bin/python benchmarks/adaptation_gateway.py                       # rest and alpaca-eval, 100..1000
    .venv/bin/python benchmarks/adaptation_gateway.py --families llmrouter:math --steps 100,250 --base-cap 500
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import uvicorn
from rich.console import Console
from rich.table import Table

from gearshift.cli import main as gearshift
from gearshift.data.records import Dataset
from gearshift.data.registry import load_dataset
from gearshift.evaluation.protocols import fixed_split
from gearshift.evaluation.runner import result_from_scores
from gearshift.gateway.app import create_app
from gearshift.gateway.settings import load_settings
from gearshift.learning.train import Target, train
from gearshift.routers.operating_point import save_operating_point
from gearshift.routers.registry import load_router, make_router
from gearshift.store.labels import SQLiteLabelStore
from gearshift.store.versions import SQLiteVersionRegistry

BASE = ("mmlu", "gsm8k")  #: what the deployed router was trained on
TOKEN = re.compile(r"<<answer (cheap|strong) (\d+)>>")


def apgr(p: np.ndarray, ds: Dataset) -> float:
    return float(result_from_scores(p, ds, "strong", "weak", router="x", n_boot=0, with_segments=False).metrics.apgr)


class Replay(ThreadingHTTPServer):
    """Both tiers and the judge, answering from the recorded outcomes of `family`."""

    daemon_threads = True

    def __init__(self, family: Dataset) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.index = {t: i for i, t in enumerate(family.prompts)}
        self.score = {"cheap": family.scores("weak"), "strong": family.scores("strong")}
        self.judge_calls = 0
        self.lock = threading.Lock()

    def reply(self, req: dict[str, Any]) -> str:
        model, user = str(req.get("model")), str((req.get("messages") or [{}])[-1].get("content", ""))
        if model == "judge":
            with self.lock:
                self.judge_calls += 1
            found = TOKEN.findall(user)
            rate = [1 + round(9 * float(self.score[t][int(i)])) for t, i in found]
            if len(rate) == 2:
                return f"A: {rate[0]}, B: {rate[1]}\nScored from the recorded outcomes."
            return f"{rate[0] if rate else 5}/10"
        tier = "strong" if model == "strong" else "cheap"
        return f"<<answer {tier} {self.index.get(user, -1)}>>"


class _Handler(BaseHTTPRequestHandler):
    server: Replay

    def do_POST(self) -> None:
        req = json.loads(self.rfile.read(int(self.headers["content-length"])))
        text = self.server.reply(req)
        body = json.dumps({"id": "r", "object": "chat.completion", "model": req.get("model"), "created": 0,
                           "choices": [{"index": 0, "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": text}}],
                           "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def config(tmp: Path, upstream: str, router_dir: Path) -> Path:
    def dep(name: str, price: tuple[float, float]) -> str:
        return (f'name = "{name}"\nprovider = "openai"\nmodel = "{name}"\nbase_url = "{upstream}"\n'
                f"input_price_per_m = {price[0]}\noutput_price_per_m = {price[1]}\ntimeout_s = 10\n")

    path = tmp / "gearshift.toml"
    path.write_text(
        f'[router]\npath = "{router_dir}"\n\n[store]\npath = "{tmp / "gw.sqlite"}"\n\n'
        f"[exploration]\nepsilon = 0.1\nseed = 0\n\n"
        f"[shadow]\nenabled = true\nevery_n = 1\nqueue_size = 4096\nworkers = 8\n\n"
        f"[shadow.judge.endpoint]\n{dep('judge', (0.0, 0.0))}\n"
        f'[[tiers]]\nname = "cheap"\n[[tiers.deployments]]\n{dep("cheap", (0.6, 0.6))}\n'
        f'[[tiers]]\nname = "strong"\n[[tiers.deployments]]\n{dep("strong", (10.0, 30.0))}\n',
        encoding="utf-8")
    return path


@contextlib.contextmanager
def gateway(cfg: Path) -> Iterator[str]:
    server = uvicorn.Server(uvicorn.Config(create_app(load_settings(cfg)), host="127.0.0.1", port=0,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)


def labels_in(db: Path) -> int:
    store = SQLiteLabelStore(db)
    try:
        return len(store.labels())
    finally:
        store.close()


def cli(argv: list[str]) -> tuple[int, str]:
    """`gearshift ARGV` in-process; (exit code, what it printed)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = gearshift(argv)
    return code, out.getvalue()


def run_family(name: str, pooled: Dataset, start_dir: Path, steps: list[int], margin: float,
               err: Console) -> list[dict[str, Any]]:
    fam = np.array(pooled.segment("family"))
    members = sorted(set(fam) - set(BASE)) if name == "rest" else name.split("+")
    family = pooled.subset(np.flatnonzero(np.isin(fam, members)))
    split = fixed_split(family.ids, test_fraction=0.5)
    stream = family.subset(np.random.default_rng(1).permutation(split.train))
    held = family.subset(split.test)
    start = load_router(start_dir)
    base = {"length": apgr(np.log1p([len(t) for t in held.prompts]), held), "start": apgr(start.p_strong(held.prompts),
                                                                                          held)}
    rows: list[dict[str, Any]] = []
    steps = [n for n in steps if n <= len(stream)]
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        replay = Replay(stream)
        threading.Thread(target=replay.serve_forever, daemon=True).start()
        cfg = config(tmp, f"http://127.0.0.1:{replay.server_address[1]}/v1", start_dir)
        db, sent = tmp / "gw.sqlite", 0
        with gateway(cfg) as url, httpx.Client(base_url=url, timeout=30) as client, ThreadPoolExecutor(8) as pool:
            for n in steps:
                def send(i: int) -> int:
                    return client.post("/v1/chat/completions", json={
                        "model": "gearshift/auto", "messages": [{"role": "user", "content": stream.prompts[i]}]
                    }).status_code

                t0 = time.perf_counter()
                codes = list(pool.map(send, range(sent, n)))
                bad = sum(c != 200 for c in codes)
                sent = n
                deadline = time.monotonic() + 300
                while labels_in(db) < n and time.monotonic() < deadline:
                    time.sleep(0.2)
                labelled = labels_in(db)
                traffic_s = time.perf_counter() - t0
                code, out = cli(["retrain", "--config", str(cfg), "--name", "adapt", "--router", "stack",
                                 "--since", "1d"])
                if code != 0:
                    raise SystemExit(f"retrain failed:\n{out}")
                code, out = cli(["promote", "adapt", "--config", str(cfg), "--since", "1d", "--margin", str(margin)])
                why = next((ln.split("refused:", 1)[1].strip() for ln in out.splitlines() if "refused:" in ln), "")
                verdict = "promoted" if code == 0 else "refused (probes)" if "probes" in why else "refused (ope)"
                gate = next((ln.strip() for ln in out.splitlines() if " vs " in ln and "quality" in ln), "")
                reg = SQLiteVersionRegistry(db)
                try:
                    cand, champ = reg.get("adapt"), reg.champion()
                finally:
                    reg.close()
                gates = {g["name"]: g for g in (cand.metrics or {}).get("gates", [])}
                retrained = load_router(cand.path)
                served = load_router(champ.path) if champ is not None else start
                ids = sorted({replay.index[p] for p in stream.prompts[:n]})
                mine = stream.subset(ids)
                offline = make_router("stack", folds=3).fit(mine.prompts, mine.scores("strong") - mine.scores("weak"))
                row = {"family": name, "labels": labelled, "errors": bad, "judge_calls": replay.judge_calls,
                       "untouched": len(held), **base,
                       "retrained": apgr(retrained.p_strong(held.prompts), held),
                       "served": apgr(served.p_strong(held.prompts), held),
                       "offline": apgr(offline.p_strong(held.prompts), held),
                       "promote": verdict, "ope": gate, "why": why, "gates": gates,
                       "champion": champ.ref if champ is not None else None,
                       "traffic_s": round(traffic_s, 1)}
                rows.append(row)
                err.print(f"[dim]{name} after {n} requests ({labelled} labels, {replay.judge_calls} judge calls, "
                          f"{bad} errors, {traffic_s:.0f} s): start {row['start']:.3f} retrained "
                          f"{row['retrained']:.3f} served {row['served']:.3f} offline {row['offline']:.3f}; "
                          f"promote: {verdict} {why}[/]", highlight=False)
                for g in gates.values():
                    figures = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                        for k, v in g["figures"].items() if not isinstance(v, (dict, list)))
                    err.print(f"[dim]  gate {g['name']}: {'pass' if g['passed'] else 'FAIL'} ({figures})[/]",
                              highlight=False)
        replay.shutdown()
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", default="rest,alpaca-eval",
                    help="comma-separated new distributions: a family, families joined by +, or rest (every family "
                         "but MMLU and GSM8K: ~6,900 prompts of 15 families, the only one with 1,000 requests to send)")
    ap.add_argument("--steps", default="100,250,500,1000", help="labelled requests after which the loop runs")
    ap.add_argument("--base-cap", type=int, default=2000, help="training prompts per base family (default 2000)")
    ap.add_argument("--margin", type=float, default=0.0,
                    help="promote's required off-policy quality gain (default 0: any estimated gain)")
    ap.add_argument("--start-dir", type=Path,
                    help="keep the deployed router here (trained once, reused by later runs with the same --base-cap)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--data-dir", type=Path)
    args = ap.parse_args(argv)
    err = Console(stderr=True)
    t0 = time.perf_counter()
    pooled = load_dataset("pooled", args.data_dir)
    fam = np.array(pooled.segment("family"))
    rng = np.random.default_rng(0)
    base_idx = np.concatenate([rng.permutation(np.flatnonzero(fam == f))[: args.base_cap] for f in BASE])
    base = pooled.subset(np.sort(base_idx))
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as t:
        start_dir = args.start_dir or Path(t) / "start"
        if not (start_dir / "manifest.json").exists():
            with err.status(f"training the deployed stack router on {len(base)} MMLU + GSM8K prompts (30 % strong)"):
                trained = train(base, "stack", {}, "strong", "weak", Target("strong_share", 0.3))
                trained.router.save(start_dir)
                save_operating_point(start_dir, trained.point)
        for name in args.families.split(","):
            rows += run_family(name, pooled, start_dir, [int(x) for x in args.steps.split(",")], args.margin, err)
    table = Table(title="APGR on untouched prompts of a new family, after N requests through the gateway's loop",
                  min_width=110)
    cols = ("family", "labels", "judge_calls", "length", "start", "retrained", "served", "offline", "gain", "promote")
    for col in cols:
        table.add_column(col, justify="left" if col in ("family", "promote") else "right")
    for r in rows:
        table.add_row(r["family"], str(r["labels"]), str(r["judge_calls"]), *(f"{r[k]:.3f}" for k in (
            "length", "start", "retrained", "served", "offline")), f"{r['served'] - r['start']:+.3f}", r["promote"])
    Console().print(table)
    print(f"({time.perf_counter() - t0:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
