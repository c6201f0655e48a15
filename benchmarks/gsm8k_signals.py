"""Signals beyond prompt n-grams for GSM8K routing, each scored by training-side CV (the fixed split's 80 %).

Why this exists: the stack router plateaus near APGR 0.65 in CV on GSM8K (GPT-4 vs Mixtral). Each block
below tests one idea for a different signal, on the training side only, next to the stack's own CV:

1. e5-small sentence embeddings (+ log length), soft-label logistic regression; a 30-NN average of gaps;
   and the stack blended with the e5 model (rank average of out-of-fold scores).
2. Separate models of P(strong correct) and P(weak correct), ranked by their difference.
3. Transfer: a difficulty model fitted on LLMRouter's GSM8K problems (9 other models; those also in
   RouteLLM's GSM8K dropped), applied to the RouteLLM training side.
4. Ceiling check: features of the *recorded answers* (not available to a router): GPT-4's solution
   length, equations, numbers. If even these rank the gap poorly, problem difficulty is not the signal.

    .venv/bin/python benchmarks/gsm8k_signals.py          # ~3 min cold (e5 embeds 1.3k prompts once, cached)
"""

from __future__ import annotations

import csv
import math
import re

import numpy as np
from rich.console import Console
from scipy.stats import rankdata
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold

from gearshift.config import default_data_dir
from gearshift.data.registry import load_dataset
from gearshift.evaluation.curves import CPT_LEVELS, apgr_cpt
from gearshift.evaluation.labels import default_pair
from gearshift.evaluation.protocols import fixed_split
from gearshift.routers.embedders.cache import EmbeddingCache
from gearshift.routers.embedders.e5 import E5_DIM, E5Embedder
from gearshift.routers.ensemble import StackRouter

SEEDS = (0, 1, 2)


def apgr(p: np.ndarray, s_strong: np.ndarray, s_weak: np.ndarray) -> float:
    return float(apgr_cpt(np.asarray(p, dtype=np.float64), s_strong, s_weak, CPT_LEVELS)[0])


def soft_logreg(x: np.ndarray, y: np.ndarray, tr: np.ndarray, C: float = 1.0) -> LogisticRegression:
    """Logistic regression on targets in [0, 1]: each row once as positive (weight y), once as negative."""
    xx = np.vstack([x[tr], x[tr]])
    lab = np.r_[np.ones(len(tr)), np.zeros(len(tr))]
    return LogisticRegression(C=C, max_iter=3000).fit(xx, lab, sample_weight=np.r_[y[tr], 1 - y[tr]] + 1e-9)


def norm(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


def main() -> int:
    console = Console(width=max(Console().width, 140))
    ds = load_dataset("gsm8k")
    strong, weak = default_pair(ds)
    train = np.asarray(fixed_split(ds.ids).train)
    prompts = [ds.prompts[i] for i in train]
    ss, sw = ds.scores(strong)[train], ds.scores(weak)[train]
    gaps = ss - sw
    y = (gaps + 1) / 2
    n = len(prompts)
    length = np.array([math.log1p(len(p)) for p in prompts])
    console.print(f"gsm8k training side: {n} prompts; length only APGR {apgr(length, ss, sw):.4f}", highlight=False)

    cache = EmbeddingCache(E5Embedder().key, E5_DIM)
    try:
        emb = cache.fetch_or_compute(prompts, E5Embedder().embed, label="e5 embeddings")
    finally:
        cache.close()
    x = np.hstack([emb, ((length - length.mean()) / length.std())[:, None]])

    rows: dict[str, list[float]] = {}
    for seed in SEEDS:
        oof = {k: np.zeros(n) for k in ("stack", "e5+len", "e5 knn30", "p_strong - p_weak")}
        for tr, te in KFold(5, shuffle=True, random_state=seed).split(prompts):
            tr_p, te_p = [prompts[i] for i in tr], [prompts[i] for i in te]
            oof["stack"][te] = StackRouter().fit(tr_p, gaps[tr]).p_strong(te_p)
            oof["e5+len"][te] = soft_logreg(x, y, tr).decision_function(x[te])
            nn = np.argsort(-(emb[te] @ emb[tr].T), axis=1)[:, :30]
            oof["e5 knn30"][te] = gaps[tr][nn].mean(axis=1)
            p_s = StackRouter().fit(tr_p, 2 * ss[tr] - 1).p_strong(te_p)
            p_w = StackRouter().fit(tr_p, 2 * sw[tr] - 1).p_strong(te_p)
            oof["p_strong - p_weak"][te] = p_s - p_w
        oof["stack + e5 (rank average)"] = rankdata(oof["stack"]) + rankdata(oof["e5+len"])
        for k, v in oof.items():
            rows.setdefault(k, []).append(apgr(v, ss, sw))
    for k, v in rows.items():
        console.print(f"CV  {k:<28} APGR {np.mean(v):.4f}  (seeds {', '.join(f'{a:.4f}' for a in v)})", highlight=False)

    llm = [load_dataset("llmrouter-train"), load_dataset("llmrouter-test")]
    ours = {norm(p)[:80] for p in ds.prompts}
    ext_p: list[str] = []
    ext_y: list[float] = []
    for d in llm:
        models = d.model_names()
        scores = np.column_stack([d.scores(m) for m in models])
        for i, (p, task) in enumerate(zip(d.prompts, d.segment("task"), strict=True)):
            if task == "gsm8k" and not any(k in norm(p) for k in ours):  # drop problems RouteLLM also has
                ext_p.append(p)
                ext_y.append(float(1 - scores[i].mean()))
    difficulty = StackRouter().fit(ext_p, 2 * np.array(ext_y) - 1).p_strong(prompts)
    console.print(f"transfer: difficulty model on {len(ext_p)} LLMRouter GSM8K problems (9 models) -> APGR "
                  f"{apgr(difficulty, ss, sw):.4f} on the RouteLLM training side", highlight=False)

    base = default_data_dir() / "routellm" / "gsm8k" / "gsm8k_responses.csv"
    with base.open(encoding="utf-8", newline="") as fh:
        answers = {r["prompt"]: r[f"{strong}_response"] for r in csv.DictReader(fh)}
    texts = [answers[p] for p in prompts]
    num = re.compile(r"\d+(?:\.\d+)?")
    for name, f in (("solution chars", lambda t: len(t)), ("equations", lambda t: t.count("=")),
                    ("numbers", lambda t: len(num.findall(t))), ("lines", lambda t: t.count("\n"))):
        v = np.array([f(t) for t in texts], dtype=np.float64)
        console.print(f"ceiling: GPT-4 answer {name:<15} APGR {apgr(v, ss, sw):.4f} (not available to a router)",
                      highlight=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
