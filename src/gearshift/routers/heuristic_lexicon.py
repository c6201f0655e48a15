"""Word lists and sign tables the heuristic router reads: data, kept apart from the rules that use it.

Every entry is lower-case (the router casefolds first). Edit these to tune what counts as evidence; the
heuristic's probe tests (`gearshift probe --router heuristic`) say whether a change can be gamed.
"""

from __future__ import annotations

import re

#: Lower-case keywords per rule; a trailing "*" matches any word continuation ("deriv*"). Phrases, CJK
#: and words with punctuation ("c++") match as substrings. Each keyword counts once per prompt.
DEFAULT_KEYWORDS: dict[str, list[str]] = {
    "code": [
        "python", "javascript", "typescript", "java", "c++", "rust", "golang", "sql", "regex", "bash",
        "function", "algorithm", "compile*", "debug*", "bug", "stack trace", "exception", "api", "refactor*",
        "código", "programa", "función", "fonction", "programm*", "funktion", "代码", "函数", "程序", "код",
        "функци*", "コード",
    ],
    "math": [
        "integral", "derivative", "deriv*", "equation*", "prove", "proof", "theorem", "lemma", "probabilit*",
        "matrix", "eigen*", "polynomial", "logarithm", "calculate", "solve", "compute", "irrational",
        "ecuación", "ecuaciones", "demostr*", "demuestr*", "irracional", "équation*", "démontr*", "démonstration",
        "irrationnel*", "gleichung*", "beweis*", "irrational*", "方程", "证明", "积分", "概率", "无理数",
        "уравнени*", "докаж*", "доказ*", "иррационал*", "証明", "方程式",
    ],
    # Problem structure (conditions, hypotheticals, negations to check), not requests for "reasoning".
    "reasoning": [
        "if", "suppose", "assume", "assuming", "given", "unless", "whether", "therefore", "hence", "implies",
        "except", "only", "si", "suponga*", "supón", "suppos*", "falls", "angenommen", "если", "предположим",
        "如果", "假设",
    ],
    "constraints": [
        "at least", "at most", "exactly", "json", "table", "words", "bullet points", "no more than",
        "without using", "in the style of",
    ],
    "chitchat": [
        "hi", "hello", "hey", "thanks", "thank", "good morning", "how are you", "joke",
        "hola", "gracias", "bonjour", "merci", "hallo", "danke", "你好", "谢谢", "привет", "спасибо",
    ],
    "multi_intent": [
        "also", "additionally", "furthermore", "as well as", "and then", "then",
        "además", "aussi", "ensuite", "außerdem", "另外", "还有", "также",
    ],
}

#: Words that ask for an answer style or effort, claim difficulty, or are politeness: never evidence, never
#: length. Stems end in "*". Kept broad on purpose: a new phrasing should hit at least its key words.
STYLE_WORDS: tuple[str, ...] = (
    # effort / process / answer style
    "think*", "thought*", "step*", "careful*", "carefully", "thorough*", "detail*", "rigor*", "rigour*",
    "explain*", "explanation*", "reason", "reasons", "reasoning", "justif*", "claim*", "evaluat*",
    "implication*", "analy*", "compar*", "contrast*", "trade", "tradeoff*", "trade-off*", "offs", "pros",
    "cons", "weigh*", "consider*", "elaborat*", "comprehensive*", "exhaustive*", "meticulous*", "depth",
    "deep*", "nuance*", "precise*", "accurate*", "concise*", "verify", "double", "check*", "review*",
    "answer*", "respon*", "reply", "show", "intermediate", "walk", "through", "break", "down", "leave", "nothing",
    "out", "everything", "every", "angle*", "perspective*",
    "critical*", "critique*", "insight*", "best", "full*", "complete*", "clear*",
    "logic*", "logical*", "sure", "make", "ensure", "please", "kindly", "help*", "assist*",
    # claimed difficulty / expertise
    "hard", "difficult*", "challeng*", "tricky", "complex*", "complicated", "advanced", "expert*",
    "specialist*", "professional*", "phd", "renowned", "genius", "important*",
    "attention", "serious*", "really", "very", "extremely", "great", "question*", "problem*", "task*",
    "need*", "requir*", "ahead", "rigorous",
    # politeness
    "hope", "doing", "well", "appreciat*", "advance", "sorry", "bother*", "quick", "nice", "great",
    "good", "evening", "afternoon", "cheers", "regards", "dear", "greetings", "welcome", "much", "lot",
    "grateful", "kind", "friend*", "today", "hoy", "aujourd", "hui", "heute", "сегодня", "estás", "vas", "geht",
    "дела",
    # es / fr / de / ru effort, style and politeness words
    "piensa*", "pensar", "paso*", "detallad*", "detenid*", "cuidad*", "explica*", "razon*", "justifica*",
    "analiza*", "compara*", "por", "favor", "ayud*", "réfléchi*", "étape*", "soigneus*", "explique*",
    "justifie*", "raisonnement", "analyse*", "compare", "merci*", "beaucoup", "aide*", "plaît", "denk*",
    "schritt*", "gründlich*", "ausführlich*", "erklär*", "begründ*", "analysier*", "vergleich*", "bitte",
    "hilf*", "думай*", "подума*", "шаг*", "подробн*", "внимательн*", "объясн*", "рассужд*", "обоснуй*",
    "проанализ*", "сравн*", "пожалуйста", "помоги*", "благодар*",
)

