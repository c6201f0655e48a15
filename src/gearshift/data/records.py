"""The canonical recorded-outcome format: one prompt per JSONL line plus a models table.

A line is ``{"id", "prompt", "segments": {name: value}, "outcomes": {model: {"score", "cost_usd",
"output_tokens"}}}``. The models table (name, per-million-token prices, tier) lives beside the JSONL in
``<file>.models.json`` so the JSONL stays one prompt per line.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gearshift.errors import DataError


class Outcome(BaseModel):
    """What one model did on one prompt."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    score: float = Field(ge=0.0, le=1.0)
    cost_usd: float | None = Field(default=None, ge=0.0)
    output_tokens: int | None = Field(default=None, ge=0)


class PromptRecord(BaseModel):
    """One prompt with every recorded model outcome. Segments are for slicing, never router input."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    prompt: str
    segments: dict[str, str] = Field(default_factory=dict)
    outcomes: dict[str, Outcome]


class ModelInfo(BaseModel):
    """A row of the models table. Tier 0 is the cheapest; None means not assigned."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    input_price_per_m: float | None = Field(default=None, ge=0.0)
    output_price_per_m: float | None = Field(default=None, ge=0.0)
    tier: int | None = Field(default=None, ge=0)


@dataclass
class Dataset:
    """Prompt records plus the models table, with column accessors for vectorised evaluation."""

    name: str
    records: list[PromptRecord]
    models: dict[str, ModelInfo] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self.records]

    @property
    def prompts(self) -> list[str]:
        return [r.prompt for r in self.records]

    def model_names(self) -> list[str]:
        """Models with an outcome on every record, cheapest tier first where tiers are known."""
        if not self.records:
            return list(self.models)
        common = set(self.records[0].outcomes)
        for r in self.records[1:]:
            common &= r.outcomes.keys()
        order = {name: i for i, name in enumerate(self.models)}

        def key(name: str) -> tuple[int, int, str]:
            info = self.models.get(name)
            tier = info.tier if info is not None and info.tier is not None else 10**6
            return (tier, order.get(name, 10**6), name)

        return sorted(common, key=key)

    def scores(self, model: str) -> np.ndarray:
        """Scores of `model` on every record (float64). Raises DataError if a record lacks it."""
        return np.array([self._outcome(r, model).score for r in self.records], dtype=np.float64)

    def costs(self, model: str) -> np.ndarray:
        """Cost in USD of `model` on every record; NaN where the data has no cost."""
        out = [self._outcome(r, model).cost_usd for r in self.records]
        return np.array([np.nan if c is None else c for c in out], dtype=np.float64)

    def segment(self, name: str) -> list[str]:
        """Value of segment `name` per record ("" where absent)."""
        return [r.segments.get(name, "") for r in self.records]

    def segment_names(self) -> list[str]:
        names: dict[str, None] = {}
        for r in self.records:
            for k in r.segments:
                names.setdefault(k, None)
        return list(names)

    def subset(self, indices: Sequence[int] | np.ndarray, name: str | None = None) -> Dataset:
        idx = [int(i) for i in indices]
        return Dataset(
            name=name or self.name,
            records=[self.records[i] for i in idx],
            models=dict(self.models),
            notes=list(self.notes),
        )

    def _outcome(self, record: PromptRecord, model: str) -> Outcome:
        try:
            return record.outcomes[model]
        except KeyError:
            known = ", ".join(sorted(record.outcomes)) or "none"
            raise DataError(
                f"record {record.id!r} has no outcome for model {model!r} (has: {known})"
            ) from None


def models_path_for(path: Path) -> Path:
    return path.with_name(path.name.removesuffix(".jsonl") + ".models.json")


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line; malformed JSON names file and line."""
    try:
        fh = path.open(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot open: {exc.strerror}", path=path) from exc
    with fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"malformed JSON: {exc.msg} (column {exc.colno})",
                                path=path, line=lineno) from exc
            if not isinstance(obj, dict):
                raise DataError("expected a JSON object", path=path, line=lineno)
            yield lineno, obj


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def read_jsonl(path: str | Path, name: str | None = None) -> Dataset:
    """Read a canonical JSONL file (and its models table, if present)."""
    p = Path(path)
    records: list[PromptRecord] = []
    seen: set[str] = set()
    for lineno, obj in iter_jsonl(p):
        try:
            rec = PromptRecord.model_validate(obj)
        except ValidationError as exc:
            raise DataError(_validation_message(exc), path=p, line=lineno) from None
        if rec.id in seen:
            raise DataError(f"duplicate id {rec.id!r}", path=p, line=lineno)
        seen.add(rec.id)
        records.append(rec)
    if not records:
        raise DataError("no records", path=p)
    models: dict[str, ModelInfo] = {}
    notes: list[str] = []
    mp = models_path_for(p)
    if mp.exists():
        try:
            raw = json.loads(mp.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"unreadable models table: {exc}", path=mp) from exc
        if not isinstance(raw, dict) or not isinstance(raw.get("models"), list):
            raise DataError('expected {"models": [...], "notes": [...]}', path=mp)
        for i, row in enumerate(raw["models"]):
            try:
                info = ModelInfo.model_validate(row)
            except ValidationError as exc:
                raise DataError(f"models[{i}]: {_validation_message(exc)}", path=mp) from None
            models[info.name] = info
        notes = [str(n) for n in raw.get("notes", [])]
    return Dataset(name=name or p.name.removesuffix(".jsonl"), records=records,
                   models=models, notes=notes)


def _mode_for(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0o022)  # read the umask: setting it is the only portable way
        os.umask(umask)
        return 0o666 & ~umask


def atomic_write_text(path: Path, chunks: Iterable[str]) -> None:
    """Write via a temp file renamed into place: a failure leaves no half-written file behind.

    The file gets the permissions a plain `open()` would give (0666 less the umask, or the replaced file's mode),
    not the temp file's private 0600: a report or export is meant to be shared.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, _mode_for(path))
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for chunk in chunks:
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_jsonl(dataset: Dataset, path: str | Path) -> Path:
    """Write the dataset atomically: a failure leaves no half-written file behind."""
    p = Path(path)
    atomic_write_text(
        p,
        (json.dumps(r.model_dump(mode="json"), ensure_ascii=False) + "\n" for r in dataset.records),
    )
    table = {
        "dataset": dataset.name,
        "models": [m.model_dump(mode="json") for m in dataset.models.values()],
        "notes": dataset.notes,
    }
    atomic_write_text(models_path_for(p), [json.dumps(table, indent=2) + "\n"])
    return p
