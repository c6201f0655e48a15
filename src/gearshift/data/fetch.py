"""Download the recorded-outcome files from their source repositories at pinned commits.

Files are fetched from `<base_url>/<repo>/<commit>/<path>` (GitHub raw by default), each written to a
temp file and renamed into place only when complete and non-empty, so an interrupted run leaves no
partial file and a re-run skips what is already there.

AlpacaEval's preference CSV and instruction list are *derived* upstream data: they are rebuilt here from
the per-model `results/<model>/weighted_alpaca_eval_gpt4_turbo/annotations.json` files (~4 MB each,
~240 MB for all 58 models). `ae1_gpt4judge_vs_text_davinci_003.csv` is not rebuilt: no loader uses it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TransferSpeedColumn

from gearshift.data.alpaca_eval import COLUMNS, PREFERENCES_FILE, REFERENCE
from gearshift.data.parsing import load_json
from gearshift.data.records import atomic_write_text
from gearshift.errors import DataError

DEFAULT_BASE_URL = "https://raw.githubusercontent.com"
ROUTELLM = ("lm-sys/RouteLLM", "0b64fdafe049e596a3f5657c219329f24af24198")
LLMROUTER = ("ulab-uiuc/LLMRouter", "4e7a796942ce26e9d5f2b93191c7c2585c99c2e3")
ALPACA_EVAL = ("tatsu-lab/alpaca_eval", "cd543a149df89434d8a54582c0151c0b945c3d20")
SOURCES = {"routellm": ROUTELLM, "llmrouter": LLMROUTER, "alpaca_eval": ALPACA_EVAL}


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


MMLU_SUBJECTS = _words(
    "abstract_algebra anatomy astronomy business_ethics clinical_knowledge college_biology college_chemistry "
    "college_computer_science college_mathematics college_medicine college_physics computer_security "
    "conceptual_physics econometrics electrical_engineering elementary_mathematics formal_logic global_facts "
    "high_school_biology high_school_chemistry high_school_computer_science high_school_european_history "
    "high_school_geography high_school_government_and_politics high_school_macroeconomics "
    "high_school_mathematics high_school_microeconomics high_school_physics high_school_psychology "
    "high_school_statistics high_school_us_history high_school_world_history human_aging human_sexuality "
    "international_law jurisprudence logical_fallacies machine_learning management marketing medical_genetics "
    "miscellaneous moral_disputes moral_scenarios nutrition philosophy prehistory professional_accounting "
    "professional_law professional_medicine professional_psychology public_relations security_studies sociology "
    "us_foreign_policy virology world_religions"
)

#: The 58 models of the AlpacaEval 2 preference CSV (upstream results/ folder names).
ALPACA_MODELS = _words(
    "FuseChat-Gemma-2-9B-Instruct FuseChat-Llama-3.1-8B-Instruct FuseChat-Llama-3.2-1B-Instruct "
    "FuseChat-Llama-3.2-3B-Instruct FuseChat-Qwen-2.5-7B-Instruct Mixtral-8x7B-Instruct-v0.1_concise NullModel "
    "OpenHermes-2.5-Mistral-7B Qwen-14B-Chat alpaca-7b alpaca-7b_concise alpaca-7b_verbose alpaca-farm-ppo-human "
    "alpaca-farm-ppo-sim-gpt4-20k baize-v2-13b chatglm2-6b claude-2.1 claude-2.1_concise claude-2 "
    "claude-instant-1.2 claude falcon-40b-instruct falcon-7b-instruct gemma-2b-it gemma-7b-it gpt-3.5-turbo-0301 "
    "gpt-3.5-turbo-1106 gpt-3.5-turbo-1106_concise gpt-3.5-turbo-1106_verbose gpt35_turbo_instruct "
    "gpt4_0613_concise gpt4_1106_preview gpt4_gamed humpback-llama2-70b jina-chat minichat-3b minotaur-13b "
    "nous-hermes-13b oasst-rlhf-llama-33b oasst-sft-llama-33b oasst-sft-pythia-12b openbuddy-falcon-40b-v9 "
    "openbuddy-llama-30b-v7.1 openbuddy-llama2-13b-v11.1 openbuddy-llama2-70b-v10.1 phi-2-sft phi-2 "
    "pythia-12b-mix-sft text_davinci_001 text_davinci_003 ultralm-13b vicuna-13b-v1.5-togetherai vicuna-13b-v1.5 "
    "vicuna-13b vicuna-7b-v1.3 vicuna-7b-v1.5 vicuna-7b wizardlm-13b"
)
ANNOTATIONS_DIR = "alpaca_eval/.annotations"


@dataclass(frozen=True, slots=True)
class RemoteFile:
    """`local` (relative to the data dir) comes from `<repo>@<commit>:<path>`."""

    local: str
    repo: str
    commit: str
    path: str

    def url(self, base_url: str) -> str:
        return f"{base_url.rstrip('/')}/{self.repo}/{self.commit}/{self.path}"


@dataclass
class FetchReport:
    downloaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    rebuilt: list[str] = field(default_factory=list)


def manifest(alpaca_models: Sequence[str] = ALPACA_MODELS) -> list[RemoteFile]:
    """Every file `fetch` downloads, in order."""
    rl, lr, ae = ROUTELLM, LLMROUTER, ALPACA_EVAL
    files = [RemoteFile("routellm/LICENSE", *rl, "LICENSE")]
    files += [RemoteFile(f"routellm/mmlu/mmlu_{s}.csv", *rl, f"routellm/evals/mmlu/responses/mmlu_{s}.csv")
              for s in MMLU_SUBJECTS]
    for ds in ("mmlu", "gsm8k"):
        files.append(RemoteFile(f"routellm/{ds}/contaminated_prompts.jsonl", *rl,
                                f"routellm/evals/{ds}/contaminated_prompts.jsonl"))
    files.append(RemoteFile("routellm/gsm8k/gsm8k_responses.csv", *rl, "routellm/evals/gsm8k/gsm8k_responses.csv"))
    files.append(RemoteFile("llmrouter/LICENSE", *lr, "LICENSE"))
    for upstream in ("data/dcrouter_preprocessed/train.json", "data/dcrouter_preprocessed/test.json",
                     "data/example_data/query_data/default_query_train.jsonl",
                     "data/example_data/query_data/default_query_test.jsonl",
                     "data/example_data/llm_candidates/default_llm.json"):
        files.append(RemoteFile("llmrouter/" + upstream.replace("/", "_"), *lr, upstream))
    files.append(RemoteFile("alpaca_eval/LICENSE", *ae, "LICENSE"))
    files.append(RemoteFile("alpaca_eval/ae2_leaderboard.csv", *ae,
                            "src/alpaca_eval/leaderboards/data_AlpacaEval_2/weighted_alpaca_eval_gpt4_turbo_leaderboard.csv"))
    files += [RemoteFile(f"{ANNOTATIONS_DIR}/{m}.json", *ae,
                         f"results/{m}/weighted_alpaca_eval_gpt4_turbo/annotations.json") for m in alpaca_models]
    return files


def download(url: str, target: Path, progress: Progress | None = None, timeout_s: float = 60.0) -> int:
    """Stream `url` to `target` atomically; returns bytes written. Any failure leaves no file behind."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    task: TaskID | None = None
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout_s) as resp:
            size = int(resp.headers.get("Content-Length") or 0) or None
            if progress is not None:
                task = progress.add_task(target.name, total=size)
            written = 0
            while chunk := resp.read(1 << 16):
                out.write(chunk)
                written += len(chunk)
                if task is not None and progress is not None:
                    progress.update(task, advance=len(chunk))
        if written == 0:
            raise DataError(f"download of {url} returned an empty file", path=target)
        os.replace(tmp, target)
        return written
    except urllib.error.HTTPError as exc:
        raise DataError(f"download of {url} failed: HTTP {exc.code} {exc.reason}", path=target) from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DataError(f"download of {url} failed: {reason}", path=target) from exc
    finally:
        Path(tmp).unlink(missing_ok=True)
        if task is not None and progress is not None:
            progress.remove_task(task)


