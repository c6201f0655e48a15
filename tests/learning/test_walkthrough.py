"""The README's "bring your own outcomes" walk-through, run as written: export, train, serve, decisions.

The commands and the TOML are read from the README between the walkthrough markers, so the test breaks when
the README and the code drift apart. Only the upstream URLs and key variables are swapped for local fake
upstreams, and `serve` gets a free port.
"""

from __future__ import annotations

import json
import re
import shlex
import socket
from pathlib import Path

import httpx
import numpy as np
import pytest

from gearshift.cli import main
from gearshift.config import default_data_dir
from gearshift.routers.operating_point import load_operating_point
from support.fake_upstream import FakeUpstream
from support.serve_process import start_serve, stop_serve, wait_healthy

README = Path(__file__).resolve().parents[2] / "README.md"


def _walkthrough() -> tuple[list[list[str]], str]:
    text = README.read_text(encoding="utf-8")
    block = text.split("<!-- walkthrough:start -->")[1].split("<!-- walkthrough:end -->")[0]
    bash = block.split("```bash")[1].split("```")[0]
    toml = block.split("```toml")[1].split("```")[0]
    commands = [shlex.split(line, comments=True) for line in bash.splitlines() if line.startswith("gearshift ")]
    return commands, toml


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_readme_walkthrough_trains_calibrates_and_serves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = default_data_dir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GEARSHIFT_DATA_DIR", str(data_dir))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    commands, toml = _walkthrough()
    assert [c[:2] for c in commands] == [["gearshift", "data"], ["gearshift", "train"], ["gearshift", "serve"],
                                         ["gearshift", "decisions"]]
    export, train, serve, decisions = commands
    assert main(export[1:]) == 0
    assert main(train[1:]) == 0
    out = capsys.readouterr().out
    router_dir = tmp_path / "routers" / "my-router"
    point = load_operating_point(router_dir)
    assert point is not None and point.target == {"kind": "strong_share", "value": 0.3}
    assert abs(point.measured["strong_share"] - 0.3) < 0.02  # calibrated out of fold to the stated target
    assert "operating point: threshold" in out and 'path = "' in out

    with FakeUpstream(answer="cheap answer") as cheap, FakeUpstream(answer="strong answer") as strong:
        urls = iter([cheap.base_url, strong.base_url])
        config = re.sub(r'base_url = "[^"]+"', lambda _: f'base_url = "{next(urls)}"', toml)
        config = re.sub(r'api_key_env = "[^"]+"\n', "", config)
        config += f'\n[store]\npath = "{tmp_path / "decisions.sqlite"}"\n'
        (tmp_path / serve[-1]).write_text(config, encoding="utf-8")
        port = _free_port()
        proc = start_serve(tmp_path / serve[-1], port)
        try:
            wait_healthy(proc, f"http://127.0.0.1:{port}", 60, lambda: "")
            prompts = [r["prompt"] for r in map(json.loads, (tmp_path / "my-outcomes.jsonl").open())][:40]
            tiers = []
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
                for p in prompts:
                    r = c.post("/v1/chat/completions", json={"model": "gearshift/auto",
                                                             "messages": [{"role": "user", "content": p}]})
                    assert r.status_code == 200, r.text
                    tiers.append(r.headers["x-gearshift-tier"])
                assert c.get("/dashboard").status_code == 200
        finally:
            stop_serve(proc)
    # training prompts, so the share is the in-sample one: near, not at, the out-of-fold 30 %
    assert 0.05 <= np.mean([t == "strong" for t in tiers]) <= 0.7
    capsys.readouterr()
    assert main([*decisions[1:], "--db", str(tmp_path / "decisions.sqlite"), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert len(rows) == len(prompts)
    assert {r["router"] for r in rows} == {"stack"}
    assert all(r["thresholds"] == pytest.approx(list(point.thresholds)) for r in rows)


def test_serve_refuses_an_untrained_trainable_router(tmp_path: Path) -> None:
    from gearshift.errors import ConfigError
    from gearshift.gateway.app import create_app
    from gearshift.gateway.settings import parse_settings

    settings = parse_settings({
        "tiers": [{"name": "cheap", "deployments": [{"model": "c", "base_url": "http://127.0.0.1:9/v1"}]},
                  {"name": "strong", "deployments": [{"model": "s", "base_url": "http://127.0.0.1:9/v1"}]}],
        "router": {"name": "stack"}, "store": {"path": str(tmp_path / "d.sqlite")}}, "test")
    with pytest.raises(ConfigError, match=r"(?s)not been trained.*gearshift train --data .* --router stack"):
        create_app(settings)


def test_config_thresholds_override_the_saved_operating_point(tmp_path: Path) -> None:
    from gearshift.data.registry import load_dataset
    from gearshift.gateway.routing import ModelResolver
    from gearshift.gateway.settings import parse_settings
    from gearshift.learning.train import Target, train
    from gearshift.routers.operating_point import save_operating_point

    data = load_dataset("gsm8k", default_data_dir()).subset(range(120))
    trained = train(data, "stack", {"folds": 2, "trees": 20}, "gpt-4-1106-preview",
                    "mistralai/Mixtral-8x7B-Instruct-v0.1", Target("strong_share", 0.25), folds=2)
    out = trained.router.save(tmp_path / "r")
    save_operating_point(out, trained.point)
    tiers = [{"name": n, "deployments": [{"model": n, "base_url": "http://127.0.0.1:9/v1"}]} for n in ("c", "s")]
    saved = ModelResolver(parse_settings({"tiers": tiers, "router": {"path": str(out)}}, "t"))
    assert saved.policy.thresholds == trained.point.thresholds
    fixed = ModelResolver(parse_settings({"tiers": tiers, "router": {"path": str(out), "thresholds": [0.42]}}, "t"))
    assert fixed.policy.thresholds == (0.42,)
