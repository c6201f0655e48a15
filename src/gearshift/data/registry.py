"""Dataset names -> loaders. The one entry point other areas use: `load_dataset(name, data_dir)`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from gearshift.errors import DataError, did_you_mean

if TYPE_CHECKING:  # keep `gearshift --help` free of numpy/pydantic imports
    from gearshift.data.records import Dataset

#: name -> one-line description, in `gearshift data list` order.
DATASETS: dict[str, str] = {
    "mmlu": "RouteLLM MMLU, 57 subjects: gpt-4-1106-preview vs Mixtral-8x7B, 0/1 correctness (14,037 prompts)",
    "gsm8k": "RouteLLM GSM8K math word problems: gpt-4-1106-preview vs Mixtral-8x7B, 0/1 correctness (1,307)",
    "llmrouter-train": "LLMRouter dcrouter train: 9 hosted open models, 14 task families (5,608 prompts)",
    "llmrouter-test": "LLMRouter dcrouter test, minus the 119 questions also in train (381 prompts)",
    "alpaca-eval": "AlpacaEval 2 judged preferences: Mixtral-8x7B (concise) vs gpt4_1106_preview (805 prompts)",
    "pooled": "all of the above in one set, each mapped to a strong/weak tier pair by price, segment `family`",
}


def _loaders() -> dict[str, Callable[[Path], Dataset]]:
    from gearshift.data.alpaca_eval import load_alpaca_eval
    from gearshift.data.families import POOLED_SOURCES, pool
    from gearshift.data.llmrouter import load_llmrouter
    from gearshift.data.routellm import load_gsm8k, load_mmlu

    return {
        "mmlu": load_mmlu,
        "gsm8k": load_gsm8k,
        "llmrouter-train": lambda d: load_llmrouter(d, "train"),
        "llmrouter-test": lambda d: load_llmrouter(d, "test"),
        "alpaca-eval": load_alpaca_eval,
        "pooled": lambda d: pool([load_dataset(s, d) for s in POOLED_SOURCES]),
    }


def load_dataset(name: str, data_dir: Path | None = None) -> Dataset:
    """A built-in dataset by name, or a canonical `.jsonl` file by path.

    `data_dir` defaults to `gearshift.config.default_data_dir()`.
    """
    if name in DATASETS:
        if data_dir is None:
            from gearshift.config import default_data_dir

            data_dir = default_data_dir()
        try:
            return _loaders()[name](Path(data_dir))
        except DataError as exc:
            if exc.path is None or Path(exc.path).exists():
                raise
            raise DataError(f"recorded outcomes for {name!r} not found in {data_dir} (missing {exc.path}). The data "
                            "directory is $GEARSHIFT_DATA_DIR, else ../shared/data above the working directory, "
                            "else the cache: run `gearshift data fetch` to download the data there, or pass "
                            "--data-dir DIR") from exc
    path = Path(name)
    if path.suffix == ".jsonl" or path.is_file():
        if not path.is_file():
            raise DataError("no such file", path=path)
        from gearshift.data.records import read_jsonl

        return read_jsonl(path)
    raise DataError(f"unknown dataset {name!r}; {did_you_mean(name, DATASETS)}known: {', '.join(DATASETS)} "
                    "(or a path to a .jsonl file)")
