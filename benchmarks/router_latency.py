"""Single-prompt scoring latency of routers and embedders over MMLU prompts, against the heuristic baseline.

Routers are fitted on the 80% training side of MMLU (gaps = gpt-4 minus Mixtral correctness), then each
scores held-out prompts one at a time (`router.score(prompt)`), as the request path does. Prompts are
sampled evenly across length quantiles so long prompts (up to several hundred words) are represented.
Prints p50/p99 in ms and the ratio to the heuristic router's p50 from the same run.

    .venv/bin/python benchmarks/router_latency.py                # default routers + embedders
    .venv/bin/python benchmarks/router_latency.py --n 300 --no-e5
Target: p50 <= 5 ms, p99 <= 20 ms for the default hot-path representation (classifier on tfidf or e5-static).
e5 itself is shown (few prompts) to make its cost visible; it belongs behind the disk cache, offline.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections.abc import Callable

import numpy as np

from gearshift.config import default_data_dir
from gearshift.routers.base import Router, TrainableRouter
from gearshift.routers.embedders import make_embedder
from gearshift.routers.embedding import FittableEmbedder
from gearshift.routers.registry import make_router

STRONG = "gpt-4-1106-preview"
WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"


def load_mmlu() -> tuple[list[str], np.ndarray]:
    csv.field_size_limit(sys.maxsize)
    prompts: list[str] = []
    gaps: list[float] = []
    for path in sorted((default_data_dir() / "routellm" / "mmlu").glob("mmlu_*.csv")):
        with path.open(encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                prompts.append(row["prompt"])
                gaps.append(float(row[STRONG] == "True") - float(row[WEAK] == "True"))
    return prompts, np.array(gaps)


def by_length(prompts: list[str], n: int, seed: int = 0) -> list[str]:
    """n prompts spread evenly over the length distribution (shortest to longest)."""
    order = np.argsort([len(p) for p in prompts], kind="stable")
    picks = np.linspace(0, len(order) - 1, n).round().astype(int)
    out = [prompts[int(order[i])] for i in picks]
    np.random.default_rng(seed).shuffle(out)
    return out


def timed(fn: Callable[[str], object], prompts: list[str], warmup: int = 20) -> np.ndarray:
    for p in prompts[:warmup]:
        fn(p)
    out = np.empty(len(prompts))
    for i, p in enumerate(prompts):
        t = time.perf_counter()
        fn(p)
        out[i] = time.perf_counter() - t
    return out * 1e3


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=500, help="prompts timed per router")
    ap.add_argument("--train", type=int, default=0, help="training prompts (0 = the whole 80%% side)")
    ap.add_argument("--no-e5", action="store_true", help="skip timing e5 itself (slow)")
    args = ap.parse_args()

    prompts, gaps = load_mmlu()
    perm = np.random.default_rng(0).permutation(len(prompts))
    cut = int(0.8 * len(prompts))
    tr = perm[:cut] if args.train <= 0 else perm[: min(args.train, cut)]
    train = [prompts[i] for i in tr]
    probe = by_length([prompts[i] for i in perm[cut:]], args.n)
    words = np.array([len(p.split()) for p in probe])
    print(f"MMLU: {len(train)} training prompts; {len(probe)} probe prompts, words p50={np.median(words):.0f} "
          f"max={words.max()}")

    rows: list[tuple[str, np.ndarray]] = []
    heuristic = make_router("heuristic")
    rows.append(("router heuristic (baseline)", timed(heuristic.score, probe)))
    routers: list[tuple[str, str, dict[str, object]]] = [
        ("knn", "hashing", {"embedder": "hashing"}),
        ("knn", "e5-static", {"embedder": "e5-static"}),
        ("classifier", "hashing", {"embedder": "hashing"}),
        ("classifier", "e5-static", {"embedder": "e5-static"}),
        ("classifier", "tfidf (default)", {}),
        ("classifier", "tfidf+e5-static", {"embedder": "tfidf+e5-static"}),
    ]
    for name, label, params in routers:
        r: Router = make_router(name, **params)
        if isinstance(r, TrainableRouter):
            t = time.perf_counter()
            r.fit(train, gaps[tr])
            print(f"  fitted {name}[{label}] in {time.perf_counter() - t:.1f}s", flush=True)
        rows.append((f"router {name}[{label}]", timed(r.score, probe)))
    for spec in ("hashing", "tfidf", "e5-static", "tfidf+e5-static"):
        emb = make_embedder(spec)
        if isinstance(emb, FittableEmbedder):
            emb.fit(train)
        rows.append((f"embedder {spec}", timed(lambda p, e=emb: e.embed([p]), probe)))  # type: ignore[misc]
    if not args.no_e5:
        from gearshift.routers.embedders.e5 import E5Embedder

        e5 = E5Embedder()  # uncached on purpose: the cost a cache miss pays
        rows.append(("embedder e5 (uncached, 60 prompts)", timed(lambda p: e5.embed([p]), probe[:60], warmup=3)))

    base = float(np.median(rows[0][1]))
    print(f"\n{'what':48s} {'p50 ms':>8s} {'p99 ms':>8s} {'p50 / heuristic':>16s}")
    for label, ms in rows:
        p50, p99 = float(np.median(ms)), float(np.percentile(ms, 99))
        print(f"{label:48s} {p50:8.3f} {p99:8.3f} {p50 / base:16.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
