"""A newcomer's first run of `gearshift serve` and `gearshift decisions`, through the real commands.

Each check is something a user sees: where the decisions go, what the banner says, how a bad port or a
typo in the config is reported, and what the gateway answers for an unknown model or a large body.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from gateway.harness import GatewayServer, deployment
from gearshift.cli import main
from gearshift.gateway.app import create_app
from gearshift.gateway.settings import load_settings, parse_settings
from support.cli_run import SRC, run_cli
from support.fake_upstream import FakeUpstream, closed_port
from support.serve_process import stop_serve, two_tier_toml, wait_healthy


def _config(tmp_path: Path, up: FakeUpstream, name: str = "gearshift.toml", extra: str = "") -> Path:
    path = tmp_path / name
    path.write_text(two_tier_toml(up.base_url, up.base_url) + extra, encoding="utf-8")
    return path


def test_decision_store_defaults_to_the_user_data_dir_one_file_per_config(tmp_path: Path) -> None:
    xdg = Path(os.environ["XDG_DATA_HOME"])
    a = tmp_path / "a"
    b = tmp_path / "b"
    a.mkdir()
    b.mkdir()
    with FakeUpstream() as up:
        sa, sb = load_settings(_config(a, up)), load_settings(_config(b, up))
    # never the working directory; two configs (even both called gearshift.toml) never share a store
    assert sa.store.path.parent == xdg / "gearshift" and sb.store.path.parent == xdg / "gearshift"
    assert sa.store.path != sb.store.path and sa.store.path.name.startswith("decisions-gearshift-")
    assert parse_settings({"tiers": [{"name": "c", "deployments": [{"provider": "local", "model": "m"}]},
                                     {"name": "s", "deployments": [{"provider": "local", "model": "n"}]}]}
                          ).store.path == xdg / "gearshift" / "decisions.sqlite"
    # an explicit [store] path still wins
    with FakeUpstream() as up:
        own = load_settings(_config(tmp_path, up, "own.toml", '\n[store]\npath = "/tmp/x.sqlite"\n'))
    assert own.store.path == Path("/tmp/x.sqlite")


def test_decisions_without_a_store_says_how_to_name_one(tmp_path: Path) -> None:
    run = run_cli(["decisions"], cwd=tmp_path, env={"XDG_DATA_HOME": str(tmp_path / "xdg")})
    assert run.rc == 1
    assert f"no gateway store at {tmp_path / 'xdg' / 'gearshift' / 'decisions.sqlite'}" in run.err
    assert "--db FILE" in run.err and "--config" in run.err and "\n" not in run.err.strip()


def test_serve_rejects_a_bad_port_and_a_busy_one_before_starting(tmp_path: Path) -> None:
    run = run_cli(["serve", "--port", "99999"], cwd=tmp_path)
    assert run.rc == 2 and "99999 is not a TCP port" in run.err
    with FakeUpstream() as up, socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        started = time.monotonic()
        run = run_cli(["serve", "--config", str(_config(tmp_path, up)), "--port", str(port)], cwd=tmp_path)
    assert run.rc == 1 and time.monotonic() - started < 15
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in run.err
    assert "startup complete" not in run.err and "gearshift gateway on" not in run.err


def test_serve_help_shows_defaults_and_every_option_is_explained() -> None:
    import argparse

    from gearshift.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for command in ("serve", "decisions"):
        undocumented = [a.dest for a in sub.choices[command]._actions if not a.help]
        assert undocumented == [], f"{command}: {undocumented}"
    serve_help = run_cli(["serve", "--help"], columns=200).out
    assert "(default: 127.0.0.1)" in serve_help and "(default: 8000)" in serve_help


def test_serve_banner_names_the_dashboard_and_the_store_and_access_log_is_opt_in(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": SRC, "XDG_DATA_HOME": str(tmp_path / "xdg")}
    with FakeUpstream() as up:
        cfg = _config(tmp_path, up)
        for access_log in (False, True):
            port = closed_port()
            log = tmp_path / f"serve-{access_log}.log"
            with log.open("wb") as fh:
                proc = subprocess.Popen([sys.executable, "-c", "from gearshift.cli import entrypoint; entrypoint()",
                                         "serve", "--config", str(cfg), "--port", str(port),
                                         *(["--access-log"] if access_log else [])],
                                        stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
                try:
                    url = f"http://127.0.0.1:{port}"
                    wait_healthy(proc, url, 60, lambda log=log: log.read_text())
                    # the banner's `try:` line is a working request: send exactly what it says
                    line = next(ln for ln in log.read_text().splitlines() if ln.startswith("  try: "))
                    curl, silent, target, h, header, d, body = shlex.split(line.removeprefix("  try: "))
                    assert (curl, silent, target, h, d) == ("curl", "-s", f"{url}/v1/chat/completions", "-H", "-d")
                    name, _, value = header.partition(": ")
                    r = httpx.post(target, content=body, headers={name: value}, timeout=10)
                    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"]
                finally:
                    stop_serve(proc)
            text = log.read_text()
            store = load_settings(cfg).store.path
            assert f"gearshift gateway on {url}/v1" in text and f"dashboard: {url}/dashboard" in text
            assert f"decisions: {tmp_path / 'xdg' / 'gearshift'}" in text and store.name in text
            assert ('"POST /v1/chat/completions HTTP/1.1" 200' in text) is access_log


@pytest.fixture
def gateway(tmp_path: Path) -> GatewayServer:
    up = FakeUpstream()
    up.start()
    settings = parse_settings({
        "tiers": [{"name": "cheap", "deployments": [deployment("cheap-a", up)]},
                  {"name": "strong", "deployments": [deployment("strong-b", up)]}],
        "store": {"path": str(tmp_path / "d.sqlite")}, "limits": {"max_body_bytes": 2000}}, "test")
    server = GatewayServer(create_app(settings)).start()
    yield server  # type: ignore[misc]
    server.stop()
    up.stop()


def test_errors_say_what_to_do(gateway: GatewayServer) -> None:
    with gateway.client() as c:
        r = c.post("/v1/chat/completions", json={"model": "gpt-5", "messages": [{"role": "user", "content": "x"}]})
        assert r.status_code == 404
        message = r.json()["error"]["message"]
        assert all(name in message for name in ("gearshift/auto", "cheap-a", "strong-b", "router-<router>-"))
        assert "did you mean" not in message  # nothing configured is close to gpt-5
        hi = [{"role": "user", "content": "x"}]
        r = c.post("/v1/chat/completions", json={"model": "gearshift/atuo", "messages": hi})
        assert r.status_code == 404
        assert "does not exist; did you mean 'gearshift/auto'?" in r.json()["error"]["message"]
        r = c.post("/v1/chat/completions", json={"model": "router-heurstic-0.5", "messages": hi})
        assert r.status_code == 404
        assert "unknown router 'heurstic' (did you mean 'heuristic'?" in r.json()["error"]["message"]
        r = c.post("/v1/chat/completions", json={"model": "gearshift/auto",
                                                 "messages": [{"role": "user", "content": "x" * 5000}]})
        assert r.status_code == 413 and "[limits] max_body_bytes" in r.json()["error"]["message"]
        health = c.get("/healthz").json()
    # the heuristic's algorithm version is not mistaken for a registered version
    assert health["router"] == {"name": "heuristic", "algorithm": "heuristic@2", "version": None, "source": "config"}


def test_a_typo_in_any_section_is_an_error_in_one_style(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with FakeUpstream() as up:
        cascade = _config(tmp_path, up, "c.toml", "\n[cascade]\nenabeld = true\n")
        store = _config(tmp_path, up, "s.toml", "\n[store]\npth = 'x.sqlite'\n")
        assert main(["decisions", "--config", str(cascade)]) == 1
        err_cascade = capsys.readouterr().err
        assert main(["decisions", "--config", str(store)]) == 1
        err_store = capsys.readouterr().err
    assert "cascade.enabeld: unknown key (did you mean 'enabled'?" in err_cascade
    assert "store.pth: unknown key (did you mean 'path'?" in err_store


def test_the_try_line_reaches_a_wildcard_bind_locally_and_asks_a_keyed_gateway_for_the_key(tmp_path: Path) -> None:
    from gearshift.cli.serve import try_command

    with FakeUpstream() as up:
        open_gw = load_settings(_config(tmp_path, up))
        keyed = parse_settings({**open_gw.model_dump(exclude_unset=True),
                                "auth": {"keys": [{"id": "team", "sha256": "ab" * 32}]}}, "test")
    line = try_command(open_gw, "0.0.0.0", 8123)
    assert line.startswith("curl -s http://127.0.0.1:8123/v1/chat/completions ") and "authorization" not in line
    assert shlex.split(try_command(open_gw, "::", 8123))[2] == "http://[::1]:8123/v1/chat/completions"
    assert '-H "authorization: Bearer $GEARSHIFT_KEY"' in try_command(keyed, "127.0.0.1", 8123)


def test_the_local_model_loads_at_startup_in_the_background_and_a_failed_load_is_a_clear_error() -> None:
    """The demo's model takes seconds to load, which the first request used to pay. The gateway
    starts loading it at startup without waiting for it (health answers meanwhile); a load that fails is
    logged, and requests get the provider's error in the OpenAI shape rather than a hang or a 500."""
    import threading

    from starlette.testclient import TestClient

    from gearshift.errors import ProviderError
    from gearshift.providers.local import LocalProvider

    settings = parse_settings({"tiers": [
        {"name": t, "deployments": [{"name": f"demo-{t}", "provider": "local", "model": "smollm2"}]}
        for t in ("cheap", "strong")], "store": {"enabled": False}}, "test")
    loading, release = threading.Event(), threading.Event()

    def slow_load() -> object:
        loading.set()
        release.wait(10)
        return object()

    slow = LocalProvider(runner_factory=slow_load)
    with TestClient(create_app(settings, providers={"local": slow}), base_url="http://127.0.0.1") as c:
        assert loading.wait(5)  # no request was sent
        assert c.get("/healthz").status_code == 200  # while the model is still loading
        release.set()
        deadline = time.monotonic() + 5
        while slow.load_seconds is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert slow.load_seconds is not None

    def broken() -> object:
        raise ProviderError("local provider needs mistralrs: pip install 'gearshift[local]'", retryable=False)

    with TestClient(create_app(settings, providers={"local": LocalProvider(runner_factory=broken)}),
                    base_url="http://127.0.0.1") as c:
        assert c.get("/healthz").status_code == 200
        r = c.post("/v1/chat/completions", json={"model": "gearshift/auto",
                                                 "messages": [{"role": "user", "content": "hi"}]})
        assert 500 < r.status_code < 600 and "pip install 'gearshift[local]'" in r.json()["error"]["message"]