def fetch(dest: Path, base_url: str = DEFAULT_BASE_URL, files: Sequence[RemoteFile] | None = None,
          show_progress: bool = True) -> FetchReport:
    """Download missing files into `dest`, write SOURCE_COMMIT files, rebuild the AlpacaEval CSVs."""
    files = manifest() if files is None else files
    report = FetchReport()
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, disable=not show_progress, transient=True) as progress:
        overall = progress.add_task("files", total=len(files))
        for f in files:
            target = dest / f.local
            if target.is_file() and target.stat().st_size > 0:
                report.skipped.append(f.local)
            else:
                download(f.url(base_url), target, progress)
                report.downloaded.append(f.local)
            progress.update(overall, advance=1)
    for folder, (repo, commit) in SOURCES.items():
        if (dest / folder).is_dir():
            (dest / folder / "SOURCE_COMMIT").write_text(f"{commit}\n{repo}\n", encoding="utf-8")
    models = [Path(f.local).stem for f in files if f.local.startswith(ANNOTATIONS_DIR + "/")]
    if models:
        report.rebuilt += rebuild_alpaca_eval(dest / ANNOTATIONS_DIR, dest / "alpaca_eval", models)
    return report


def _annotations(path: Path) -> list[dict[str, Any]]:
    raw = load_json(path)
    if not isinstance(raw, list):
        raise DataError("expected a JSON list of annotations", path=path)
    for i, a in enumerate(raw):
        if not isinstance(a, dict) or not all(k in a for k in ("instruction", "output_1", "output_2", "preference")):
            raise DataError(f"annotation {i}: needs instruction, output_1, output_2, preference", path=path)
    return raw


def rebuild_alpaca_eval(annotations_dir: Path, out_dir: Path, models: Sequence[str]) -> list[str]:
    """Write instructions.jsonl and the ae2 preference CSV from per-model annotations (reference first)."""
    if REFERENCE not in models:
        raise DataError(f"the {REFERENCE} annotations define the instruction order; include them", path=annotations_dir)
    ref = _annotations(annotations_dir / f"{REFERENCE}.json")
    index = {a["instruction"]: i for i, a in enumerate(ref)}
    lines = [json.dumps({"idx": i, "dataset": a.get("dataset", ""), "instruction": a["instruction"]},
                        ensure_ascii=False) for i, a in enumerate(ref)]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for model in models:
        path = annotations_dir / f"{model}.json"
        for a in _annotations(path):
            pref = a["preference"]
            if a["instruction"] not in index or not isinstance(pref, int | float):
                continue  # unknown instruction or a judge failure (preference null): upstream drops these too
            writer.writerow([index[a["instruction"]], model, REFERENCE, pref,
                             len(a["output_2"] or ""), len(a["output_1"] or "")])
    atomic_write_text(out_dir / "instructions.jsonl", ["\n".join(lines) + "\n"])
    atomic_write_text(out_dir / PREFERENCES_FILE, [buf.getvalue()])
    return ["alpaca_eval/instructions.jsonl", f"alpaca_eval/{PREFERENCES_FILE}"]

