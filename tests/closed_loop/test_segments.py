"""Per-request segments: language id, buckets, code, client fingerprint, topic clusters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gearshift.closed_loop.segments import key_fingerprint, segment_features
from gearshift.data.language import detect_language
from gearshift.routers.embedding import HashingEmbedder
from gearshift.routers.topics import TopicModel


@pytest.mark.parametrize(("text", "lang"), [
    ("What is the capital of France, and why was it chosen?", "en"),
    ("¿Cuál es la capital de Francia y por qué fue elegida?", "es"),
    ("Quelle est la capitale de la France et pourquoi a-t-elle été choisie ?", "fr"),
    ("Was ist die Hauptstadt von Frankreich und warum wurde sie gewählt?", "de"),
    ("法国的首都是哪里？为什么选择它？", "zh"),
    ("Какая столица Франции и почему её выбрали?", "ru"),
    ("フランスの首都はどこですか？", "ja"),
])
def test_language_is_identified(text: str, lang: str) -> None:
    assert detect_language(text).language == lang


def test_code_does_not_hide_the_language_of_the_prose() -> None:
    text = "Pourquoi cette fonction renvoie-t-elle toujours None ?\n```python\ndef f(x):\n    x + 1\n```"
    feats = segment_features(text)
    assert feats.language == "fr"
    assert feats.has_code


def test_no_letters_is_undetermined() -> None:
    assert detect_language("1234 + 5678 = ?").language == "und"


def test_length_buckets_and_labels() -> None:
    short = segment_features("hi", detect=False)
    long = segment_features("word " * 2000, detect=False)
    assert short.length_bucket == "short" and long.length_bucket == "very_long"
    assert long.est_tokens > short.est_tokens
    assert short.labels() == {"language": "und", "length_bucket": "short", "has_code": "no"}


def test_raw_api_keys_never_become_segment_values() -> None:
    feats = segment_features("hello", api_key="sk-secret-123", detect=False)
    assert feats.client == key_fingerprint("sk-secret-123")
    assert "secret" not in (feats.client or "")
    assert segment_features("hello", client_id="team-a", api_key="sk-x", detect=False).client == "team-a"


def test_topic_clusters_separate_topics_and_survive_save_load(tmp_path: Path) -> None:
    emb = HashingEmbedder(dim=256)
    cooking = [f"recipe for {d} with garlic onion and olive oil in the oven" for d in
               ("pasta", "soup", "stew", "bread", "pizza", "risotto", "curry", "salad")]
    code = [f"python function to {t} a list with a for loop and return the result" for t in
            ("sort", "reverse", "filter", "sum", "deduplicate", "shuffle", "flatten", "chunk")]
    model = TopicModel(k=2, seed=0).fit(emb.embed(cooking + code))
    labels = model.assign(emb.embed(cooking + code))
    assert len(set(labels[:8])) == 1 and len(set(labels[8:])) == 1 and labels[0] != labels[8]
    loaded = TopicModel.load(model.save(tmp_path / "topics"))
    query = emb.embed(["python function to merge a list with a loop"])[0]
    feats = segment_features("python function to merge a list", topics=loaded, embedding=query, detect=False)
    assert feats.topic == f"t{labels[8]}"
    assert np.array_equal(loaded.centroids_, model.centroids_)
