"""Segments in the live gateway's decision records: real language id, and the topic cluster when configured."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from gateway.harness import make_settings, send_prompts
from gearshift.cli import main
from gearshift.errors import ConfigError
from gearshift.gateway.build import build_gateway
from gearshift.routers.base import Router
from gearshift.routers.registry import make_router
from gearshift.routers.topics import TopicModel
from support.fake_upstream import FakeUpstream

COOKING = ["how long should I roast a chicken", "best way to bake sourdough bread", "how to season a cast iron pan",
           "simmer tomato sauce with garlic and basil", "how to whisk eggs for a fluffy omelette"]
CODE = ["python list comprehension with a filter", "fix a segfault in my C pointer code",
        "write a rust function that parses json", "sort a python dict by value", "javascript async await in a loop"]


@pytest.fixture(scope="module")
def ups() -> Iterator[tuple[FakeUpstream, FakeUpstream]]:
    with FakeUpstream(answer="cheap answer") as cheap, FakeUpstream(answer="strong answer") as strong:
        yield cheap, strong


def _knn() -> Router:
    """A hashing-embedder kNN router: the embedding space the topic model is fitted in."""
    router = make_router("knn", embedder="hashing", k=3)
    router.fit(COOKING + CODE, np.array([0.0] * len(COOKING) + [1.0] * len(CODE)))  # type: ignore[attr-defined]
    return router


def test_french_and_german_prompts_are_recorded_as_fr_and_de(ups: tuple[FakeUpstream, FakeUpstream],
                                                              tmp_path: Path) -> None:
    prompts = {"fr": "Pouvez-vous m'expliquer pourquoi le ciel est bleu pendant la journée ?",
               "de": "Kannst du mir bitte erklären, warum der Himmel am Tag blau ist?",
               "en": "Can you explain why the sky is blue during the day?"}
    rows = send_prompts(make_settings([ups[0]], ups[1], tmp_path / "d.sqlite"), list(prompts.values()))
    by_prompt = {r["prompt"]: r["segment"] for r in rows}
    assert {lang: by_prompt[p]["language"] for lang, p in prompts.items()} == {"fr": "fr", "de": "de", "en": "en"}
    assert all(s["topic"] is None for s in by_prompt.values())  # no [segments] topics: no topic
    assert all(s["client"] == r["api_key_id"] for s, r in zip(by_prompt.values(), rows, strict=True))


def test_configured_topic_model_labels_each_record_by_its_cluster(ups: tuple[FakeUpstream, FakeUpstream],
                                                                   tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(COOKING + CODE), encoding="utf-8")
    topics = tmp_path / "topics"
    assert main(["topics", "fit", "--data", str(corpus), "--embedder", "hashing", "--k", "2", "--out",
                 str(topics)]) == 0
    asked = ["how to roast garlic and bake bread", "python function to sort a list"]
    rows = send_prompts(make_settings([ups[0]], ups[1], tmp_path / "d.sqlite", segments={"topics": str(topics)}),
                        asked, router=_knn())
    got = {r["prompt"]: r["segment"]["topic"] for r in rows}
    model = TopicModel.load(topics)
    from gearshift.routers.embedders import make_embedder

    expected = [model.label(v) for v in make_embedder("hashing").embed(asked)]
    assert [got[p] for p in asked] == expected and set(expected) == {"t0", "t1"}  # one topic each


def test_topic_model_needs_an_embedding_router_in_the_same_space(ups: tuple[FakeUpstream, FakeUpstream],
                                                                 tmp_path: Path) -> None:
    TopicModel(k=2).fit(np.eye(2, 8, dtype=np.float32)).save(tmp_path / "t8")  # 8-d, the hashing space is wider
    settings = make_settings([ups[0]], ups[1], tmp_path / "d.sqlite", segments={"topics": str(tmp_path / "t8")})
    with pytest.raises(ConfigError, match="dimensions"):
        build_gateway(settings, router=_knn())
    with pytest.raises(ConfigError, match="embedding router"):
        build_gateway(settings, router=make_router("heuristic"))
