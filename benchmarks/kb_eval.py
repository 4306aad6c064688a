"""Knowledge-base retrieval benchmark: StackFAQ (public) and our own zh/en query sets.

    .venv/bin/python benchmarks/kb_eval.py                      # everything
    .venv/bin/python benchmarks/kb_eval.py --only stackfaq      # just the public benchmark
    .venv/bin/python benchmarks/kb_eval.py --tune               # choose RRF k/weights on DEV

StackFAQ (Karan & Šnajder 2018, /work/shared/data/stackfaq): the corpus is the 125 threads
(question + answers), the queries are the human rephrasings, a hit is the thread the
rephrasing belongs to. Published anchors: Elasticsearch MAP 0.637, best fine-tuned model
MAP 0.978. Nothing is tuned on StackFAQ: hybrid uses the fusion settings chosen on our DEV
set (`--tune`), the same as production.

Each embedder (use-multilingual, sentence-transformers:minilm) × mode (dense, lexical,
hybrid) is evaluated; the default configuration (`kb.embedder` with `kb.english_embedder`
fused in for English queries) is the row `use-multilingual+en:<model>` / hybrid
(`--no-english` leaves it out). `--tune-english` chooses `kb.english_weight` on the
validation half of StackFAQ (even threads) and our DEV set, never on a test split.
The embedder with `knowledge_base.evaluation`, exactly like `hwcrm kb evaluate`.
Output: a table, plus one JSON line per result (with machine and date) in `--output`.
Corpus vectors are cached on disk (`--cache-dir`); query latency always includes embedding
the query with the real model.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import platform
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.settings import load_settings
from knowledge_base.cache import CachingEmbedder
from knowledge_base.embedders import get_embedder
from knowledge_base.evaluation import (
    METRIC_KEYS,
    article_corpus,
    build_corpus_index,
    evaluate_index,
    evaluate_query_set,
    load_jsonl,
)
from knowledge_base.search import MODES, SearchParams
from knowledge_base.service import search_params_from

ROOT = Path(__file__).resolve().parent.parent
STACKFAQ = Path(os.environ.get("HWCRM_SHARED_DATA", ROOT.parent / "shared" / "data")) / (
    "stackfaq/stackExchange-FAQ.json"
)
EMBEDDERS = ("use-multilingual", "sentence-transformers:minilm")
DEV = ROOT / "tests/data/kb_queries_dev.jsonl"
TEST = ROOT / "tests/data/kb_queries_test.jsonl"


def stackfaq() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(corpus, queries) of StackFAQ in the `kb evaluate` format."""
    data = json.loads(STACKFAQ.read_text(encoding="utf-8"))
    corpus, queries = [], []
    for number, pair in enumerate(data["root"]["qapair"]):
        doc_id = f"thread-{number:03d}"
        answers = pair.get("answer") or []
        answers = [answers] if isinstance(answers, str) else answers
        corpus.append(
            {
                "id": doc_id,
                "title": pair["question"],
                "text": "\n\n".join(str(a) for a in answers),
                "lang": "en",
            }
        )
        rephr = pair.get("rephr") or []
        rephr = [rephr] if isinstance(rephr, str) else rephr
        for text in rephr:
            text = str(text).strip()
            if len(text) > 1:  # the data marks the original question's slot with "*"
                queries.append({"query": text, "relevant": [doc_id], "lang": "en"})
    return corpus, queries


def _row(meta: dict[str, Any], **fields: Any) -> dict[str, Any]:
    metrics = fields.pop("metrics")
    return {**meta, **fields, **{k: round(metrics[k], 4) for k in METRIC_KEYS}}


def _print_table(rows: list[dict[str, Any]]) -> None:
    header = f"{'set':<16}{'subset':<15}{'embedder':<30}{'mode':<9}{'n':>5}"
    header += "".join(f"{k:>9}" for k in ("hit@1", "hit@3", "hit@10", "mrr", "map"))
    header += f"{'p50ms':>8}{'p95ms':>8}"
    print(header)
    for r in rows:
        line = f"{r['set']:<16}{r['subset']:<15}{r['embedder']:<30}{r['mode']:<9}{r['n']:>5}"
        line += "".join(f"{r[k]:>9.3f}" for k in ("hit@1", "hit@3", "hit@10", "mrr", "map"))
        line += f"{r['latency_ms_p50']:>8.1f}{r['latency_ms_p95']:>8.1f}"
        print(line, flush=True)


