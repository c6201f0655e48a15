"""The consistency verifier: what counts as two answers agreeing."""

from __future__ import annotations

import pytest

from gearshift.cascade.consistency import agreement


@pytest.mark.parametrize(("a", "b", "agree"), [
    ("She has 3 + 4 = 7 apples.\n#### 7", "Adding them gives 7.\nThe answer is 7", True),  # math: final numbers
    ("#### 1,250", "The final answer is $1250", True),
    ("The answer is 7", "The answer is 8", False),
    ("The answer is (B) because ...", "I think the answer is B.", True),  # multiple choice: the letter
    ("Answer: C", "answer: (D)", False),
    ("Paris is the capital of France.", "The capital of France is Paris.", True),  # free text: word overlap
    ("Paris is the capital of France.", "Lyon, a city in the south, is famous for food.", False),
    ("The answer is 7", "It depends on how you count them.", False),  # one states an answer, one does not
])
def test_agreement(a: str, b: str, agree: bool) -> None:
    assert agreement(a, b)[0] is agree
