"""Pick a store implementation from a URL: `sqlite:///relative.db`, `sqlite:////abs/path.db` or `postgresql://...`.

One URL names both the decision log and the closed-loop tables, so a deployment points every gateway
and CLI command at the same place with one setting (`[store] url`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from gearshift.errors import ConfigError

if TYPE_CHECKING:
    from gearshift.routers.base import Router
    from gearshift.store.base import DecisionStore
    from gearshift.store.labels import LabelStore
    from gearshift.store.settings import StoreSettings
    from gearshift.store.versions import RouterVersion, VersionRegistry


def store_kind(url: str) -> str:
    """"sqlite" or "postgresql"; a bare path counts as SQLite."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("", "sqlite"):
        return "sqlite"
    if scheme in ("postgresql", "postgres"):
        return "postgresql"
    raise ConfigError(f"store url: unknown scheme {scheme!r} (use sqlite:///path or postgresql://host/db)")


def sqlite_path(url: str) -> str:
    """`sqlite:///a.db` -> "a.db", `sqlite:////tmp/a.db` -> "/tmp/a.db", `sqlite://` -> ":memory:"."""
    if "://" not in url:
        return url
    rest = url.split("://", 1)[1]
    if rest in ("", "/", "/:memory:"):
        return ":memory:"
    if not rest.startswith("/"):
        raise ConfigError(f"store url {url!r}: expected sqlite:///relative/path or sqlite:////absolute/path")
    return rest[1:]


def settings_url(store_settings: StoreSettings) -> str:
    """The URL a `[store]` section selects: `url` when set, else its SQLite `path`."""
    url = store_settings.url
    return url if url else f"sqlite:///{Path(store_settings.path)}"


def store_options(store_settings: StoreSettings, url: str | None = None) -> dict[str, Any]:
    """The `[store]` timeouts as PostgreSQL store options for `url` (default: the `[store]` URL): a down or
    hung server costs a bounded wait, after which writes spool and reads fail with an error."""
    if store_kind(url or settings_url(store_settings)) != "postgresql":
        return {}
    return {"connect_timeout_s": store_settings.connect_timeout_s, "timeout_s": store_settings.write_timeout_s}


def open_decision_store(url: str, **options: Any) -> DecisionStore:
    """A ready decision store (migrated, connected); `options` go to the PostgreSQL store."""
    if store_kind(url) == "sqlite":
        from gearshift.store.sqlite import SQLiteDecisionStore

        return SQLiteDecisionStore(sqlite_path(url))
    from gearshift.store.postgres import PostgresDecisionStore

    return PostgresDecisionStore(url, **options)


def open_label_store(url: str, **options: Any) -> LabelStore:
    """The closed-loop tables (shadow labels, triage, feedback) at the same place as the decisions;
    `options` (`store_options`) go to the PostgreSQL store."""
    if store_kind(url) == "sqlite":
        from gearshift.store.labels import SQLiteLabelStore

        return SQLiteLabelStore(sqlite_path(url))
    from gearshift.store.postgres_labels import PostgresLabelStore

    return PostgresLabelStore(url, **options)


def open_version_registry(url: str) -> VersionRegistry:
    """The registry at a store URL (`sqlite:///path`, a bare path, or `postgresql://...`), beside the decisions."""
    if store_kind(url) == "sqlite":
        from gearshift.store.versions import SQLiteVersionRegistry

        return SQLiteVersionRegistry(sqlite_path(url))
    from gearshift.store.postgres_versions import PostgresVersionRegistry

    return PostgresVersionRegistry(url)


def open_live_registry(store: str | Path, ref: str) -> VersionRegistry:
    """The registry the gateway's `[router] version` (`ref`) is read from; `store` is a store URL or a SQLite
    path. A SQLite file that does not exist is a ConfigError, not a fresh empty registry."""
    url = str(store)
    if store_kind(url) == "sqlite":
        path = sqlite_path(url)
        if path != ":memory:" and not Path(path).exists():
            raise ConfigError(f"[router] version = {ref!r} but there is no store at {path}")
    return open_version_registry(url)


def live_version(store: str | Path, ref: str) -> RouterVersion:
    """The version the gateway's `[router] version` names ("champion" or NAME[/VERSION]): read at start and
    on every reload (`gateway.reload`). `store` is a store URL or a SQLite path."""
    registry = open_live_registry(store, ref)
    try:
        return registry.get(ref)
    finally:
        registry.close()


def load_version(v: RouterVersion, n_tiers: int) -> tuple[Router, tuple[float, ...] | None]:
    """(router, its calibrated thresholds or None) of a registered version, checked against `n_tiers`."""
    from gearshift.routers.registry import load_router

    thresholds = v.thresholds
    if thresholds is not None and len(thresholds) != n_tiers - 1:
        raise ConfigError(f"router version {v.ref} has {len(thresholds)} threshold(s) but the gateway has "
                          f"{n_tiers} tiers")
    return load_router(v.path), thresholds