def tune(cache_dir: Path) -> None:
    """Grid-search RRF k and weights on DEV (use-multilingual); prints the ranking."""
    settings = load_settings().kb
    model = get_embedder("use-multilingual")
    cached = CachingEmbedder(model, cache_dir)
    index = build_corpus_index(
        article_corpus(ROOT / settings.articles_dir),
        cached,
        chunk_size=settings.chunk_size,
        chunk_overlap=settings.chunk_overlap,
    )
    dev = load_jsonl(DEV)
    results = []
    for rrf_k, dense_w in itertools.product((5, 10, 20, 40, 60, 100), (0.5, 0.75, 1.0, 1.5, 2.0)):
        params = SearchParams(rrf_k=rrf_k, dense_weight=dense_w, lexical_weight=1.0)
        res = evaluate_query_set(index, cached, dev, mode="hybrid", params=params)
        results.append(
            (
                res["overall"].metrics["mrr"],
                res["overall"].metrics["hit@3"],
                res["cross_lingual"].metrics["mrr"],
                rrf_k,
                dense_w,
            )
        )
    cached.save()
    results.sort(reverse=True)
    print("mrr  hit@3  cross_mrr  rrf_k  dense_weight (lexical_weight = 1)")
    for mrr, hit3, cross, rrf_k, dense_w in results:
        print(f"{mrr:.4f} {hit3:.4f} {cross:.4f} {rrf_k:>4} {dense_w:>5}")


def stackfaq_split(cache_dir: Path, embedder_name: str) -> list[dict[str, Any]]:
    """Fusion weights for StackFAQ chosen on a validation half of its threads.

    Threads with an even number are the validation split, odd ones the test split; the
    corpus is always all 125 threads. The grid is searched on the validation queries only and
    the chosen setting is reported on the test queries (next to the production setting).
    """
    settings = load_settings().kb
    model = get_embedder(embedder_name)
    cached = CachingEmbedder(model, cache_dir)
    corpus, queries = stackfaq()
    index = build_corpus_index(
        corpus, cached, chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap
    )
    cached.save()
    cached.encode([q["query"] for q in queries])  # query vectors for the grid (not timed)

    def split(q: dict[str, Any]) -> str:
        return "val" if int(q["relevant"][0].split("-")[1]) % 2 == 0 else "test"

    val = [q for q in queries if split(q) == "val"]
    test = [q for q in queries if split(q) == "test"]
    grid = []
    for rrf_k, dense_w in itertools.product((5, 10, 20, 60), (0.5, 1.0, 1.5, 2.0, 3.0, 5.0)):
        params = SearchParams(rrf_k=rrf_k, dense_weight=dense_w, lexical_weight=1.0)
        res = evaluate_index(index, cached, val, mode="hybrid", params=params)
        grid.append((res.metrics["map"], rrf_k, dense_w))
    grid.sort(reverse=True)
    best_map, best_k, best_w = grid[0]
    print(f"validation: best MAP {best_map:.4f} at rrf_k={best_k} dense_weight={best_w}")
    rows = []
    chosen = SearchParams(rrf_k=best_k, dense_weight=best_w, lexical_weight=1.0)
    production = search_params_from(settings)
    for label, params in (("val-chosen", chosen), ("production", production)):
        for mode in ("hybrid", "dense", "lexical"):
            # Query vectors come from the cache here: latency is not measured in this mode.
            res = evaluate_index(index, cached, test, mode=mode, params=params)
            rows.append(
                {
                    "set": "stackfaq-test½",
                    "subset": label,
                    "embedder": embedder_name,
                    "mode": mode,
                    "n": res.n_queries,
                    "rrf_k": params.rrf_k,
                    "dense_weight": params.dense_weight,
                    **{k: round(res.metrics[k], 4) for k in METRIC_KEYS},
                }
            )
            _print_table([rows[-1]])
    return rows


