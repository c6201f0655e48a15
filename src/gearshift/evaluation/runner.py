"""Run a router over a test set and collect every figure into one typed, JSON-able result.

Fits can be cached (`fit_cache=`, a directory; the CLI uses `default_fit_cache()`): a trainable router
fitted on the same training prompts and gaps, with the same settings and code, is loaded from
`<fit_cache>/<key>/` (its `TrainableRouter.save` directory, no pickle) instead of refitted, so a rerun
of an evaluation costs only scoring and metrics.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import sys
import uuid
from collections.abc import Callable, Sequence
from contextlib import nullcontext, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from gearshift.data.records import Dataset
from gearshift.errors import RouterError
from gearshift.evaluation.bootstrap import BootstrapResult, bootstrap_ci
from gearshift.evaluation.curves import Curve
from gearshift.evaluation.labels import check_pair, needs_strong, outcome_gaps
from gearshift.evaluation.metrics import (
    MetricSettings,
    Outcomes,
    Reference,
    RoutingMetrics,
    clean,
    compute_metrics,
    references,
)
from gearshift.evaluation.protocols import Fold
from gearshift.evaluation.slices import FlagRule, SegmentMetrics, derived_segments, segment_metrics
from gearshift.routers.base import Router, TrainableRouter


@dataclass
class EvalResult:
    """Everything one evaluation produced. `to_json()` holds the figures; the arrays feed the report."""

    router: str
    strong: str
    weak: str
    dataset: str
    train: str | None
    protocol: str
    settings: MetricSettings
    metrics: RoutingMetrics
    references: dict[str, Reference]
    ci: BootstrapResult | None
    segments: list[SegmentMetrics]
    notes: list[str]
    ids: list[str] = field(repr=False)
    prompts: list[str] = field(repr=False)
    p_strong: np.ndarray = field(repr=False)
    gaps: np.ndarray = field(repr=False)
    curve: Curve = field(repr=False)
    oracle_curve: Curve = field(repr=False)
    spec: str | None = None  # how the router was asked for, e.g. "knn:k=16" (the CLI sets it)

    @property
    def n_test(self) -> int:
        return self.metrics.n

    @property
    def flagged(self) -> list[SegmentMetrics]:
        return [s for s in self.segments if s.flagged]

    def needs_strong(self) -> np.ndarray:
        return needs_strong(self.gaps, self.settings.eps)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict with stable keys; NaN figures become null."""
        m = self.metrics.to_json()
        segs: dict[str, dict[str, Any]] = {}
        for s in self.segments:
            segs.setdefault(s.segment, {})[s.value] = s.to_json()
        ci: dict[str, Any] | None = None
        if self.ci is not None:
            ci = {"level": self.ci.level, "n_boot": self.ci.n_boot, "seed": self.ci.seed}
            ci.update({k: [clean(v.lo), clean(v.hi)] for k, v in self.ci.intervals.items()})
        return {
            "router": self.router,
            "router_spec": self.spec or self.router,
            "strong": self.strong,
            "weak": self.weak,
            "dataset": self.dataset,
            "train": self.train,
            "protocol": self.protocol,
            "n_test": self.n_test,
            "apgr": m["apgr"],
            "cpt50": m["cpt50"],
            "cpt80": m["cpt80"],
            "cpt95": m["cpt95"],
            "aiq": m["aiq"],
            "aiq_axis": m["aiq_axis"],
            "operating_point": {"threshold": self.settings.threshold,
                                "target_strong_share": self.settings.target_strong_share,
                                "strong_share": m["strong_share"],
                                "quality": m["quality"], "cost": m["cost"]},
            "confusion": m["confusion"],
            "eps": self.settings.eps,
            "references": {k: v.to_json() for k, v in self.references.items()},
            "ci": ci,
            "segments": segs,
            "flagged": [{"segment": s.segment, "value": s.value} for s in self.flagged],
            "notes": list(self.notes),
        }


def _progress(enabled: bool, console: Console | None) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=True, disable=not enabled)


def score_prompts(router: Router, prompts: Sequence[str], *, batch_size: int = 512, progress: bool = True,
                  console: Console | None = None, label: str | None = None) -> np.ndarray:
    """p_strong for every prompt, in batches, with a progress bar."""
    out = np.empty(len(prompts), dtype=np.float64)
    with _progress(progress, console) as bar:
        task = bar.add_task(f"scoring with {label or router.name}", total=len(prompts))
        for start in range(0, len(prompts), batch_size):
            batch = list(prompts[start:start + batch_size])
            p = np.asarray(router.p_strong(batch), dtype=np.float64)
            if p.shape != (len(batch),) or not np.all(np.isfinite(p)):
                raise RouterError(f"router {router.name!r} returned invalid p_strong for a batch")
            out[start:start + len(batch)] = p
            bar.advance(task, len(batch))
    return out


#: Part of every fit-cache key: bump to orphan all cached fits (e.g. when the key recipe changes).
FIT_CACHE_FORMAT = "1"


