"""Knowledge-base scale benchmark: faiss flat vs HNSW vs IVF at 100k and 1M chunks.

    .venv/bin/python benchmarks/kb_scale.py --sizes 100000 1000000 --output var/kb_scale.jsonl

Vectors: 512-d like the default embedder (multilingual USE). They are *clustered* synthetic
vectors built to resemble real sentence embeddings, not uniform noise (uniform random
vectors in 512-d are nearly orthogonal, which makes approximate search look much worse — or
for graph indexes, much better — than on real data):

- a shared mean direction (real embeddings are anisotropic: the mean of USE vectors over our
  article chunks has norm ≈ 0.52);
- a power-law variance spectrum (singular values of USE chunk vectors fall to ≈ 0.36 of the
  first by component 20 and ≈ 0.09 by 200; we use variance ∝ (i+1)^-1.1);
- topic clusters (one per ~10 chunks: an article of ~5 chunks in two languages; Zipf-sized)
  around which chunks and queries scatter.

The parameters are set so that the statistics match USE on our own articles (mean pairwise
cosine 0.25 vs 0.27, nearest-neighbour cosine 0.79 vs 0.78, mean-vector norm 0.50 vs 0.52
at the same corpus size); `--calibrate`
prints both side by side. Queries are new draws from the same clusters (paraphrases of
existing content), never vectors that are in the index.

Per configuration it reports build time, resident memory growth while building, query
latency p50/p95 (one query at a time, as the bot searches) and recall@10 against exact
search. Use `--threads 2` to model the production machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from knowledge_base.vectors import IndexParams, build_index, search, set_threads

DIM = 512


def _spectrum(dim: int, alpha: float = 1.1) -> np.ndarray:
    std = (np.arange(1, dim + 1, dtype=np.float64)) ** (-alpha / 2)
    return (std / np.sqrt((std**2).sum())).astype(np.float32)


class ClusteredVectors:
    """Generator of unit vectors shaped like real sentence embeddings (see module doc)."""

    def __init__(self, n: int, dim: int = DIM, seed: int = 0, chunks_per_topic: int = 10) -> None:
        rng = np.random.default_rng(seed)
        self.dim = dim
        self.spec = _spectrum(dim)
        self.n_topics = max(1, n // chunks_per_topic)
        # The anisotropy is axis-aligned: inner products, HNSW graphs and k-means are all
        # invariant under a rotation, so rotating the data would change nothing measured.
        mean = rng.standard_normal(dim).astype(np.float32)
        self.mean = 0.7 * mean / np.linalg.norm(mean)
        centres = rng.standard_normal((self.n_topics, dim)).astype(np.float32) * self.spec
        self.centres = centres * np.float32(1.0)
        weights = 1.0 / np.arange(1, self.n_topics + 1) ** 0.6
        self.weights = weights / weights.sum()
        self.noise = np.float32(0.8)

    def draw(self, n: int, seed: int) -> np.ndarray:
        """`n` unit vectors: a topic (Zipf-weighted) plus in-topic scatter."""
        rng = np.random.default_rng(seed)
        out = np.empty((n, self.dim), dtype=np.float32)
        block = 50_000
        for start in range(0, n, block):
            m = min(block, n - start)
            topics = rng.choice(self.n_topics, size=m, p=self.weights)
            x = self.centres[topics] + self.noise * (
                rng.standard_normal((m, self.dim)).astype(np.float32) * self.spec
            )
            x += self.mean
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            out[start : start + m] = x
        return out


def _stats(v: np.ndarray) -> dict[str, float]:
    s = v @ v.T
    np.fill_diagonal(s, -1.0)
    return {
        "mean_pair_cos": float(s[s > -1].mean()),
        "nn1_cos_mean": float(s.max(1).mean()),
        "mean_vec_norm": float(np.linalg.norm(v.mean(0))),
    }


def calibrate() -> None:
    """Compare the generator with USE vectors of our article chunks at the same size."""
    gen = ClusteredVectors(900 * 20)
    synth = gen.draw(900, seed=1)
    print("synthetic (900 vectors):", json.dumps(_stats(synth)))
    try:
        from knowledge_base.embedders import get_embedder
        from knowledge_base.evaluation import article_corpus

        corpus = article_corpus(Path("knowledge_base/articles"))
        texts = [row["text"][:700] for row in corpus]
        real = get_embedder("use-multilingual").encode(texts)
        print(f"USE ({len(texts)} article texts):", json.dumps(_stats(real)))
    except Exception as exc:  # pragma: no cover - informational only
        print("USE comparison skipped:", exc)


def _rss() -> int:
    return int(psutil.Process().memory_info().rss)


def _latencies(
    index: Any, queries: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wall-clock and CPU (thread) milliseconds per query, and the ids found.

    The CPU time of the searching thread is what a query costs on an otherwise idle core;
    wall time also includes waiting for a core when other processes share the machine.
    """
    ids = np.empty((len(queries), k), dtype=np.int64)
    lat = np.empty(len(queries))
    cpu = np.empty(len(queries))
    for i in range(len(queries)):
        c0 = time.thread_time()
        t0 = time.perf_counter()
        _, found = search(index, queries[i : i + 1], k)
        lat[i] = (time.perf_counter() - t0) * 1000
        cpu[i] = (time.thread_time() - c0) * 1000
        ids[i] = found[0]
    return lat, cpu, ids


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    hits = sum(
        len(set(f[:k].tolist()) & set(t.tolist())) for f, t in zip(found, truth, strict=True)
    )
    return hits / truth.size


