"""Refit the answer-confidence calibration (logistic regression) on the DEV query set.

    .venv/bin/python -m knowledge_base.calibrate [--queries tests/data/kb_queries_dev.jsonl]
    # or: hwcrm kb calibrate

Training data: every DEV query, labelled 1 when the top article of a hybrid search over our
articles (both languages, as the bot searches, with `kb.english_embedder` fused in for
English queries when set) is relevant, plus the off-topic questions in
`calibration_offtopic.jsonl` (always 0: the knowledge base has nothing to say about them).
The held-out test set is never used. The result is written into `kb.calibration_file`
under the embedder's name.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np

from knowledge_base.answer import FEATURES, Calibration, features, save_calibration
from knowledge_base.embedders import get_embedder
from knowledge_base.evaluation import article_corpus, build_corpus_index, load_jsonl
from knowledge_base.index import KbIndex
from knowledge_base.search import SearchParams, english_query_vectors, search_index

OFFTOPIC_FILE = Path(__file__).resolve().parent / "calibration_offtopic.jsonl"


def collect(
    index: KbIndex,
    embedder: Any,
    queries: list[dict[str, Any]],
    params: SearchParams,
    english_embedder: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Feature matrix and labels (top article relevant?) for labelled queries."""
    texts = [str(q["query"]) for q in queries]
    vectors = embedder.encode(texts)
    english = english_query_vectors(english_embedder, texts) if index.english else None
    hit_lists = search_index(index, texts, vectors, k=10, params=params, english_vectors=english)
    x = np.array([features(index, vectors[i], hits, params) for i, hits in enumerate(hit_lists)])
    y = np.array(
        [
            1 if hits and hits[0].article_id in set(q.get("relevant") or []) else 0
            for q, hits in zip(queries, hit_lists, strict=True)
        ]
    )
    return x, y


def fit(x: np.ndarray, y: np.ndarray) -> tuple[Calibration, dict[str, float]]:
    """Logistic regression (L2, C=1) and its in-sample quality numbers."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import brier_score_loss, roc_auc_score

    # Standardise so that the L2 penalty treats features of different scales alike, then
    # fold the scaling back into plain coefficients.
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std[std == 0] = 1.0
    model = LogisticRegression(C=1.0, max_iter=1000)
    model.fit((x - mean) / std, y)
    p = model.predict_proba((x - mean) / std)[:, 1]
    quality = {
        "brier": round(float(brier_score_loss(y, p)), 4),
        "auc": round(float(roc_auc_score(y, p)), 4) if 0 < y.sum() < len(y) else 1.0,
    }
    coef = model.coef_[0] / std
    intercept = float(model.intercept_[0] - np.dot(coef, mean))
    calibration = Calibration(coef=tuple(float(c) for c in coef), intercept=intercept)
    return calibration, quality


def fit_and_save(
    settings: Any,
    queries_path: Path,
    offtopic_path: Path = OFFTOPIC_FILE,
    cache_dir: Path | None = None,
) -> dict[str, Any]:
    """Fit on DEV (+ off-topic negatives) with the `kb.*` settings and write the JSON.

    `cache_dir`: reuse article vectors cached by `benchmarks/kb_eval.py` (same texts, same
    model, so the same vectors).
    """
    from knowledge_base.cache import CachingEmbedder
    from knowledge_base.service import search_params_from

    embedder = get_embedder(settings.embedder)
    english = get_embedder(settings.english_embedder) if settings.english_embedder else None
    corpus_embedder: Any = embedder
    corpus_english: Any = english
    if cache_dir is not None:
        corpus_embedder = CachingEmbedder(embedder, cache_dir)
        corpus_english = CachingEmbedder(english, cache_dir) if english else None
    corpus = article_corpus(settings.articles_dir)
    index = build_corpus_index(
        corpus,
        corpus_embedder,
        chunk_size=settings.chunk_size,
        chunk_overlap=settings.chunk_overlap,
        english_embedder=corpus_english,
    )
    if cache_dir is not None:
        corpus_embedder.save()
        if corpus_english is not None:
            corpus_english.save()
    params = search_params_from(settings)
    dev = load_jsonl(queries_path)
    offtopic = [{**row, "relevant": []} for row in load_jsonl(offtopic_path)]
    x, y = collect(index, embedder, dev + offtopic, params, english)
    calibration, quality = fit(x, y)
    probabilities = np.array([calibration.probability(row) for row in x])
    threshold = float(settings.answer_threshold)
    confident = probabilities >= threshold
    info = {
        "fitted_on": f"{Path(queries_path).as_posix()} + {offtopic_path.name}",
        "fitted_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "n": len(y),
        "positives": int(y.sum()),
        "search": {
            "rrf_k": params.rrf_k,
            "dense_weight": params.dense_weight,
            "lexical_weight": params.lexical_weight,
            "english_embedder": settings.english_embedder or None,
            "english_weight": params.english_weight,
        },
        **quality,
        f"at_threshold_{threshold}": {
            "answered": round(float(confident.mean()), 4),
            "precision_when_answered": round(float(y[confident].mean()), 4)
            if confident.any()
            else None,
            "offtopic_answered": int(confident[len(dev) :].sum()),
        },
    }
    calibration = Calibration(coef=calibration.coef, intercept=calibration.intercept, info=info)
    save_calibration(settings.calibration_file, embedder.name, calibration)
    return {"embedder": embedder.name, "features": list(FEATURES), **info}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=Path, default=Path("tests/data/kb_queries_dev.jsonl"))
    parser.add_argument("--embedder", default=None)
    parser.add_argument("--cache-dir", type=Path, default=None, help="article vector cache")
    args = parser.parse_args()
    from app.settings import load_settings

    settings = load_settings().kb
    if args.embedder:
        settings = settings.model_copy(update={"embedder": args.embedder})
    summary = fit_and_save(settings, args.queries, cache_dir=args.cache_dir)
    print(json.dumps(summary, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
