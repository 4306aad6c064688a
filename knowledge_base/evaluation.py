"""Retrieval evaluation on any corpus: hit@k, MRR, MAP and end-to-end query latency.

Corpus lines: `{"id", "title", "text", "lang"?}`; query lines: `{"query", "relevant": [ids]}`
(plus `lang` and `tags` in our own sets). The corpus is chunked and indexed in memory
(nothing touches the database or `kb.index_dir`); chunk hits are aggregated to documents
(best chunk per document). Latency is measured per query, one at a time, including the
query embedding — what a customer waits for.

Metric definitions (per query, then averaged over queries):
- hit@k: 1 if any relevant document is in the top k;
- MRR: 1 / rank of the first relevant document (0 if none is retrieved);
- MAP: average precision = mean over the relevant documents of precision at their rank
  (a relevant document that is not retrieved contributes 0). Relevant ids that are not in
  the corpus are ignored; a query with no relevant document in the corpus is not scored.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from knowledge_base.chunking import chunk_article, embedding_text
from knowledge_base.embedders import Embedder
from knowledge_base.index import ArticleMeta, ChunkMeta, KbIndex
from knowledge_base.search import Mode, SearchParams, english_query_vectors, search_index
from knowledge_base.sources import SourceError, is_candidate, read_source
from knowledge_base.text import detect_language
from knowledge_base.vectors import IndexParams

METRIC_KEYS = ("hit@1", "hit@3", "hit@10", "mrr", "map", "latency_ms_p50", "latency_ms_p95")
CROSS_LINGUAL_TAG = "cross_lingual_target"
ProgressCallback = Callable[[str, int, int], None]


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSON-lines file (blank lines ignored); errors name the line."""
    rows = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: invalid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{number}: expected a JSON object")
        rows.append(row)
    return rows


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    count = 0
    with Path(path).open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


# -- metrics ------------------------------------------------------------------------------


def average_precision(ranked: Sequence[str], relevant: set[str]) -> float:
    """AP of one ranking against a set of relevant ids."""
    if not relevant:
        return 0.0
    found = 0
    total = 0.0
    for rank, doc in enumerate(ranked, start=1):
        if doc in relevant:
            found += 1
            total += found / rank
    return total / len(relevant)


def reciprocal_rank(ranked: Sequence[str], relevant: set[str]) -> float:
    for rank, doc in enumerate(ranked, start=1):
        if doc in relevant:
            return 1.0 / rank
    return 0.0


def hit_at(ranked: Sequence[str], relevant: set[str], k: int) -> float:
    return 1.0 if any(doc in relevant for doc in ranked[:k]) else 0.0


@dataclass
class EvalResult:
    """Averaged metrics over a query set (fractions 0–1, latency in ms)."""

    metrics: dict[str, float]
    n_queries: int
    skipped_queries: int = 0
    per_query: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def as_json(self) -> dict[str, float]:
        """Exactly the documented keys."""
        return {key: self.metrics[key] for key in METRIC_KEYS}


def summarise(
    rankings: list[list[str]], relevants: list[set[str]], latencies: list[float]
) -> dict[str, float]:
    n = max(1, len(rankings))
    pairs = list(zip(rankings, relevants, strict=True))
    return {
        "hit@1": sum(hit_at(r, rel, 1) for r, rel in pairs) / n,
        "hit@3": sum(hit_at(r, rel, 3) for r, rel in pairs) / n,
        "hit@10": sum(hit_at(r, rel, 10) for r, rel in pairs) / n,
        "mrr": sum(reciprocal_rank(r, rel) for r, rel in pairs) / n,
        "map": sum(average_precision(r, rel) for r, rel in pairs) / n,
        "latency_ms_p50": float(np.percentile(latencies, 50)) if latencies else 0.0,
        "latency_ms_p95": float(np.percentile(latencies, 95)) if latencies else 0.0,
    }


# -- corpora ------------------------------------------------------------------------------


