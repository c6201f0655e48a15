"""Pick a store implementation from a URL: `sqlite:///relative.db`, `sqlite:////abs/path.db` or `postgresql://...`.

One URL names both the decision log and the closed-loop tables, so a deployment points every gateway
and CLI command at the same place with one setting (`[store] url`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from gearshift.errors import ConfigError

if TYPE_CHECKING:
    from gearshift.store.base import DecisionStore
    from gearshift.store.labels import LabelStore


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


def settings_url(store_settings: Any) -> str:
    """The URL a `[store]` section selects: `url` when set, else its SQLite `path`."""
    url: str | None = getattr(store_settings, "url", None)
    return url if url else f"sqlite:///{Path(store_settings.path)}"


def store_options(store_settings: Any, url: str | None = None) -> dict[str, Any]:
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