def run(
    size: int,
    configs: list[str],
    n_queries: int,
    k: int,
    out: Any,
    meta: dict[str, Any],
    build_threads: int,
    search_threads: int,
) -> None:
    gen = ClusteredVectors(size)
    t0 = time.perf_counter()
    data = gen.draw(size, seed=11)
    queries = gen.draw(n_queries, seed=12)
    ids = np.arange(size, dtype=np.int64)
    print(f"[{size}] generated in {time.perf_counter() - t0:.1f}s", flush=True)

    exact = build_index(data, ids, IndexParams(index_type="flat"))
    t0 = time.perf_counter()
    _, truth = search(exact, queries, k)
    print(f"[{size}] ground truth in {time.perf_counter() - t0:.1f}s", flush=True)
    del exact
    gc.collect()

    for config in configs:
        kind, _, rest = config.partition(":")
        opts = dict(kv.split("=") for kv in rest.split(",") if kv)
        sweep_key = {"hnsw": "ef_search", "ivf": "nprobe"}.get(kind)
        sweep = [int(x) for x in opts.pop(sweep_key, "").split("/") if x] if sweep_key else []
        params = IndexParams(
            index_type=kind,  # type: ignore[arg-type]
            hnsw_m=int(opts.get("m", 32)),
            hnsw_ef_construction=int(opts.get("efc", 80)),
            ivf_nlist=int(opts.get("nlist", 0)),
        )
        gc.collect()
        rss0 = _rss()
        t0 = time.perf_counter()
        index = build_index(data, ids, params)
        build_s = time.perf_counter() - t0
        mem_mb = (_rss() - rss0) / 2**20
        set_threads(search_threads)
        inner: Any = __import__("faiss").downcast_index(index.index)
        for value in sweep or [0]:
            label = config.split(":")[0]
            if kind == "hnsw":
                inner.hnsw.efSearch = value
                label = f"hnsw M={params.hnsw_m} efC={params.hnsw_ef_construction} ef={value}"
            elif kind == "ivf":
                inner.nprobe = value
                label = f"ivf nlist={inner.nlist} nprobe={value}"
            _latencies(index, queries[:50], k)  # warm-up
            lat, cpu, found = _latencies(index, queries, k)
            row = {
                **meta,
                "n": size,
                "index": label,
                "build_s": round(build_s, 1),
                "build_rss_mb": round(mem_mb),
                "p50_ms": round(float(np.percentile(lat, 50)), 3),
                "p95_ms": round(float(np.percentile(lat, 95)), 3),
                "cpu_p50_ms": round(float(np.percentile(cpu, 50)), 3),
                "cpu_p95_ms": round(float(np.percentile(cpu, 95)), 3),
                "load_avg_1m": round(os.getloadavg()[0], 2),
                "recall@10": round(_recall(found, truth), 4),
            }
            print(json.dumps(row), flush=True)
            out.write(json.dumps(row) + "\n")
            out.flush()
        del index, inner
        gc.collect()
        set_threads(build_threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument(
        "--configs",
        nargs="+",
        default=[
            "flat",
            "hnsw:m=32,efc=100,ef_search=64/128/256/384",
            "ivf:nlist=4096,nprobe=32/64/128",
        ],
        help="kind[:key=value,...]; sweeps separated by '/'",
    )
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2, help="faiss threads for building")
    parser.add_argument(
        "--search-threads",
        type=int,
        default=1,
        help="faiss threads while searching one query at a time (1 avoids OpenMP stalls)",
    )
    parser.add_argument("--output", type=Path, default=Path("var/kb_scale.jsonl"))
    parser.add_argument("--calibrate", action="store_true", help="compare with USE and exit")
    args = parser.parse_args()
    if args.calibrate:
        calibrate()
        return
    set_threads(args.threads)
    meta = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()} cpus={os.cpu_count()}",
        "threads": args.threads,
        "search_threads": args.search_threads,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with args.output.open("a", encoding="utf-8") as out:
        for size in args.sizes:
            run(size, args.configs, args.queries, 10, out, meta, args.threads, args.search_threads)


if __name__ == "__main__":
    main()
