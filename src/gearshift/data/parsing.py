"""Strict readers shared by the built-in loaders: every malformed cell is a DataError naming file and line.

Built-in loaders construct records with `model_construct` (no per-row pydantic validation) because they
check each value here first; `read_jsonl` keeps full validation for files from elsewhere.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from gearshift.data.records import Outcome, PromptRecord
from gearshift.errors import DataError

_TRUE = {"true", "1"}
_FALSE = {"false", "0"}


def _raise_field_limit() -> None:
    # GSM8K responses exceed the csv module's default 128 KiB field limit only in theory; be safe.
    if csv.field_size_limit() < 2**27:
        csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


def read_csv(path: Path, required: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line where the record starts, row). Missing columns or ragged rows name file and line."""
    _raise_field_limit()
    try:
        fh = path.open(encoding="utf-8", newline="")
    except OSError as exc:
        raise DataError(f"cannot open: {exc.strerror}", path=path) from exc
    with fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise DataError("empty CSV file (no header)", path=path, line=1) from None
        except csv.Error as exc:
            raise DataError(f"malformed CSV: {exc}", path=path, line=1) from exc
        missing = [c for c in required if c not in header]
        if missing:
            raise DataError(f"missing column(s) {missing}; header has {header}", path=path, line=1)
        start = reader.line_num + 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise DataError(f"malformed CSV: {exc}", path=path, line=start) from exc
            if row:
                if len(row) != len(header):
                    raise DataError(f"expected {len(header)} fields, found {len(row)}", path=path, line=start)
                yield start, dict(zip(header, row, strict=True))
            start = reader.line_num + 1


def parse_bool(value: str, path: Path, line: int, column: str) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise DataError(f"column {column!r}: expected True/False, found {value!r}", path=path, line=line)


def parse_float(value: str, path: Path, line: int, column: str, lo: float, hi: float) -> float:
    try:
        x = float(value)
    except ValueError:
        raise DataError(f"column {column!r}: expected a number, found {value!r}", path=path, line=line) from None
    if not lo <= x <= hi:  # also rejects NaN
        raise DataError(f"column {column!r}: {x} outside [{lo}, {hi}]", path=path, line=line)
    return x


def parse_int(value: str, path: Path, line: int, column: str) -> int:
    try:
        x = int(value)
    except ValueError:
        raise DataError(f"column {column!r}: expected an integer, found {value!r}", path=path, line=line) from None
    if x < 0:
        raise DataError(f"column {column!r}: negative value {x}", path=path, line=line)
    return x


def load_json(path: Path) -> Any:
    """Parse a whole JSON file; a syntax error names the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot open: {exc.strerror}", path=path) from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"malformed JSON: {exc.msg} (column {exc.colno})", path=path, line=exc.lineno) from exc


def outcome(score: float, cost: float, output_tokens: int) -> Outcome:
    """An Outcome from values the caller has already checked (score in [0, 1], cost and tokens >= 0)."""
    return Outcome.model_construct(score=score, cost_usd=cost, output_tokens=output_tokens)


def record(id_: str, prompt: str, segments: dict[str, str], outcomes: dict[str, Outcome]) -> PromptRecord:
    """A PromptRecord without re-validation; only for the checked values of built-in loaders."""
    return PromptRecord.model_construct(id=id_, prompt=prompt, segments=segments, outcomes=outcomes)
