"""Which score reference the live drift check compares against (`[slo.drift]`, closed_loop/drift_watch.py).

`[slo.drift] reference` (a file) wins; else the serving router's own `score_reference.json`: in the registered
version's directory (`[router] version`, followed across reloads) or in `[router] path`. A router with none (the
default heuristic router, a router saved before references existed) gets None, and the drift watch then takes the
first routed decisions after start as its baseline. Files are read once per path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from gearshift.gateway.routing import ModelResolver
from gearshift.gateway.settings import GatewaySettings
from gearshift.routers.reference import ScoreReference, load_reference


def reference_source(settings: GatewaySettings, resolver: ModelResolver) -> Callable[[], ScoreReference | None]:
    explicit = settings.slo.drift.reference
    configured = resolver.router
    cache: dict[str, ScoreReference | None] = {}

    def current() -> ScoreReference | None:
        live = resolver.live
        if explicit is not None:
            where = explicit
        elif live.version is not None:
            where = live.version.path
        elif settings.router.path is not None and live.router is configured:
            where = str(settings.router.path)
        else:
            return None
        if where not in cache:
            ref = load_reference(Path(where))
            if ref is not None and explicit is None:
                ref = replace(ref, source=ref.source or f"saved with {where}")
            cache[where] = ref
        return cache[where]

    return current
