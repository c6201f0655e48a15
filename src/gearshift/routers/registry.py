"""Router names to classes. Modules are imported on first use, so naming a router costs nothing."""

from __future__ import annotations

import json
from importlib import import_module
from pathlib import Path
from typing import Any

from gearshift.errors import ConfigError, RouterError, did_you_mean
from gearshift.routers.base import Router, TrainableRouter

#: Every router name, with a one-line description (what `gearshift` lists to users).
ROUTERS: dict[str, str] = {
    "random": "seeded random baseline: p_strong uniform, fixed per prompt",
    "heuristic": "weighted rules (length, code, math, reasoning, multi-intent) combined logistically; no training",
    "mf": "matrix factorisation over a prompt embedding (RouteLLM mf), from gaps or pairwise preferences",
    "knn": "k nearest labelled prompts in embedding space vote on the strong-minus-weak gap",
    "classifier": "logistic classifier on a prompt embedding predicting that the strong model wins",
    "stack": "sparse TF-IDF logistic regression + boosted trees on prompt shape, blended by an out-of-fold meta-model",
}

_CLASSES: dict[str, tuple[str, str]] = {
    "random": ("gearshift.routers.random", "RandomRouter"),
    "heuristic": ("gearshift.routers.heuristic", "HeuristicRouter"),
    "mf": ("gearshift.routers.mf", "MFRouter"),
    "knn": ("gearshift.routers.knn", "KNNRouter"),
    "classifier": ("gearshift.routers.classifier", "ClassifierRouter"),
    "stack": ("gearshift.routers.ensemble", "StackRouter"),
}


def router_class(name: str) -> type[Router]:
    """The class registered as `name`; RouterError names the known routers or the import failure."""
    try:
        module_name, class_name = _CLASSES[name]
    except KeyError:
        hint = did_you_mean(name, ROUTERS)
        raise RouterError(f"unknown router {name!r}; {hint}known: {', '.join(ROUTERS)}") from None
    try:
        cls = getattr(import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise RouterError(f"router {name!r} is registered but {module_name}.{class_name} cannot be loaded: {exc}") \
            from exc
    if not (isinstance(cls, type) and issubclass(cls, Router)) or cls.name != name:
        raise RouterError(f"{module_name}.{class_name} is not a Router named {name!r}")
    return cls


def parse_router_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """`knn:k=16,embedder=hashing` -> ("knn", {"k": 16, "embedder": "hashing"}): how every command names a router.

    Values are parsed as JSON where they can be (numbers, booleans), else kept as strings.
    """
    name, _, rest = spec.partition(":")
    params: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, eq, raw = item.partition("=")
        if not eq or not key:
            raise ConfigError(f"router parameter {item!r} in {spec!r} is not key=value")
        try:
            params[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            params[key.strip()] = raw
    return name.strip(), params


def make_router(name: str, **params: Any) -> Router:
    """A new (unfitted) router; bad parameters raise RouterError naming the ones it takes."""
    cls = router_class(name)
    unknown = set(params) - set(cls._param_names())
    if unknown:
        raise RouterError(f"router {name!r} has no parameter(s) {sorted(unknown)}; takes {cls._param_names()}")
    return cls(**params)


def load_router(directory: str | Path) -> Router:
    """Load a saved router of whatever type its manifest.json names."""
    d = Path(directory)
    try:
        manifest = json.loads((d / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RouterError(f"{d}: no readable manifest.json ({exc})") from exc
    name = manifest.get("router") if isinstance(manifest, dict) else None
    if not isinstance(name, str):
        raise RouterError(f"{d}: manifest.json names no router")
    cls = router_class(name)
    if not issubclass(cls, TrainableRouter):
        raise RouterError(f"{d}: router {name!r} has no saved state to load")
    return cls.load(d)
