"""The `[store]` section: where decision records (and the closed-loop tables beside them) are written, and how."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gearshift.records.redaction import HASH_KEY_ENV, Concealment


def default_store_path(config: Path | None = None) -> Path:
    """The decision store when `[store]` names none: in the per-user data dir, never the working directory.

    One file per config (its name plus a hash of its full path), because a store holds one config's tiers
    and prices: two configs sharing one would mix their rows (and the dashboard would price one's traffic
    at the other's rates). No config (the local demo): `decisions.sqlite`.
    """
    from gearshift.config import default_state_dir

    if config is None:
        return default_state_dir() / "decisions.sqlite"
    digest = hashlib.sha256(str(config.resolve()).encode("utf-8")).hexdigest()[:8]
    return default_state_dir() / f"decisions-{config.stem}-{digest}.sqlite"


class StoreSettings(BaseModel):
    """The decision store. `path` defaults to `default_store_path()`, in `$XDG_DATA_HOME/gearshift` (else
    `~/.local/share/gearshift`); `gearshift serve` prints where it is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    path: Path = Field(default_factory=lambda: default_store_path(None))
    queue_size: int = Field(default=10_000, gt=0)
    batch_size: int = Field(default=256, gt=0)
    # reliability: records the store refuses (locked, disk full) go to this fsync'd JSONL file, replayed later
    spool_path: Path | None = None  # None: next to `path`, as <path>.spool.jsonl
    spool_max_bytes: int = Field(default=64 * 1024 * 1024, gt=0)  # full spool -> 503, never silent loss
    text: Literal["full", "hash", "redact"] = "full"  # how prompt/answer text is kept in records
    # text = "hash": the variable holding the HMAC key (same value on every gateway sharing the store)
    hash_key_env: str = HASH_KEY_ENV
    # scale-out: sqlite:///path or postgresql://user@host/db[?schema=s]; overrides `path` (store/factory.py)
    url: str | None = Field(default=None, pattern=r"^(sqlite|postgresql|postgres)://")
    # reliability (PostgreSQL): a down server fails a batch after connect_timeout_s (libpq rounds up, 2 s at least);
    # a hung one after write_timeout_s; either way the writer spools the batch (store/postgres.py)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    write_timeout_s: float = Field(default=30.0, gt=0)

    def concealment(self) -> Concealment:
        """How text is kept in every table, spool and export; raises ConfigError in hash mode without a key."""
        return Concealment.from_env(self.text, self.hash_key_env)
