"""Where command output goes, so every command behaves the same in a terminal and in a pipe.

Results (tables, JSON) go to stdout; progress, info lines, warnings and errors to stderr. Progress is drawn
only when stderr is a terminal (a pipe gets no spinner residue). Text lines are never wrapped mid-path
(`soft_wrap`); tables use the terminal's width, or `$COLUMNS`, or a wide default when piped so nothing is
cut for `grep` or a file. Text from clients or datasets is shown through `safe_cell`, which neutralises
terminal control characters and rich markup.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

#: table width when stdout is not a terminal and $COLUMNS is unset: wide enough for every column.
PIPE_WIDTH = 200

# C0/C1 controls, DEL, and the bidi overrides / isolates that reorder what a terminal shows.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def stdout_console() -> Console:
    """Results: terminal width in a terminal; `$COLUMNS` or PIPE_WIDTH in a pipe."""
    from gearshift.config import terminal_columns

    probe = Console()
    if probe.is_terminal:
        return probe
    return Console(width=terminal_columns() or PIPE_WIDTH)


def stderr_console() -> Console:
    """Progress, info, warnings and errors."""
    return Console(stderr=True, soft_wrap=True)


def progress_enabled(no_progress: bool, console: Console) -> bool:
    """Draw progress only for a person watching a terminal."""
    return not no_progress and console.is_terminal


def say(console: Console, label: str, text: str) -> None:
    """`label` (rich markup, e.g. "[yellow]warning:[/]") then `text` as written: messages name config sections
    ("set [experiment] misroute_fraction"), which rich would otherwise read as style tags and drop."""
    console.print(f"{label} {escape(text)}", highlight=False)


def safe_cell(text: object) -> str:
    """Client or dataset text for a rich table: controls shown as escapes (\\x1b), markup inert."""
    s = _UNSAFE.sub(lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}", str(text))
    return escape(s)


def fit_table(console: Console, build: Callable[[Sequence[str]], Table], columns: Sequence[str],
              drop_order: Sequence[str]) -> Table:
    """The table with as many columns as fit the console whole: drop `drop_order` columns one by one until the
    table's natural width fits, rather than cutting every column to three characters."""
    unbounded = console.options.update_width(10_000)
    shown = list(columns)
    table = build(shown)
    for name in drop_order:
        if Measurement.get(console, unbounded, table).maximum <= console.width:
            break
        if name in shown:
            shown.remove(name)
            table = build(shown)
    return table


def print_fitted(console: Console, table: Table, columns: Sequence[str]) -> None:
    """Print a `fit_table` table, then name the columns the width left out and how to see them."""
    console.print(table)
    shown = {str(col.header) for col in table.columns}
    hidden = [c for c in columns if c not in shown]
    if hidden:
        console.print(f"[dim]not shown at this width: {escape(', '.join(hidden))} (a wider terminal or --json "
                      "shows them)[/]", highlight=False)


# -- one meaning of --json --------------------------------------------------------------------------------------
def add_json_options(parser: argparse.ArgumentParser, what: str) -> None:
    """`--json`: print `what` as JSON on stdout instead of the table. `--json-out FILE`: also write it to FILE.

    `--json FILE` (the old spelling of `--json-out FILE`) still works, with a deprecation note on stderr.
    """
    parser.add_argument("--json", nargs="?", const="-", default=None, metavar="FILE",
                        help=f"print {what} as JSON on stdout instead of the table "
                             "(`--json FILE` is the deprecated spelling of --json-out FILE)")
    parser.add_argument("--json-out", type=Path, metavar="FILE", help=f"also write {what} as JSON to FILE")


def json_outputs(args: argparse.Namespace, err: Console) -> tuple[bool, Path | None]:
    """(print JSON on stdout?, file to write it to) from `add_json_options`' arguments."""
    raw: str | None = args.json
    path: Path | None = args.json_out
    if raw is not None and raw != "-":
        err.print(f"note: `--json {raw}` is deprecated; use `--json-out {raw}` (`--json` alone prints JSON "
                  "on stdout)", markup=False, highlight=False)
        path = path or Path(raw)
        return False, path
    return raw == "-", path


def emit_json(payload: Any, to_stdout: bool, path: Path | None, err: Console, what: str) -> None:
    """Write `payload` where `json_outputs` said; the file is replaced atomically, its path reported on stderr."""
    text = json.dumps(payload, indent=2, ensure_ascii=False) + "\n"
    if path is not None:
        from gearshift.data.records import atomic_write_text

        atomic_write_text(path, [text])
        err.print(f"{what} JSON: {path}", markup=False, highlight=False)
    if to_stdout:
        import sys

        sys.stdout.write(text)
        sys.stdout.flush()
