"""The field list is the record: same fields in the same order and of the same kind, and its concealment
classes are what `[store] text` really conceals. (Its four readers are held to it beside their own tests:
tests/store/test_schema.py, tests/store/test_export.py, tests/tracing/test_tracing_spans.py,
tests/dashboard/test_dashboard_data.py.)"""

from __future__ import annotations

import types
from typing import Any, Literal, Union, get_args, get_origin

import pytest

from gearshift.records.fields import COLUMNS, FIELDS, FieldSpec
from gearshift.records.record import DecisionRecord, Segment, record_row
from gearshift.records.redaction import Concealment, record_transform
from support.records import full_record, project


def _kind(annotation: Any) -> str:
    if get_origin(annotation) in (Union, types.UnionType):
        (annotation,) = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) is Literal:
        return "str"
    if get_origin(annotation) is list:
        return "floats" if get_args(annotation) == (float,) else "json"
    return {str: "str", float: "float", int: "int", bool: "bool"}[annotation]


def _record_fields() -> list[tuple[str, str, bool]]:
    """(name, kind, required) of every DecisionRecord field, the segment's fields where `segment` is."""
    out = []
    for name, info in DecisionRecord.model_fields.items():
        if name == "segment":
            out += [(f"segment.{n}", _kind(i.annotation), False) for n, i in Segment.model_fields.items()]
        else:
            out.append((name, _kind(info.annotation), info.is_required()))
    return out


def test_the_list_is_the_record_field_for_field() -> None:
    assert [(f.name, f.kind, f.required) for f in FIELDS] == _record_fields()


def test_table_columns_are_top_level_and_hold_every_required_field() -> None:
    assert all("." not in f.name and f.kind in ("str", "float", "int", "bool") for f in COLUMNS)
    assert {f.name for f in FIELDS if f.required} <= {f.name for f in COLUMNS}
    assert all(f.column for f in FIELDS if f.index)


def test_a_field_reads_nested_values_and_absent_ones() -> None:
    row = full_record()
    assert FieldSpec("segment.topic", "str").get(row) == "math"
    assert FieldSpec("segment.topic", "str").get({"segment": None}) is None
    assert FieldSpec("x", "str").get({}, "absent") == "absent"
    assert project(row, [FieldSpec("tier", "str"), FieldSpec("segment.turn", "int")]) == \
        {"tier": "strong", "segment": {"turn": 3}}
    assert project({"tier": "cheap"}, [FieldSpec("segment.turn", "int"), FieldSpec("tier", "str")]) == \
        {"tier": "cheap"}  # absent fields stay absent, so readers' defaults apply


def test_record_row_coerces_the_kinds_the_list_gives() -> None:
    row = record_row({"request_id": "r", "time": 5, "score": 1, "tokens_in": 3.0, "http_status": "404"})
    assert type(row["time"]) is float and type(row["score"]) is float
    assert type(row["tokens_in"]) is int and row["http_status"] == 404


@pytest.mark.parametrize("mode", ["hash", "redact"])
def test_the_concealment_classes_are_what_text_modes_conceal(mode: Literal["hash", "redact"]) -> None:
    row = full_record(text_mode="full")
    how = Concealment(mode, b"k" * 32) if mode == "hash" else Concealment(mode)
    out = record_transform(how, known_models=["strong-a"])(row)
    changed = {f.name for f in FIELDS if f.get(out) != f.get(row)}
    assert changed == {f.name for f in FIELDS if f.conceal != "none"} | {"text_mode"}
    assert out["text_mode"] == mode
    # a configured model name is no client text: it stays readable
    kept = record_transform(how, known_models=["client-chosen-model"])(row)
    assert kept["requested_model"] == "client-chosen-model"