def build_corpus_index(
    corpus: Sequence[dict[str, Any]],
    embedder: Embedder,
    *,
    chunk_size: int = 700,
    chunk_overlap: int = 100,
    index_params: IndexParams | None = None,
    progress: ProgressCallback | None = None,
    batch_size: int = 32,
    english_embedder: Embedder | None = None,
) -> KbIndex:
    """A temporary in-memory index over corpus rows (long texts are chunked).

    `english_embedder`: also build the English-only dense index over the English documents'
    chunks (as ingestion does with `kb.english_embedder`).
    """
    articles: list[ArticleMeta] = []
    chunks: list[ChunkMeta] = []
    texts: list[str] = []
    seen: set[str] = set()
    for number, row in enumerate(corpus, start=1):
        doc_id = str(row.get("id", "")).strip()
        if not doc_id:
            raise ValueError(f"corpus row {number}: missing 'id'")
        if doc_id in seen:
            raise ValueError(f"corpus row {number}: duplicate id {doc_id!r}")
        seen.add(doc_id)
        title = str(row.get("title") or "")
        text = str(row.get("text") or "")
        lang = str(row.get("lang") or detect_language(f"{title}\n{text}") or "")
        articles.append(
            ArticleMeta(
                article_id=doc_id,
                title=title,
                language=lang,
                categories=list(row.get("categories") or []),
                url=row.get("url"),
                translation_of=row.get("translation_of"),
                solution=list(row.get("solution") or []),
            )
        )
        pieces = chunk_article(text, chunk_size=chunk_size, chunk_overlap=chunk_overlap)
        if not pieces:
            pieces = [chunk_article(title or doc_id, chunk_size=chunk_size, chunk_overlap=0)[0]]
        for piece in pieces:
            chunks.append(ChunkMeta(len(chunks), doc_id, piece.position, piece.heading, piece.text))
            texts.append(embedding_text(title, piece.heading, piece.text))
    parts = []
    for start in range(0, len(texts), batch_size):
        parts.append(embedder.encode(texts[start : start + batch_size], batch_size))
        if progress:
            progress("embed", min(start + batch_size, len(texts)), len(texts))
    vectors = (
        np.vstack(parts).astype(np.float32)
        if parts
        else np.zeros((0, embedder.dim), dtype=np.float32)
    )
    english = None
    if english_embedder is not None:
        language_of = {a.article_id: a.language for a in articles}
        rows = [i for i, c in enumerate(chunks) if language_of[c.article_id] == "en"]
        en_parts = [
            english_embedder.encode([texts[i] for i in rows[start : start + batch_size]])
            for start in range(0, len(rows), batch_size)
        ]
        en_vectors = (
            np.vstack(en_parts).astype(np.float32)
            if en_parts
            else np.zeros((0, english_embedder.dim), dtype=np.float32)
        )
        english = (english_embedder.name, en_vectors, np.array(rows, dtype=np.int64))
    return KbIndex.build(
        articles=articles,
        chunks=chunks,
        chunk_texts=texts,
        vectors=vectors,
        params=index_params or IndexParams(index_type="flat"),
        manifest={"version": "eval", "embedder": embedder.name, "dim": int(vectors.shape[1])},
        english=english,
    )


@dataclass
class QueryOutcome:
    """One evaluated query: its row, the ranked document ids, relevant ids, latency."""

    row: dict[str, Any]
    ranked: list[str]
    relevant: set[str]
    latency_ms: float


def run_queries(
    index: KbIndex,
    embedder: Embedder,
    queries: Sequence[dict[str, Any]],
    *,
    mode: Mode = "hybrid",
    params: SearchParams | None = None,
    lang: str | None = None,
    depth: int = 100,
    progress: ProgressCallback | None = None,
    english_embedder: Embedder | None = None,
) -> tuple[list[QueryOutcome], int]:
    """Run every query one at a time, timed end to end; returns (outcomes, skipped).

    `english_embedder`: English queries are also embedded with it (timed) and its ranking
    fused in, when the index has an English dense index (hybrid mode only).
    """
    base = params or SearchParams()
    params = replace(base, mode=mode, candidates=max(base.candidates, min(len(index.chunks), 2000)))
    in_corpus = {a.article_id for a in index.article_list if lang is None or a.language == lang}
    outcomes: list[QueryOutcome] = []
    skipped = 0
    for i, row in enumerate(queries, start=1):
        relevant = {str(r) for r in row.get("relevant", [])} & in_corpus
        if not relevant:
            skipped += 1
            continue
        query = str(row["query"])
        start = time.perf_counter()
        vectors = None if mode == "lexical" else embedder.encode([query])
        english = None
        if english_embedder is not None and index.english is not None and mode == "hybrid":
            english = english_query_vectors(english_embedder, [query])
        hits = search_index(
            index, [query], vectors, k=depth, lang=lang, params=params, english_vectors=english
        )[0]
        latency = (time.perf_counter() - start) * 1000
        outcomes.append(QueryOutcome(row, [h.article_id for h in hits], relevant, latency))
        if progress:
            progress("query", i, len(queries))
    return outcomes, skipped


