from __future__ import annotations

import functools
import http.server
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gearshift.cli import main
from gearshift.data.alpaca_eval import load_alpaca_eval
from gearshift.data.fetch import LLMROUTER, ROUTELLM, RemoteFile, download, fetch, manifest, rebuild_alpaca_eval
from gearshift.data.routellm import load_gsm8k
from gearshift.errors import DataError


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "upstream"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def _publish(root: Path, data_dir: Path, files: list[RemoteFile]) -> None:
    for f in files:
        target = root / f.repo / f.commit / f.path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(data_dir / f.local, target)


def test_fetch_downloads_skips_and_loads(server: tuple[str, Path], tmp_path: Path, data_dir: Path) -> None:
    url, root = server
    files = [f for f in manifest(alpaca_models=()) if f.local.startswith("routellm/gsm8k/")]
    assert len(files) == 2
    _publish(root, data_dir, files)
    dest = tmp_path / "data"
    report = fetch(dest, url, files, show_progress=False)
    assert sorted(report.downloaded) == sorted(f.local for f in files)
    assert (dest / "routellm/SOURCE_COMMIT").read_text().split() == [ROUTELLM[1], ROUTELLM[0]]
    for f in files:
        assert (dest / f.local).read_bytes() == (data_dir / f.local).read_bytes()
    assert len(load_gsm8k(dest)) == len(load_gsm8k(data_dir))
    again = fetch(dest, url, files, show_progress=False)
    assert again.downloaded == [] and len(again.skipped) == 2


def test_404_is_a_clear_error_and_leaves_nothing(server: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = server
    dest = tmp_path / "data"
    with pytest.raises(DataError, match="HTTP 404") as exc:
        fetch(dest, url, [RemoteFile("llmrouter/LICENSE", *LLMROUTER, "LICENSE")], show_progress=False)
    assert LLMROUTER[1] in str(exc.value)
    assert not [p for p in dest.rglob("*") if p.is_file()]


def test_unreachable_server_and_empty_file(server: tuple[str, Path], tmp_path: Path) -> None:
    url, root = server
    (root / "empty.txt").write_text("")
    with pytest.raises(DataError, match="empty"):
        download(f"{url}/empty.txt", tmp_path / "e.txt")
    with pytest.raises(DataError, match="failed"):
        download("http://127.0.0.1:9/nothing", tmp_path / "n.txt", timeout_s=2)
    assert list(tmp_path.glob("*.txt")) == [] and not list(tmp_path.glob(".*part"))


def test_cli_fetch_reports_error(server: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = server
    assert main(["data", "fetch", "--dest", str(tmp_path / "d"), "--base-url", url]) == 1


def test_rebuild_alpaca_eval_from_annotations(tmp_path: Path) -> None:
    ann = tmp_path / "ann"
    ann.mkdir()
    instr = ["Say hi", "Name a colour", "Count to three"]
    ref = [{"instruction": t, "dataset": "helpful_base", "output_1": "x" * 8, "output_2": "x" * 8,
            "preference": 1.5} for t in instr]
    other = [{"instruction": instr[2], "output_1": "x" * 8, "output_2": "yy", "preference": 1.9},
             {"instruction": instr[0], "output_1": "x" * 8, "output_2": "", "preference": None}]
    (ann / "gpt4_1106_preview.json").write_text(json.dumps(ref))
    (ann / "phi-2.json").write_text(json.dumps(other))
    written = rebuild_alpaca_eval(ann, tmp_path / "alpaca_eval", ["gpt4_1106_preview", "phi-2"])
    assert sorted(f"alpaca_eval/{f.name}" for f in (tmp_path / "alpaca_eval").iterdir()) == sorted(written)
    lines = [json.loads(x) for x in (tmp_path / "alpaca_eval/instructions.jsonl").read_text().splitlines()]
    assert [x["idx"] for x in lines] == [0, 1, 2] and lines[1]["instruction"] == "Name a colour"
    ds = load_alpaca_eval(tmp_path, weak_model="phi-2")
    assert ds.ids == ["alpaca-eval/2"]  # the unjudged (null preference) row is dropped
    assert ds.records[0].outcomes["phi-2"].score == pytest.approx(0.9)
    assert ds.records[0].outcomes["phi-2"].output_tokens == 1