def default_fit_cache() -> Path:
    """`<gearshift cache dir>/fits`, where the CLI keeps fitted routers between runs."""
    from gearshift.config import default_cache_dir

    return default_cache_dir() / "fits"


def _dependency_files(module: str) -> list[Path]:
    """Source files of `module` and of every gearshift module it uses, found through module globals
    (imported modules, classes and functions), transitively."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        mod = sys.modules.get(name)
        if name in seen or mod is None:
            continue
        seen.add(name)
        for value in vars(mod).values():
            if isinstance(value, ModuleType) and value.__name__.startswith(f"{name}."):
                continue  # a package's submodule attribute, set by whoever imported it: not a dependency
            dep = value.__name__ if isinstance(value, ModuleType) else getattr(value, "__module__", None)
            if isinstance(dep, str) and dep.split(".")[0] == "gearshift" and dep not in seen:
                todo.append(dep)
    files = {getattr(sys.modules[n], "__file__", None) for n in seen}
    return sorted(Path(f) for f in files if f)


@functools.cache
def _code_digest(cls: type) -> str:
    """SHA-256 of the sources the router's module depends on, so editing its code (features, trees,
    vectorisers) never serves a fit made by older code, while edits to unrelated routers keep the cache."""
    h = hashlib.sha256()
    for f in _dependency_files(cls.__module__):
        h.update(f.read_bytes())
    return h.hexdigest()


def fit_cache_key(router: TrainableRouter, prompts: Sequence[str], gaps: np.ndarray) -> str | None:
    """Directory name for this router's fit on (prompts, gaps); None when its settings are not JSON-able."""
    import gearshift

    try:
        params = json.dumps(router.get_params(), sort_keys=True)
    except (TypeError, ValueError):
        return None
    cls = type(router)
    header = {"format": FIT_CACHE_FORMAT, "router": router.name, "version": router.version, "params": params,
              "class": f"{cls.__module__}.{cls.__qualname__}", "gearshift": gearshift.__version__,
              "code": _code_digest(cls)}
    h = hashlib.sha256(json.dumps(header, sort_keys=True).encode("utf-8"))
    for p in prompts:
        b = p.encode("utf-8", "surrogatepass")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    h.update(np.ascontiguousarray(gaps, dtype=np.float64).tobytes())
    return f"{re.sub(r'[^A-Za-z0-9_.-]', '_', router.name)}-{h.hexdigest()[:32]}"


def _load_fit(router: TrainableRouter, d: Path) -> bool:
    """Restore `router` in place from a cached fit; False when there is none or it does not load."""
    if not (d / "manifest.json").is_file():
        return False
    try:
        loaded = type(router).load(d)
    except RouterError:
        return False
    vars(router).update(vars(loaded))
    with suppress(OSError):  # the manifest's mtime is the fit's last use (`gearshift cache prune`)
        os.utime(d / "manifest.json")
    return True


def _save_fit(router: TrainableRouter, d: Path, console: Console | None) -> None:
    """Write the fit to a temporary sibling and rename it into place, so readers never see half a fit."""
    tmp = d.with_name(f"{d.name}.tmp-{uuid.uuid4().hex}")
    try:
        router.save(tmp)
        shutil.rmtree(d, ignore_errors=True)  # a cached fit that failed to load
        tmp.rename(d)
    except (OSError, RouterError) as exc:
        if console is not None:
            console.print(f"[yellow]fit cache not written[/] ({d}): {exc}", highlight=False)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def fit_router(router: Router, train: Dataset | None, strong: str, weak: str,
               console: Console | None = None, progress: bool = True, fit_cache: Path | None = None) -> None:
    """Fit a trainable router on the strong-minus-weak gaps of `train`; others need no training.

    With `fit_cache`, a fit made before on the same inputs is loaded instead, and a new fit is stored.
    """
    if not isinstance(router, TrainableRouter):
        return
    if train is None or len(train) == 0:
        if not router.is_fitted():
            raise RouterError(f"router {router.name!r} needs training data (--train) or a saved state")
        return
    check_pair(train, strong, weak)
    gaps = outcome_gaps(train, strong, weak)
    key = fit_cache_key(router, train.prompts, gaps) if fit_cache is not None else None
    cached = Path(fit_cache) / key if fit_cache is not None and key is not None else None
    if cached is not None and _load_fit(router, cached):
        if console is not None and progress:
            console.print(f"[dim]{router.name}: fit on {len(train)} prompts loaded from the fit cache[/]",
                          highlight=False)
        return
    ctx = console.status(f"fitting {router.name} on {len(train)} prompts") if console and progress else nullcontext()
    with ctx:
        router.fit(train.prompts, gaps)
    if cached is not None:
        _save_fit(router, cached, console)


