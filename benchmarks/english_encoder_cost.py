"""CPU cost per English query of the second (English-only) encoder, `kb.english_embedder`.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/english_encoder_cost.py [--threads 1 2]

Encodes StackFAQ's English rephrasings one at a time (as the bot does: one message, one
query) with the English model and, for reference, the multilingual USE the bot uses anyway.
Reports process CPU ms per query (all threads: torch's intra-op pool included) and wall ms,
median and p95, per torch thread count. Nothing is cached; the model is loaded once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.settings import load_settings
from benchmarks.kb_eval import stackfaq
from knowledge_base.embedders import UseMultilingualEmbedder, build_embedder


def measure(encode: object, texts: list[str]) -> dict[str, float]:
    """Median / p95 of process CPU ms and wall ms per single-text encode."""
    cpu, wall = [], []
    for text in texts:
        c0, t0 = time.process_time(), time.perf_counter()
        encode([text])  # type: ignore[operator]
        cpu.append((time.process_time() - c0) * 1000)
        wall.append((time.perf_counter() - t0) * 1000)
    return {
        "cpu_ms_p50": round(float(np.percentile(cpu, 50)), 2),
        "cpu_ms_p95": round(float(np.percentile(cpu, 95)), 2),
        "wall_ms_p50": round(float(np.percentile(wall, 50)), 2),
        "wall_ms_p95": round(float(np.percentile(wall, 95)), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("-n", type=int, default=300, help="queries per measurement")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    settings = load_settings().kb
    texts = [q["query"] for q in stackfaq()[1]][: args.n]
    english = build_embedder(settings.english_embedder)
    use = UseMultilingualEmbedder(threads=1)  # what the bot serves with
    english.encode(texts[:5])
    use.encode(texts[:5])
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        row = {"model": english.name, "torch_threads": threads, **measure(english.encode, texts)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    row = {"model": use.name, "threads": 1, **measure(use.encode, texts)}
    rows.append(row)
    print(json.dumps(row), flush=True)
    print(json.dumps({"load_avg_1m": round(os.getloadavg()[0], 2), "n": len(texts)}))


if __name__ == "__main__":
    main()
