"""Run a real gateway app under uvicorn on 127.0.0.1 (ephemeral port) in a background thread."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette

from gearshift.gateway.app import create_app
from gearshift.gateway.service import Gateway
from gearshift.gateway.settings import GatewaySettings, parse_settings
from gearshift.store.base import DecisionQuery
from gearshift.store.sqlite import SQLiteDecisionStore
from support.fake_upstream import FakeUpstream


class GatewayServer:
    def __init__(self, app: Starlette) -> None:
        self.app = app
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="gateway-under-test", daemon=True)
        self.port = 0

    @property
    def gateway(self) -> Gateway:
        gw: Gateway = self.app.state.gateway
        return gw

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> GatewayServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("gateway did not start")
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def flush(self) -> None:
        writer = self.gateway.writer
        if writer is not None:
            writer.flush(5)

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.root, timeout=10, **kwargs)

    def __enter__(self) -> GatewayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def deployment(name: str, up: FakeUpstream, **extra: Any) -> dict[str, Any]:
    return {"name": name, "provider": "openai", "model": f"{name}-upstream", "base_url": up.base_url,
            "input_price_per_m": 1.0, "output_price_per_m": 2.0, "timeout_s": 5.0, **extra}


def make_settings(cheap: list[FakeUpstream], strong: FakeUpstream, db: Path, **sections: Any) -> GatewaySettings:
    """Tier "cheap" with one deployment per upstream in `cheap` (cheap-a, cheap-b...), tier "strong"."""
    cheap_deps = [deployment(f"cheap-{chr(ord('a') + i)}", up) for i, up in enumerate(cheap)]
    data: dict[str, Any] = {
        "tiers": [{"name": "cheap", "deployments": cheap_deps},
                  {"name": "strong", "deployments": [deployment("strong", strong)]}],
        "router": {"name": "heuristic", "thresholds": [0.5]},
        "store": {"path": str(db)},
        "reliability": {"max_retries": 0, "base_delay_s": 0.0},
        "limits": {"max_body_bytes": 20_000, "request_timeout_s": 5.0},
    }
    data.update(sections)
    return parse_settings(data, "test")


def serve(settings: GatewaySettings, **kwargs: Any) -> GatewayServer:
    return GatewayServer(create_app(settings, **kwargs)).start()


def send_prompts(settings: GatewaySettings, prompts: list[str], **kwargs: Any) -> list[dict[str, Any]]:
    """Serve `settings`, send each prompt as one single-message chat (each must succeed), stop the server and
    return every decision row it logged to its SQLite store."""
    server = serve(settings, **kwargs)
    try:
        with server.client() as c:
            for p in prompts:
                r = c.post("/v1/chat/completions",
                           json={"model": "gearshift/auto", "messages": [{"role": "user", "content": p}]})
                assert r.status_code == 200, r.text
        server.flush()
    finally:
        server.stop()
    store = SQLiteDecisionStore(settings.store.path)
    try:
        return store.query(DecisionQuery(limit=None))
    finally:
        store.close()