def result_of(outcomes: Sequence[QueryOutcome], skipped: int = 0) -> EvalResult:
    """Average the metrics of some evaluated queries."""
    return EvalResult(
        metrics=summarise(
            [o.ranked for o in outcomes],
            [o.relevant for o in outcomes],
            [o.latency_ms for o in outcomes],
        ),
        n_queries=len(outcomes),
        skipped_queries=skipped,
        per_query=[{**o.row, "ranked": o.ranked[:10]} for o in outcomes],
    )


def evaluate_index(
    index: KbIndex,
    embedder: Embedder,
    queries: Sequence[dict[str, Any]],
    *,
    mode: Mode = "hybrid",
    params: SearchParams | None = None,
    lang: str | None = None,
    depth: int = 100,
    progress: ProgressCallback | None = None,
    english_embedder: Embedder | None = None,
) -> EvalResult:
    """Run every query (one at a time, timed end to end) and average the metrics.

    `lang` restricts the corpus to documents in that language (cross-lingual evaluation).
    """
    outcomes, skipped = run_queries(
        index,
        embedder,
        queries,
        mode=mode,
        params=params,
        lang=lang,
        depth=depth,
        progress=progress,
        english_embedder=english_embedder,
    )
    return result_of(outcomes, skipped)


def article_corpus(articles_dir: Path, lang: str | None = None) -> list[dict[str, Any]]:
    """Our articles in the evaluation corpus format (unreadable files are left out)."""
    rows = []
    root = Path(articles_dir)
    for path in sorted(root.rglob("*")):
        if not path.is_file() or not is_candidate(path):
            continue
        try:
            article = read_source(path, root, max_bytes=0)
        except SourceError:
            continue
        if lang and article.language != lang:
            continue
        rows.append(
            {
                "id": article.article_id,
                "title": article.title,
                "text": article.body.strip(),
                "lang": article.language,
                "categories": article.categories,
                "translation_of": article.translation_of,
                "url": article.source_url,
                "solution": article.solution,
            }
        )
    return rows


def evaluate_query_set(
    index: KbIndex,
    embedder: Embedder,
    queries: Sequence[dict[str, Any]],
    *,
    mode: Mode = "hybrid",
    params: SearchParams | None = None,
    english_embedder: Embedder | None = None,
) -> dict[str, EvalResult]:
    """Our labelled sets: overall, per query language, and cross-lingual.

    Cross-lingual: queries tagged `cross_lingual_target`, searched in the *other*
    language's articles only (zh query → en articles and en → zh).
    """
    outcomes, skipped = run_queries(
        index, embedder, queries, mode=mode, params=params, english_embedder=english_embedder
    )
    out: dict[str, EvalResult] = {"overall": result_of(outcomes, skipped)}
    for language in ("zh", "en"):
        subset = [o for o in outcomes if o.row.get("lang") == language]
        if subset:
            out[language] = result_of(subset)
    cross_outcomes: list[QueryOutcome] = []
    for source, target in (("zh", "en"), ("en", "zh")):
        cross_queries = [
            q
            for q in queries
            if q.get("lang") == source and CROSS_LINGUAL_TAG in (q.get("tags") or [])
        ]
        if cross_queries:
            found, _ = run_queries(
                index,
                embedder,
                cross_queries,
                mode=mode,
                params=params,
                lang=target,
                english_embedder=english_embedder,
            )
            out[f"cross_{source}_to_{target}"] = result_of(found)
            cross_outcomes.extend(found)
    if cross_outcomes:
        out["cross_lingual"] = result_of(cross_outcomes)
    return out