#: CJK style phrases, removed before CJK characters are counted.
STYLE_CJK: tuple[str, ...] = (
    "一步一步", "逐步", "仔细", "详细", "思考", "解释", "说明", "推理", "过程", "分析", "比较", "请", "帮",
    "谢谢", "你好", "ステップ", "詳しく", "説明",
)


def _wordset(words: str) -> frozenset[str]:
    return frozenset(words.split())


#: Function words of en/es/fr/de/ru (and English clitics): neither evidence nor length.
STOP_WORDS: frozenset[str] = _wordset("""
a an the and or but of to in on at for with from by as is are was were be been being it its this that these
those there here i me my we our you your he she they them his her their what which who whom whose when where
how why do does did done can could would should will shall may might must have has had not no so than too
also just about into over under after before again any some all each most more other such own same s t d m
ll re ve don while up yes ok okay if then
el la los las un una unos unas y o de del en con para que es son por lo le se su sus al como más muy
le la les un une des et ou du de en dans pour que qui est sont avec par sur au aux ce cette ces il elle
der die das ein eine und oder von zu im ist sind mit für auf den dem des sich es ich du wie was
и в на с по что как это не а но к о из у за от для ли же бы то все так где когда какая какой какие
какое сколько он она они мы вы ты я его её их при до после под над через между чем который которая
""")

#: STYLE_WORDS split for lookup: whole words, and the stems of the "*" entries.
STYLE_WORD_SET: frozenset[str] = frozenset(w for w in STYLE_WORDS if not w.endswith("*"))
STYLE_STEMS: tuple[str, ...] = tuple(w[:-1] for w in STYLE_WORDS if w.endswith("*"))

#: Words a question opens with (after an optional connector); a "?" after a keyword fragment is no question.
INTERROGATIVES: frozenset[str] = _wordset("""
what which who whom whose when where why how is are was were do does did can could should would will may
qué que cuál cuáles cómo por dónde cuándo cuánto cuántos cuántas quién es son puede
quel quelle quels quelles qui comment pourquoi combien où quand est
was welche welcher welches wer wie warum wann wo wieviel wie ist sind kann
что какой какая какое какие кто как почему когда где сколько ли
""")
#: Function words that tie content together (articles, prepositions, conjunctions, pronouns, copulas); question
#: words and modals are left out: they stand alone in a pasted fragment as easily as in a sentence.
GRAMMAR: frozenset[str] = STOP_WORDS - INTERROGATIVES - _wordset("can could would should will shall may might must")

#: Code syntax as (substring, regex or None): the regex runs only where its substring occurs (one big
#: alternation scanned every prompt was the slowest part of scoring). Each sign counts once.
CODE_SIGNS: tuple[tuple[str, re.Pattern[str] | None], ...] = tuple(
    (trigger, re.compile(rx, re.MULTILINE) if rx else None) for trigger, rx in (
        ("def ", r"\bdef \w+\("), ("class ", r"\bclass \w+[:(]"), ("#include", r"#include\s*<"),
        ("import ", r"^[ \t]*(?:import [\w.]+[ \t]*$|from [\w.]+ import )"), ("return", r"\breturn\b[^.\n]*;"),
        ("{", r"\)\s*\{\s*\n"), ("=>", r"\)\s*=>"), (";", r";[ \t]*\n"), ("{", r"\{[ \t]*\n"),
        ("select", r"\bselect\b[^;\n]+\bfrom\b \w+"), ("console.log(", ""), ("print(", r"\bprint\("),
        ("fn ", r"\bfn \w+\("), ("func ", r"\bfunc \w+\("), ("var ", r"\bvar \w+ ="), ("const ", r"\bconst \w+ ="),
        ("let ", r"\blet \w+ ="), ("]", r"\]\s*=[^=]"), ("==", ""), ("!=", ""), ("+=", ""), ("-=", ""), ("&&", ""),
        ("||", ""),
    )
)
#: Every sign in CODE_SIGNS needs one of these characters.
CODE_CHARS: tuple[str, ...] = ("(", ";", "{", "=", "&", "|", "]", "<")
MATH_SIGNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (trigger, re.compile(rx)) for trigger, rx in (
        ("\\", r"\\(?:frac|sum|int|sqrt|cdot|le|ge)\b"), ("$", r"\$[^$\n]+\$"), ("^", r"\w\^\d"),
        ("∫", "∫"), ("∑", "∑"), ("√", "√"), ("≤", "≤"), ("≥", "≥"), ("π", "π"),
    )
)
