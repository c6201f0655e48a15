"""`gearshift topics fit`: build the topic model behind the gateway's `topic` segment (`[segments] topics`).

The clusters must live in the serving router's embedding space, so give the router you serve
(--router-dir) or the same embedder spec it uses (--embedder). Prompts come from the train part of
the fixed 80/20 split of a dataset, or from every line of a canonical .jsonl / plain .txt file.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("topics", help="topic clusters for the gateway's topic segment",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="topics_command", metavar="ACTION", required=True)
    fit = sub.add_parser("fit", help="k-means over the router's prompt embeddings; write a topic model dir")
    fit.add_argument("--data", default="mmlu", help="dataset name, canonical .jsonl or .txt (one prompt a line)")
    fit.add_argument("--data-dir", type=Path, help="raw data directory (default: from config)")
    space = fit.add_mutually_exclusive_group(required=True)
    space.add_argument("--router-dir", type=Path, help="the saved router the gateway serves (its embedder)")
    space.add_argument("--embedder", metavar="SPEC", help="embedder spec, e.g. hashing (must match the router's)")
    fit.add_argument("--k", type=int, default=16, help="number of topics (default 16)")
    fit.add_argument("--n", type=int, default=5000, help="at most this many prompts (default 5000)")
    fit.add_argument("--seed", type=int, default=0, help="seed for sampling and k-means++ (default 0)")
    fit.add_argument("--out", type=Path, required=True, help="directory to write (topics.json + topics.npz)")
    fit.set_defaults(handler=run_fit)


def _prompts(data: str, data_dir: Path | None) -> list[str]:
    path = Path(data)
    if path.suffix == ".txt":
        from gearshift.errors import DataError

        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise DataError(f"{path}: cannot read ({exc})") from exc
        return [line.strip() for line in lines if line.strip()]
    from gearshift.data.registry import DATASETS, load_dataset
    from gearshift.evaluation.protocols import fixed_split

    ds = load_dataset(data, data_dir)
    if data not in DATASETS:
        return ds.prompts
    train = fixed_split(ds.ids).train
    return [ds.records[int(i)].prompt for i in train]


def run_fit(args: argparse.Namespace) -> int:
    import numpy as np
    from rich.console import Console

    from gearshift.cli.terminal import say
    from gearshift.errors import ConfigError, GearshiftError
    from gearshift.routers.embedding import Embedder
    from gearshift.routers.topics import TopicModel, router_embedder

    console = Console(stderr=True)
    try:
        embedder: Embedder | None
        if args.router_dir is not None:
            from gearshift.routers.registry import load_router

            router = load_router(args.router_dir)
            embedder = router_embedder(router)
            if embedder is None:
                raise ConfigError(f"{args.router_dir}: router {router.name!r} has no embedder")
        else:
            from gearshift.routers.embedders import make_embedder

            embedder = make_embedder(args.embedder)
        with console.status(f"loading {args.data}"):
            prompts = _prompts(args.data, args.data_dir)
        if len(prompts) > args.n:
            rng = np.random.default_rng(args.seed)
            prompts = [prompts[int(i)] for i in np.sort(rng.choice(len(prompts), args.n, replace=False))]
        with console.status(f"embedding {len(prompts)} prompts and clustering into {args.k} topics"):
            model = TopicModel(k=args.k, sample=max(args.n, args.k), seed=args.seed).fit_texts(prompts, embedder)
        model.save(args.out)
    except GearshiftError as exc:
        say(console, "[red]error:[/red]", str(exc))
        return 1
    sizes = np.bincount(model.assign(embedder.embed(prompts[:2000])), minlength=args.k)
    console.print(f"wrote {args.k} topics from {len(prompts)} prompts to {args.out} "
                  f"(sizes on the first {min(len(prompts), 2000)}: {sizes.tolist()})")
    return 0