def tune_english(cache_dir: Path, weights: list[float]) -> None:
    """Grid over kb.english_weight on StackFAQ's validation half (even threads) and DEV.

    Rule (chosen before looking at any test split): the largest StackFAQ-validation MAP among
    the weights whose DEV English hit@3 equals the best DEV English hit@3 of the grid.
    """
    settings = load_settings().kb
    use = CachingEmbedder(get_embedder(settings.embedder), cache_dir)
    english = CachingEmbedder(get_embedder(settings.english_embedder), cache_dir)
    corpus, queries = stackfaq()
    size = {"chunk_size": settings.chunk_size, "chunk_overlap": settings.chunk_overlap}
    sfaq = build_corpus_index(corpus, use, english_embedder=english, **size)
    ours = build_corpus_index(
        article_corpus(ROOT / settings.articles_dir), use, english_embedder=english, **size
    )
    val = [q for q in queries if int(q["relevant"][0].split("-")[1]) % 2 == 0]
    dev = load_jsonl(DEV)
    for model in (use, english):
        model.encode([q["query"] for q in val + dev])
        model.save()
    base = search_params_from(settings)
    rows = []
    for weight in weights:
        params = replace(base, english_weight=weight)
        r = evaluate_index(sfaq, use, val, params=params, english_embedder=english)
        d = evaluate_query_set(ours, use, dev, params=params, english_embedder=english)
        rows.append((weight, r.metrics["map"], d["en"].metrics["hit@3"], d["en"].metrics["mrr"]))
        print(
            f"english_weight {weight:>4}: StackFAQ-val MAP {rows[-1][1]:.4f}  DEV en hit@3 "
            f"{rows[-1][2]:.3f} MRR {rows[-1][3]:.3f}  DEV zh hit@3 {d['zh'].metrics['hit@3']:.3f}"
            f"  cross hit@3 {d['cross_lingual'].metrics['hit@3']:.3f}",
            flush=True,
        )
    best_hit = max(r[2] for r in rows)
    chosen = max((r for r in rows if r[2] == best_hit), key=lambda r: r[1])
    print(f"chosen english_weight = {chosen[0]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("stackfaq", "ours"), default=None)
    parser.add_argument("--embedders", nargs="+", default=list(EMBEDDERS))
    parser.add_argument("--modes", nargs="+", default=list(MODES))
    parser.add_argument("--output", type=Path, default=ROOT / "var/kb_eval.jsonl")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / "var/kb/embed-cache")
    parser.add_argument("--tune", action="store_true", help="grid-search fusion on DEV")
    parser.add_argument(
        "--tune-english",
        nargs="*",
        type=float,
        default=None,
        metavar="WEIGHT",
        help="choose kb.english_weight on StackFAQ-val + DEV (default grid 0 0.5 1 1.5 2 3 4 5)",
    )
    parser.add_argument(
        "--no-english", action="store_true", help="skip the default (english-fused) rows"
    )
    parser.add_argument(
        "--stackfaq-split",
        action="store_true",
        help="choose StackFAQ fusion on a validation half of its threads, report the other half",
    )
    args = parser.parse_args()
    if args.tune:
        tune(args.cache_dir)
        return
    if args.tune_english is not None:
        tune_english(args.cache_dir, args.tune_english or [0, 0.5, 1, 1.5, 2, 3, 4, 5])
        return
    if args.stackfaq_split:
        with args.output.open("a", encoding="utf-8") as fh:
            for name in args.embedders:
                for row in stackfaq_split(args.cache_dir, name):
                    fh.write(json.dumps(row) + "\n")
        return
    settings = load_settings().kb
    params = search_params_from(settings)
    meta = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()} cpus={os.cpu_count()}",
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "rrf_k": params.rrf_k,
        "dense_weight": params.dense_weight,
        "lexical_weight": params.lexical_weight,
        "english_weight": params.english_weight,
    }
    rows: list[dict[str, Any]] = []
    configs: list[tuple[str, str | None]] = [(name, None) for name in args.embedders]
    if settings.english_embedder and not args.no_english:
        # The default configuration first: multilingual + the English model for English queries.
        configs.insert(0, (settings.embedder, settings.english_embedder))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    out = args.output.open("a", encoding="utf-8")
    for name, english_name in configs:
        model = get_embedder(name)
        cached = CachingEmbedder(model, args.cache_dir)
        english = get_embedder(english_name) if english_name else None
        english_cached = CachingEmbedder(english, args.cache_dir) if english else None
        label = f"{name}+en:{english_name.split(':')[-1]}" if english_name else name
        modes = ["hybrid"] if english else args.modes
        run_params = params if english else replace(params, english_weight=0.0)
        if args.only in (None, "stackfaq"):
            corpus, queries = stackfaq()
            index = build_corpus_index(
                corpus,
                cached,
                chunk_size=settings.chunk_size,
                chunk_overlap=settings.chunk_overlap,
                english_embedder=english_cached,
            )
            cached.save()
            if english_cached is not None:
                english_cached.save()
            for mode in modes:
                res = evaluate_index(
                    index, model, queries, mode=mode, params=run_params, english_embedder=english
                )
                row = _row(
                    meta,
                    set="stackfaq",
                    subset="all",
                    embedder=label,
                    mode=mode,
                    n=res.n_queries,
                    metrics=res.metrics,
                )
                rows.append(row)
                out.write(json.dumps(row) + "\n")
                _print_table([row])
        if args.only in (None, "ours"):
            index = build_corpus_index(
                article_corpus(ROOT / settings.articles_dir),
                cached,
                chunk_size=settings.chunk_size,
                chunk_overlap=settings.chunk_overlap,
                english_embedder=english_cached,
            )
            cached.save()
            if english_cached is not None:
                english_cached.save()
            for set_name, path in (("ours-dev", DEV), ("ours-test", TEST)):
                if not path.exists():
                    print(f"({path.name} not found: skipped)")
                    continue
                queries = load_jsonl(path)
                for mode in modes:
                    results = evaluate_query_set(
                        index,
                        model,
                        queries,
                        mode=mode,
                        params=run_params,
                        english_embedder=english,
                    )
                    for subset, res in results.items():
                        row = _row(
                            meta,
                            set=set_name,
                            subset=subset,
                            embedder=label,
                            mode=mode,
                            n=res.n_queries,
                            metrics=res.metrics,
                        )
                        rows.append(row)
                        out.write(json.dumps(row) + "\n")
                        _print_table([row])
    out.close()
    print()
    _print_table(rows)


if __name__ == "__main__":
    main()
