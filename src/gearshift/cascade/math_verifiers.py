"""Verifiers for word-problem answers (GSM8K style), checkable without a second model.

Both are weak on their own (see docs/cascade.md for precision and recall on GSM8K) but cost microseconds:
an answer with no final number, or with arithmetic that does not add up, is worth escalating.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from gearshift.cascade.verifiers import Verdict, answer_text

_NUM = r"-?\$?\d[\d,]*(?:\.\d+)?%?"
DEFAULT_FINAL_MARKERS: tuple[str, ...] = (
    r"####",
    r"the (?:final )?answer is:?",
    r"final answer:?",
    r"\\boxed\{",
)


def parse_number(text: str) -> float:
    """'$1,250.50' -> 1250.5; '%' is dropped (GSM8K answers are bare numbers)."""
    return float(text.replace(",", "").replace("$", "").replace("%", ""))


def final_answer_pattern(markers: Iterable[str] = DEFAULT_FINAL_MARKERS) -> re.Pattern[str]:
    """A number after one of `markers` (regexes, case-insensitive), captured."""
    alternatives = "|".join(f"(?:{m})" for m in markers)
    return re.compile(rf"(?:{alternatives})\s*\**\s*({_NUM})", re.IGNORECASE)


class FinalAnswerVerifier:
    """Passes answers that state a numeric final answer after one of `markers` (regexes, case-insensitive).

    The default markers cover GSM8K's `#### 42`, "The answer is 42", "Final answer: 42" and `\\boxed{42}`.
    """

    name = "final_answer"

    def __init__(self, markers: Iterable[str] = DEFAULT_FINAL_MARKERS) -> None:
        self.markers = tuple(markers)
        self._pattern = final_answer_pattern(self.markers)

    def verify(self, request: Mapping[str, Any], response: Mapping[str, Any]) -> Verdict:
        matches = self._pattern.findall(answer_text(response))
        if not matches:
            return Verdict(self.name, False, reason="no numeric final answer")
        value = parse_number(matches[-1])
        return Verdict(self.name, True, score=value, reason=f"final answer {value:g}")


_BINOPS: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
}
# "3 + 4 = 7", "$2 * 9 = $18", and GSM8K calculator annotations "<<9*2=18>>".
_EQUATION = re.compile(rf"((?:{_NUM}\s*[-+*/x×÷]\s*)+{_NUM})\s*=\s*({_NUM})")
_ANNOTATION = re.compile(r"<<([^=<>]+)=([^<>]+)>>")


def _evaluate(node: ast.AST) -> float:
    """Arithmetic only (+ - * / and unary minus on numbers): never eval()."""
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        return _BINOPS[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _evaluate(node.operand)
        return -value if isinstance(node.op, ast.USub) else value
    raise ValueError("not plain arithmetic")


def _calc(expr: str) -> float | None:
    cleaned = expr.replace(",", "").replace("$", "").replace("%", "")
    cleaned = cleaned.replace("×", "*").replace("÷", "/").replace("x", "*")
    try:
        return _evaluate(ast.parse(cleaned, mode="eval"))
    except (SyntaxError, ValueError, ZeroDivisionError, RecursionError):
        return None


def calculations(text: str, rel_tol: float = 0.01) -> Iterator[tuple[str, str, float, bool]]:
    """Each stated calculation that can be checked: (expression, stated result, true value, right?). Right means
    within `rel_tol`, or a 2-decimal rounding of the true value (models round money)."""
    for expr, stated in [*_ANNOTATION.findall(text), *_EQUATION.findall(text)]:
        got = _calc(expr)
        try:
            want = parse_number(stated.strip())
        except ValueError:
            continue
        if got is None:
            continue
        yield expr, stated, got, abs(got - want) <= rel_tol * max(1.0, abs(want)) or abs(round(got, 2) - want) <= 0.011


class ArithmeticVerifier:
    """Fails answers containing a stated calculation that is wrong ("3 * 4 = 13"), within `rel_tol`
    (or a 2-decimal rounding of the true value, since models round money). No calculation: passes."""

    name = "arithmetic"

    def __init__(self, rel_tol: float = 0.01) -> None:
        self.rel_tol = rel_tol

    def verify(self, request: Mapping[str, Any], response: Mapping[str, Any]) -> Verdict:
        checked = 0
        for expr, stated, got, right in calculations(answer_text(response), self.rel_tol):
            checked += 1
            if not right:
                return Verdict(self.name, False, score=float(checked),
                               reason=f"wrong arithmetic: {expr.strip()} = {stated.strip()} (is {got:g})")
        return Verdict(self.name, True, score=float(checked), reason=f"{checked} calculation(s) check out")
