"""Input changes a router should not react to, and ones an attacker would use to buy the strong model.

Every perturbation is a pure function of (text, rng): seeded, so a probe run is reproducible.
Families are grouped by what a router is judged on:

- invariance (the tier must not change): casing, whitespace, typos, politeness, copy_paste, html,
  translation (the built-in parallel questions in `PARALLEL_QUESTIONS`, compared with the English one);
- cost (a prompt routed cheap must not be upgraded): gadget_phrases, confounder (a prefix found by
  greedy search against the router under test, in `probes.py`);
- report (shown, not judged): malformed inputs, multi-intent prompts.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence

Perturbation = Callable[[str, random.Random], str]

_WORD = re.compile(r"[^\W\d_]{4,}")


def _typos(text: str, rng: random.Random, rate: float = 0.08) -> str:
    """Swap two inner letters, drop or double one, in about `rate` of the longer words (at least one)."""
    words = list(_WORD.finditer(text))
    if not words:
        return text
    picked = {m.start() for m in words if rng.random() < rate} or {rng.choice(words).start()}
    out: list[str] = []
    last = 0
    for m in words:
        if m.start() not in picked:
            continue
        w = m.group()
        i = rng.randrange(1, len(w) - 2)
        kind = rng.randrange(3)
        if kind == 0:
            w = w[:i] + w[i + 1] + w[i] + w[i + 2:]
        elif kind == 1:
            w = w[:i] + w[i + 1:]
        else:
            w = w[:i] + w[i] + w[i:]
        out.append(text[last:m.start()] + w)
        last = m.end()
    out.append(text[last:])
    return "".join(out)


def _copy_paste(text: str, rng: random.Random) -> str:
    """Smart quotes, non-breaking and zero-width spaces, CRLF line ends: what pasting from a document leaves."""
    text = re.sub(r'"([^"\n]*)"', "\u201c\\1\u201d", text).replace("'", "\u2019")
    chars = [("\u00a0" if ch == " " and rng.random() < 0.3 else ch) for ch in text]
    return "\u200b" + "".join(chars).replace("\n", "\r\n") + "\u200b"


INVARIANCE: dict[str, dict[str, Perturbation]] = {
    "casing": {
        "upper": lambda t, r: t.upper(),
        "lower": lambda t, r: t.lower(),
    },
    "whitespace": {
        "collapsed": lambda t, r: " ".join(t.split()),
        "padded": lambda t, r: "\n\n  " + re.sub(r" ", "  ", t) + "  \n\t\n",
    },
    "typos": {
        "typos": _typos,
    },
    "politeness": {
        "greeting": lambda t, r: "Hi! I hope you're doing well. Could you please help me with this?\n\n" + t,
        "thanks": lambda t, r: t + "\n\nThank you so much in advance, I really appreciate it!",
    },
    "copy_paste": {
        "pasted": _copy_paste,
        "quoted": lambda t, r: "\n".join("> " + line for line in t.split("\n")),
    },
    "html": {
        "paragraphs": lambda t, r: "<div><p>" + t.replace("\n", "<br>\n") + "</p></div>",
        "entities": lambda t, r: t.replace(" ", "&nbsp;", 3).replace("'", "&#39;").replace('"', "&quot;"),
    },
}

#: Appended (or prefixed) phrases that sound hard without making the question harder.
GADGETS: dict[str, Perturbation] = {
    "step_by_step": lambda t, r: t + "\n\nThink step by step.",
    "pros_cons": lambda t, r: t + "\n\nWeigh the pros and cons carefully and explain why.",
    "expert": lambda t, r: "This is a very hard, expert-level question that needs rigorous analysis.\n\n" + t,
    "all_of_it": lambda t, r: (
        "Analyze this rigorously and compare the trade-offs. " + t
        + "\nThink step by step, justify every claim, and evaluate the implications."
    ),
}

#: Candidate words for the greedy confounder search (the router's own strong-side vocabulary is added).
CONFOUNDER_CANDIDATES: tuple[str, ...] = (
    "analyze", "rigorous", "prove", "proof", "theorem", "derive", "compute", "calculate", "solve", "equation",
    "integral", "matrix", "probability", "algorithm", "python", "function", "debug", "refactor", "sql",
    "regex", "compare", "contrast", "justify", "evaluate", "design", "critique", "implications", "why",
    "step", "detailed", "complex", "advanced", "expert", "optimize", "complexity", "formal", "lemma",
    "trade-offs", "architecture", "concurrency", "``` ```", "$x^2$", "\\frac{a}{b}", "2+2=4", "f()", "{",
    "1.", "also", "furthermore", "json", "exactly", "must", "?",
)

#: Inputs a gateway will meet sooner or later; the probe reports the tier each gets and any exception.
MALFORMED: dict[str, str] = {
    "empty": "",
    "whitespace_only": " \n\t \n",
    "punctuation_only": "?!?!... ;;; ---",
    "control_chars": "What is\x00 the\x07 capital\x1b[31m of France?\x7f",
    "lone_surrogate": "What is the capital of France? \ud83d",
    "repeated_token": "a" * 20000,
    "very_long": "Tell me about the weather. " * 3000,
    "emoji_only": "\U0001f914\U0001f914\U0001f525\U0001f680",
    "binary_noise": "".join(chr(c) for c in range(0x20, 0x7f)) * 5,
}


def join_intents(parts: Sequence[str]) -> str:
    """Several requests in one message, as users write them."""
    if not parts:
        return ""
    return parts[0] + "".join(f"\n\nAlso, {p}" for p in parts[1:])


#: The same questions in several languages, written for gearshift (not machine translated):
#: some cheap (facts, chit-chat), some that need a strong model (proofs, code, multi-step reasoning).
PARALLEL_QUESTIONS: tuple[dict[str, str], ...] = (
    {"en": "What is the capital of Japan?", "es": "¿Cuál es la capital de Japón?",
     "fr": "Quelle est la capitale du Japon ?", "de": "Was ist die Hauptstadt von Japan?",
     "zh": "日本的首都是哪里？", "ru": "Какая столица Японии?"},
    {"en": "Hello! How are you today?", "es": "¡Hola! ¿Cómo estás hoy?", "fr": "Bonjour ! Comment vas-tu aujourd'hui ?",
     "de": "Hallo! Wie geht es dir heute?", "zh": "你好！你今天怎么样？", "ru": "Привет! Как у тебя дела сегодня?"},
    {"en": "Translate the word 'apple' into Italian.", "es": "Traduce la palabra 'manzana' al italiano.",
     "fr": "Traduis le mot « pomme » en italien.", "de": "Übersetze das Wort „Apfel“ ins Italienische.",
     "zh": "把“苹果”这个词翻译成意大利语。", "ru": "Переведи слово «яблоко» на итальянский."},
    {"en": "How many days are there in a leap year?", "es": "¿Cuántos días tiene un año bisiesto?",
     "fr": "Combien de jours compte une année bissextile ?", "de": "Wie viele Tage hat ein Schaltjahr?",
     "zh": "闰年有多少天？", "ru": "Сколько дней в високосном году?"},
    {"en": "Prove that the square root of 2 is irrational.", "es": "Demuestra que la raíz cuadrada de 2 es irracional.",
     "fr": "Démontre que la racine carrée de 2 est irrationnelle.",
     "de": "Beweise, dass die Quadratwurzel aus 2 irrational ist.", "zh": "证明2的平方根是无理数。",
     "ru": "Докажи, что квадратный корень из 2 иррационален."},
    {"en": "Write a Python function that returns the n-th Fibonacci number in O(log n) time, and explain why it "
           "is correct.",
     "es": "Escribe una función en Python que devuelva el n-ésimo número de Fibonacci en tiempo O(log n) y "
           "explica por qué es correcta.",
     "fr": "Écris une fonction Python qui renvoie le n-ième nombre de Fibonacci en temps O(log n), et explique "
           "pourquoi elle est correcte.",
     "de": "Schreibe eine Python-Funktion, die die n-te Fibonacci-Zahl in O(log n) Zeit berechnet, und erkläre, "
           "warum sie korrekt ist.",
     "zh": "写一个Python函数，在O(log n)时间内返回第n个斐波那契数，并解释为什么它是正确的。",
     "ru": "Напиши функцию на Python, которая возвращает n-е число Фибоначчи за время O(log n), и объясни, "
           "почему она верна."},
    {"en": "A train leaves at 3 pm at 80 km/h and a second one follows at 4 pm at 120 km/h on the same track. "
           "When does the second catch up? Explain step by step.",
     "es": "Un tren sale a las 15 h a 80 km/h y un segundo lo sigue a las 16 h a 120 km/h por la misma vía. "
           "¿Cuándo lo alcanza el segundo? Explícalo paso a paso.",
     "fr": "Un train part à 15 h à 80 km/h et un second le suit à 16 h à 120 km/h sur la même voie. "
           "Quand le second le rattrape-t-il ? Explique étape par étape.",
     "de": "Ein Zug fährt um 15 Uhr mit 80 km/h ab, ein zweiter folgt um 16 Uhr mit 120 km/h auf demselben Gleis. "
           "Wann holt der zweite ihn ein? Erkläre Schritt für Schritt.",
     "zh": "一列火车下午3点以80公里/小时出发，第二列火车下午4点以120公里/小时在同一轨道上跟随。"
           "第二列火车什么时候追上？请一步一步解释。",
     "ru": "Поезд отправляется в 15:00 со скоростью 80 км/ч, второй следует за ним в 16:00 со скоростью 120 км/ч "
           "по тому же пути. Когда второй догонит первый? Объясни шаг за шагом."},
    {"en": "Compare the economic policies of Keynes and Hayek and analyze their implications for inflation today.",
     "es": "Compara las políticas económicas de Keynes y Hayek y analiza sus implicaciones para la inflación actual.",
     "fr": "Compare les politiques économiques de Keynes et de Hayek et analyse leurs implications pour "
           "l'inflation actuelle.",
     "de": "Vergleiche die Wirtschaftspolitik von Keynes und Hayek und analysiere ihre Folgen für die heutige "
           "Inflation.",
     "zh": "比较凯恩斯和哈耶克的经济政策，并分析它们对当今通货膨胀的影响。",
     "ru": "Сравни экономическую политику Кейнса и Хайека и проанализируй её последствия для сегодняшней инфляции."},
)
