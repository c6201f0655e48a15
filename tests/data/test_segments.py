"""One definition of the prompt segments: offline evaluation, the gateway's records and the SLIs agree."""

from __future__ import annotations

import pytest

from gearshift.closed_loop.segments import segment_features
from gearshift.closed_loop.signals import segment_labels
from gearshift.data.segments import LENGTH_BUCKETS, has_code, length_bucket
from gearshift.data.tokens import text_tokens as estimated_tokens
from gearshift.evaluation.slices import derived_segments
from gearshift.policy.experiment import matches
from gearshift.records.record import segment_row

PY = "def count(n):\n    while n > 0:\n        print(n)\n    return n\n"


@pytest.mark.parametrize(("text", "code"), [
    ("Why does this fail?\n```python\nprint(1/0)\n```", True),  # fence
    ("Why does this loop never end?\n\n" + PY, True),  # pasted Python, no fence
    ("Fix my code:\nconst xs = [1, 2, 3];\nxs.forEach(x => console.log(x));\n", True),  # pasted JS, no fence
    ("What does `xs.map(x => x * 2)` return?", True),  # one line of inline code
    ("#include <stdio.h>\nint main() {\n  printf(\"hi\");\n  return 0;\n}", True),
    ("SELECT name, COUNT(*) FROM users\nGROUP BY name;", True),
    ("class Stack:\n    def push(self, x):\n        self.items.append(x)\n", True),
    ("Why is my div not centered? <div class=\"box\">hi</div>", True),
    ("这段代码有什么问题？\ndef f(x):\n    return x+1\n", True),
    ("If x = 3 and y = 2x + 1, what is y?", False),  # math, not code
    ("Solve for x:\nx = 3\ny = x + 2;\nWhat is y?", False),
    ("Explain the function of mitochondria in a cell.", False),  # prose mentioning "function"
    ("What class of drugs are statins? I need an answer for my class.", False),
    ("class of drugs: statins\nimport duties on cars\n", False),
    ("What is the import tax on cars in Germany; is it high?", False),
    ("List three fruits;\nthen three vegetables;\n", False),
    ("Write an email to <Name> about the meeting.", False),
    ("<context>\nThe sky is blue.\n</context>\n<question>\nWhat color is the sky?\n</question>", False),
    ("What does `numpy` do?", False),
    ("Write a poem about the sea; make it rhyme.", False),
    ("Is 3 < 5? And is 10 > 2?", False),
])
def test_has_code(text: str, code: bool) -> None:
    assert has_code(text) is code


def test_estimated_tokens_count_non_ascii_characters_one_each() -> None:
    assert estimated_tokens("") == 0 and estimated_tokens("abcd") == 1 and estimated_tokens("abcde") == 2
    assert estimated_tokens("ab漢字") == 3 and estimated_tokens("é" * 10) == 10


PROMPTS = [
    "What is the capital of France?",
    "Quelle est la capitale de la France et pourquoi a-t-elle été choisie ?",
    "Was ist die Hauptstadt von Frankreich und warum wurde sie gewählt? " * 4,
    "法国的首都是哪里？为什么选择它？" * 20,
    "Какая столица Франции и почему её выбрали? " * 60,
    "Explain the history of the printing press in Europe. " * 120,
    "Pourquoi cette fonction renvoie-t-elle toujours None ?\n```python\ndef f(x):\n    x + 1\n```",
    "Why does this loop never end?\n\n" + PY * 10,
    "12 + 7 = ?",
    "",
]


def test_offline_slices_and_live_segments_agree() -> None:
    offline = derived_segments(PROMPTS)
    assert set(offline["length_bucket"]) == set(LENGTH_BUCKETS)  # the prompts cover every bucket
    assert set(offline["has_code"]) == {"yes", "no"}
    assert len(set(offline["language"])) >= 5
    for i, text in enumerate(PROMPTS):
        row = segment_row(text, [{"role": "user", "content": text}])
        live = segment_labels(row)  # the SLI / dashboard labels of the decision record
        sli = segment_features(text).labels()  # the closed loop's own features
        for name in ("language", "length_bucket", "has_code"):
            assert offline[name][i] == live[name] == sli[name], (name, text[:40])
        assert row["length_bucket"] == length_bucket(text) and row["has_code"] == (offline["has_code"][i] == "yes")


@pytest.mark.parametrize("key", ["has_code=yes", "has_code=true", "has_code=True"])
def test_boolean_segment_keys_accept_yes_and_true(key: str) -> None:
    assert matches(key, {"has_code": True}) and not matches(key, {"has_code": False})
    assert matches(key.replace("yes", "no").replace("true", "false").replace("True", "False"), {"has_code": False})
