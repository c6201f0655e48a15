"""Bad input never breaks the gateway: schemathesis against /openapi.json, Hypothesis on parsing and config.

Positive and negative cases from the OpenAPI description go to the real server (uvicorn, healthy fake
upstream): no 5xx, every error in the OpenAI shape, every response as documented.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from gateway.harness import GatewayServer
from gearshift.errors import ConfigError, GearshiftError, InvalidRequestError, openai_error_body
from gearshift.gateway.requests import validate_chat
from gearshift.gateway.settings import load_settings, parse_settings
from gearshift.http_body import parse_json
from reliability.conftest import dep, running, settings_for
from support.fake_upstream import FakeUpstream

MAX_EXAMPLES = 40


@pytest.fixture(scope="module")
def fuzz_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    db = tmp_path_factory.mktemp("fuzz") / "d.sqlite"
    with FakeUpstream(answer="fuzz answer") as up:
        settings = settings_for([dep("cheap", up.base_url, 5.0)], up.base_url, db, deadline_s=5.0)
        with running(settings) as gw:
            yield gw


def openai_error_shape(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every error response is `{"error": {message, type, param, code}}`."""
    if response.status_code < 400:
        return None
    body = json.loads(response.content)
    if set(body) != {"error"} or not {"message", "type", "param", "code"} <= set(body["error"]):
        raise AssertionError(f"not an OpenAI error body: {response.content[:300]!r}")
    return True


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_openapi_fuzz_no_5xx_and_openai_errors(mode: GenerationMode, fuzz_gateway: GatewayServer) -> None:
    schema = schemathesis.openapi.from_url(fuzz_gateway.root + "/openapi.json")
    operations = [r.ok() for r in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/chat/completions", "/v1/models"}
    for op in operations:
        if mode == GenerationMode.NEGATIVE and op.path != "/v1/chat/completions":
            continue  # GET endpoints without parameters have no invalid input to generate
        examples = MAX_EXAMPLES if op.path == "/v1/chat/completions" else 5

        @given(case=op.as_strategy(generation_mode=mode))
        @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case: Any) -> None:
            case.call_and_validate(base_url=fuzz_gateway.root,
                                   additional_checks=[openai_error_shape, not_a_server_error],
                                   excluded_checks=[positive_data_acceptance])

        run()


def test_openapi_document_is_served_and_lists_the_endpoints(fuzz_gateway: GatewayServer) -> None:
    doc = httpx.get(fuzz_gateway.root + "/openapi.json", timeout=5).json()
    assert doc["openapi"].startswith("3.")
    assert {"/v1/chat/completions", "/v1/models", "/healthz", "/metrics"} <= set(doc["paths"])
    models = doc["components"]["schemas"]["ChatCompletionRequest"]["properties"]["model"]["enum"]
    assert "gearshift/auto" in models and "cheap" in models


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=4), max_leaves=20)
chat_like = st.fixed_dictionaries({}, optional={
    "model": json_values | st.sampled_from(["gearshift/auto", "", "router-heuristic-0.5"]),
    "messages": json_values | st.lists(st.fixed_dictionaries({}, optional={"role": json_values,
                                                                            "content": json_values}), max_size=3),
    "stream": json_values, "max_tokens": json_values, "n": json_values, "stream_options": json_values})


@given(raw=st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
@settings(max_examples=300, deadline=None)
def test_request_parsing_only_ever_raises_a_400(raw: bytes) -> None:
    try:
        validate_chat(parse_json(raw))
    except InvalidRequestError as exc:
        status, body = openai_error_body(exc)
        assert status == 400 and body["error"]["type"] == "invalid_request_error"


@given(payload=chat_like)
@settings(max_examples=300, deadline=None)
def test_chat_validation_errors_name_a_param(payload: dict[str, Any]) -> None:
    try:
        req = validate_chat(payload)
    except InvalidRequestError as exc:
        assert exc.param and exc.status_code == 400
    else:
        assert isinstance(req.model, str) and req.model and len(req.messages) >= 1


config_like = st.dictionaries(
    st.sampled_from(["tiers", "router", "store", "limits", "reliability", "auth", "cascade", "bogus"]),
    json_values | st.lists(st.fixed_dictionaries({}, optional={"name": json_values, "deployments": json_values}),
                           max_size=3), max_size=5)


@given(data=config_like)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_config_loading_fails_only_with_config_errors(data: dict[str, Any]) -> None:
    try:
        parse_settings(data, "fuzz")
    except ConfigError as exc:
        assert exc.message.startswith("fuzz: invalid gateway config")


@given(text=st.text(max_size=300))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_config_file_of_any_text_is_a_config_error_not_a_crash(text: str, tmp_path: Path) -> None:
    p = tmp_path / "fuzz.toml"
    p.write_text(text, encoding="utf-8")
    try:
        load_settings(p)
    except GearshiftError as exc:
        assert isinstance(exc, ConfigError) and str(p) in exc.message
    except tomllib.TOMLDecodeError:  # pragma: no cover - must be wrapped
        raise AssertionError("TOML errors must surface as ConfigError") from None
