"""The shared CLI output rules: one meaning of --json, inert client text, tables that drop whole columns."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest
from rich.console import Console
from rich.table import Table

from gearshift.cli.terminal import add_json_options, fit_table, json_outputs, safe_cell


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_json_options(p, "the thing")
    return p.parse_args(argv)


def test_json_is_stdout_json_out_is_a_file_and_the_old_spelling_still_works() -> None:
    err = Console(file=io.StringIO())
    assert json_outputs(_parse([]), err) == (False, None)
    assert json_outputs(_parse(["--json"]), err) == (True, None)
    assert json_outputs(_parse(["--json-out", "a.json"]), err) == (False, Path("a.json"))
    assert json_outputs(_parse(["--json", "--json-out", "a.json"]), err) == (True, Path("a.json"))
    assert err.file.getvalue() == ""  # type: ignore[attr-defined]
    assert json_outputs(_parse(["--json", "old.json"]), err) == (False, Path("old.json"))
    assert "deprecated; use `--json-out old.json`" in err.file.getvalue()  # type: ignore[attr-defined]


def test_safe_cell_neutralises_markup_and_terminal_controls() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=200)
    console.print(safe_cell("[red]x[/] \x1b[2J \x07 \u202e ok"), highlight=False)
    text = out.getvalue()
    assert "[red]x[/]" in text and "\\x1b[2J" in text and "\\x07" in text and "\\u202e" in text
    assert "\x1b[2J" not in text and "\x07" not in text and "\u202e" not in text


def test_fit_table_drops_whole_columns_in_order() -> None:
    def build(cols: list[str] | tuple[str, ...]) -> Table:
        t = Table()
        for c in cols:
            t.add_column(c, no_wrap=True)
        t.add_row(*(f"{c}-value-that-is-long" for c in cols))
        return t

    cols = ("keep", "a", "b", "c")
    narrow = Console(file=io.StringIO(), width=60)
    shown = [str(c.header) for c in fit_table(narrow, build, cols, ("c", "b", "a")).columns]
    assert shown == ["keep", "a"]
    wide = Console(file=io.StringIO(), width=300)
    assert [str(c.header) for c in fit_table(wide, build, cols, ("c", "b", "a")).columns] == list(cols)


def test_warnings_and_errors_keep_the_config_sections_they_name(capsys: pytest.CaptureFixture[str]) -> None:
    """rich reads "[experiment]" as a style tag and drops it: "set [experiment] misroute_fraction" printed as
    "set  misroute_fraction". Free text in warnings and errors is escaped."""
    from gearshift.cli.bounds import _warn
    from gearshift.cli.cache import _usage_error

    _warn("the bounds are biased; set [experiment] misroute_fraction")
    assert _usage_error("--max-size takes e.g. 2GB, see [store] path") == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "set [experiment] misroute_fraction" in err and "see [store] path" in err


def test_reading_the_demos_store_uses_the_demos_tiers_and_a_one_tier_log_says_why() -> None:
    """All of a fresh demo's decisions can go cheap; inferring tiers from that log found one and refused."""
    import argparse

    from gearshift.cli.common import tier_names
    from gearshift.errors import DataError
    from gearshift.learning.logs import infer_tiers

    def ns(**kw: object) -> argparse.Namespace:
        return argparse.Namespace(**{"tiers": None, "config": None, "db": None, "store_url": None, **kw})

    assert tier_names(ns()) == ("cheap", "strong")  # no --db/--store-url/--config: the demo's store and tiers
    assert tier_names(ns(db="gw.sqlite")) is None  # another store: its log says
    assert tier_names(ns(db="gw.sqlite", tiers="a, b")) == ("a", "b")
    with pytest.raises(DataError, match=r"1 tier\(s\) \['cheap'\], as when every decision went to one; .*--tiers"):
        infer_tiers([{"tier": "cheap", "score": 0.2}, {"tier": "cheap", "score": 0.4}])