def result_from_scores(
    p_strong: np.ndarray, test: Dataset, strong: str, weak: str, *, router: str, train: str | None = None,
    protocol: str = "cross", settings: MetricSettings | None = None, n_boot: int = 1000, ci_level: float = 0.95,
    seed: int | None = 0, with_segments: bool = True, flag_rule: FlagRule | None = None,
) -> EvalResult:
    """All metrics for given p_strong on `test` (the runner's common tail; usable without a Router)."""
    settings = settings or MetricSettings()
    if settings.target_strong_share is not None and len(p_strong):
        from dataclasses import replace

        from gearshift.routers.calibrate import calibrate_share

        cal = calibrate_share(np.asarray(p_strong, dtype=np.float64), settings.target_strong_share, tolerance=1.0)
        settings = replace(settings, threshold=cal.thresholds[0])
    check_pair(test, strong, weak)
    outcomes = Outcomes.from_dataset(test, strong, weak)
    metrics = compute_metrics(p_strong, outcomes, settings)
    ci = bootstrap_ci(p_strong, outcomes.s_strong, outcomes.s_weak, n_boot=n_boot, level=ci_level,
                      seed=seed) if n_boot > 0 and len(test) else None
    segs: list[SegmentMetrics] = []
    if with_segments and len(test):
        named = {s: v for s in test.segment_names() if any(v := test.segment(s))}
        named = {s: [x or "(none)" for x in v] for s, v in named.items()}
        named.update(derived_segments(test.prompts))
        segs = segment_metrics(p_strong, outcomes, named, settings, metrics.confusion.quality_loss_rate,
                               flag_rule)
    notes = list(dict.fromkeys(test.notes))
    if metrics.aiq_axis != "cost":
        notes.append("costs are unknown for some prompts: AIQ is computed on the strong-share axis")
    if not outcomes.s_strong.mean() > outcomes.s_weak.mean():
        notes.append(f"{strong} does not outscore {weak} on average: PGR-based figures are undefined")
    return EvalResult(
        router=router, strong=strong, weak=weak, dataset=test.name, train=train, protocol=protocol,
        settings=settings, metrics=metrics, references=references(outcomes), ci=ci, segments=segs, notes=notes,
        ids=test.ids, prompts=test.prompts, p_strong=np.asarray(p_strong, dtype=np.float64),
        gaps=outcomes.gaps, curve=outcomes.curve(p_strong), oracle_curve=outcomes.curve(outcomes.gaps),
    )


def evaluate(
    router: Router, train: Dataset | None, test: Dataset, strong: str, weak: str, *,
    settings: MetricSettings | None = None, n_boot: int = 1000, ci_level: float = 0.95, seed: int | None = 0,
    batch_size: int = 512, progress: bool = True, console: Console | None = None, label: str | None = None,
    with_segments: bool = True, flag_rule: FlagRule | None = None, fit_cache: Path | None = None,
) -> EvalResult:
    """Fit `router` on `train` (if trainable and given; see `fit_router` for `fit_cache`), score `test`, and
    compute every metric."""
    check_pair(test, strong, weak)
    fit_router(router, train, strong, weak, console, progress, fit_cache)
    p = score_prompts(router, test.prompts, batch_size=batch_size, progress=progress, console=console,
                      label=label)
    return result_from_scores(
        p, test, strong, weak, router=label or router.name, train=train.name if train is not None else None,
        settings=settings, n_boot=n_boot, ci_level=ci_level, seed=seed, with_segments=with_segments,
        flag_rule=flag_rule,
    )


def evaluate_folds(
    make_router: Callable[[], Router], dataset: Dataset, folds: Sequence[Fold], strong: str, weak: str, *,
    protocol: str, settings: MetricSettings | None = None, n_boot: int = 1000, ci_level: float = 0.95,
    seed: int | None = 0, batch_size: int = 512, progress: bool = True, console: Console | None = None,
    label: str | None = None, with_segments: bool = True, flag_rule: FlagRule | None = None,
    fit_cache: Path | None = None,
) -> EvalResult:
    """Fit a fresh router per fold and pool the out-of-fold scores over every fold's test prompts."""
    test_idx = np.concatenate([f.test for f in folds]) if folds else np.zeros(0, np.int64)
    if len(np.unique(test_idx)) != len(test_idx):
        raise RouterError("folds overlap: a prompt is in more than one test part")
    p = np.empty(len(test_idx))
    pos = 0
    name = label
    for fold in folds:
        router = make_router()
        name = name or router.name
        fit_router(router, dataset.subset(fold.train, name=f"{dataset.name}:{fold.name}:train"), strong, weak,
                   console, progress, fit_cache)
        part = dataset.subset(fold.test)
        p[pos:pos + len(part)] = score_prompts(router, part.prompts, batch_size=batch_size, progress=progress,
                                               console=console, label=f"{name} {fold.name}")
        pos += len(part)
    test = dataset.subset(test_idx, name=dataset.name)
    train_name = dataset.name if any(len(f.train) for f in folds) else None
    return result_from_scores(
        p, test, strong, weak, router=name or "router", train=train_name, protocol=protocol, settings=settings,
        n_boot=n_boot, ci_level=ci_level, seed=seed, with_segments=with_segments, flag_rule=flag_rule,
    )
