"""Hybrid retrieval over one `KbIndex`: dense (faiss) + lexical (BM25), fused with RRF.

Both retrievers rank *chunks*; each ranking is turned into an article ranking (an article
ranks where its best chunk ranks), and the two article rankings are fused with weighted
reciprocal rank fusion: score = w_dense / (k + rank_dense) + w_lexical / (k + rank_lexical).

English queries (`query_language(query) == "en"`) get a third ranking when the index has an
English-only dense index (`kb.english_embedder`, e.g. the packaged MiniLM over the English
chunks): + w_english / (k + rank_english). The multilingual model keeps Chinese and
cross-lingual queries working; the English model is better at English paraphrases.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import numpy.typing as npt

from knowledge_base.embedders import Embedder
from knowledge_base.index import KbIndex
from knowledge_base.text import has_identifier, query_language, tokenize
from knowledge_base.vectors import Matrix, search

Mode = Literal["hybrid", "dense", "lexical"]
MODES: tuple[Mode, ...] = ("hybrid", "dense", "lexical")
SNIPPET_CHARS = 320


@dataclass(frozen=True)
class SearchParams:
    """Fusion settings (kb.rrf_k, kb.dense_weight, kb.lexical_weight, kb.candidates)."""

    mode: Mode = "hybrid"
    rrf_k: int = 60
    dense_weight: float = 1.0
    lexical_weight: float = 1.0
    candidates: int = 100
    # Multiplies lexical_weight for queries that name an exact identifier (stop code,
    # model number): for those, the lexical match is the stronger evidence.
    identifier_weight: float = 1.0
    # Weight of the English-only dense ranking (English queries, hybrid mode, when the index
    # has one); 0 turns it off.
    english_weight: float = 1.0

    def max_score(self, english: bool) -> float:
        """The best possible fused score (rank 1 everywhere) of a query."""
        best = (self.dense_weight + self.lexical_weight) / (self.rrf_k + 1)
        return best + (self.english_weight / (self.rrf_k + 1) if english else 0.0)


@dataclass
class SearchHit:
    """One article in a result list, with the chunk that matched best."""

    article_id: str
    title: str
    url: str | None
    language: str
    categories: list[str]
    score: float
    chunk_id: int
    heading: str
    passage: str
    dense_score: float | None = None
    lexical_score: float | None = None
    dense_rank: int | None = None
    lexical_rank: int | None = None
    english_score: float | None = None
    english_rank: int | None = None
    extra: dict[str, float] = field(default_factory=dict)
    """`rrf_max`: the best fused score this query could reach (with or without English)."""

    @property
    def snippet(self) -> str:
        """The matching passage shortened for display, with its section heading."""
        return snippet(f"{self.heading}: {self.passage}" if self.heading else self.passage)


@dataclass
class _Ranked:
    """An article ranking from one retriever: article index → (rank, best row, score)."""

    rank: dict[int, int] = field(default_factory=dict)
    best_row: dict[int, int] = field(default_factory=dict)
    score: dict[int, float] = field(default_factory=dict)
    chunk_rank: dict[int, int] = field(default_factory=dict)


def _aggregate(index: KbIndex, rows: Sequence[int], scores: Sequence[float]) -> _Ranked:
    ranked = _Ranked()
    for position, (row, score) in enumerate(zip(rows, scores, strict=True), start=1):
        ranked.chunk_rank[row] = position
        article = int(index.chunk_article[row])
        if article not in ranked.rank:
            ranked.rank[article] = len(ranked.rank) + 1
            ranked.best_row[article] = row
            ranked.score[article] = float(score)
    return ranked


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """The chunk text shortened for display (whole words, with an ellipsis)."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    return text[: cut if cut > limit * 0.6 else limit].rstrip(" ,.;:，。") + "…"


def dense_candidates(
    index: KbIndex,
    query_vectors: Matrix,
    n: int,
    chunk_mask: npt.NDArray[np.bool_] | None,
) -> list[tuple[list[int], list[float]]]:
    """Top-n chunk rows and cosines per query (restricted to `chunk_mask`)."""
    allowed = None if chunk_mask is None else index.chunk_ids[chunk_mask]
    if allowed is not None and len(allowed) == 0:
        return [([], []) for _ in range(len(query_vectors))]
    scores, ids = search(index.faiss_index, query_vectors, n, allowed)
    out = []
    for qscores, qids in zip(scores, ids, strict=True):
        rows = [index.row_of[int(i)] for i in qids if i >= 0]
        out.append((rows, [float(s) for s, i in zip(qscores, qids, strict=True) if i >= 0]))
    return out


def lexical_candidates(
    index: KbIndex, query: str, n: int, chunk_mask: npt.NDArray[np.bool_] | None
) -> tuple[list[int], list[float]]:
    """Top-n chunk rows and BM25 scores for one query (only chunks with a positive score)."""
    if index.bm25 is None:
        return [], []
    tokens = [t for t in tokenize(query) if t in index.bm25.vocab_dict]
    if not tokens:
        return [], []
    scores = np.asarray(index.bm25.get_scores(tokens), dtype=np.float32)
    if chunk_mask is not None:
        scores = np.where(chunk_mask, scores, 0.0)
    positive = int((scores > 0).sum())
    n = min(n, positive)
    if n <= 0:
        return [], []
    top = np.argpartition(-scores, n - 1)[:n] if n < len(scores) else np.arange(len(scores))
    top = top[np.argsort(-scores[top], kind="stable")]
    return [int(r) for r in top], [float(scores[r]) for r in top]


EnglishVectors = Sequence[npt.NDArray[np.float32] | None]


def english_query_vectors(embedder: Embedder | None, queries: Sequence[str]) -> EnglishVectors:
    """English-model vectors of the English queries (None for the others, or no embedder)."""
    if embedder is None:
        return [None] * len(queries)
    english = [i for i, q in enumerate(queries) if query_language(q) == "en"]
    out: list[npt.NDArray[np.float32] | None] = [None] * len(queries)
    if english:
        vectors = embedder.encode([queries[i] for i in english])
        for row, i in enumerate(english):
            out[i] = vectors[row]
    return out


def english_candidates(
    index: KbIndex,
    vector: npt.NDArray[np.float32],
    n: int,
    chunk_mask: npt.NDArray[np.bool_] | None,
) -> tuple[list[int], list[float]]:
    """Top-n chunk rows and cosines of one query in the English-only dense index."""
    english = index.english
    if english is None or len(english.chunk_ids) == 0:
        return [], []
    allowed = None
    if chunk_mask is not None:
        allowed = english.chunk_ids[chunk_mask[index.english_rows]]
        if len(allowed) == 0:
            return [], []
    scores, ids = search(english.faiss_index, vector.reshape(1, -1), n, allowed)
    rows = [index.row_of[int(i)] for i in ids[0] if i >= 0]
    return rows, [float(s) for s, i in zip(scores[0], ids[0], strict=True) if i >= 0]


def search_index(
    index: KbIndex,
    queries: Sequence[str],
    query_vectors: Matrix | None,
    *,
    k: int = 5,
    lang: str | None = None,
    category: str | None = None,
    params: SearchParams | None = None,
    english_vectors: EnglishVectors | None = None,
) -> list[list[SearchHit]]:
    """Ranked article hits per query. `query_vectors` is needed unless mode is lexical.

    `english_vectors` (see :func:`english_query_vectors`): the English model's vectors of
    the English queries; used in hybrid mode when the index has an English dense index.
    """
    params = params or SearchParams()
    if not index.chunks:
        return [[] for _ in queries]
    article_mask = index.article_mask(lang, category)
    chunk_mask: npt.NDArray[np.bool_] | None = article_mask[index.chunk_article]
    assert chunk_mask is not None
    if bool(chunk_mask.all()):
        chunk_mask = None
    n_candidates = min(max(params.candidates, k), len(index.chunks))
    use_dense = params.mode in ("hybrid", "dense")
    use_lexical = params.mode in ("hybrid", "lexical")
    dense_lists: list[tuple[list[int], list[float]]] = [([], []) for _ in queries]
    if use_dense:
        if query_vectors is None:
            raise ValueError("dense search needs query vectors")
        dense_lists = dense_candidates(index, query_vectors, n_candidates, chunk_mask)
    results = []
    for qi, query in enumerate(queries):
        dense = _aggregate(index, *dense_lists[qi]) if use_dense else _Ranked()
        lexical = (
            _aggregate(index, *lexical_candidates(index, query, n_candidates, chunk_mask))
            if use_lexical
            else _Ranked()
        )
        english = _Ranked()
        vector = english_vectors[qi] if english_vectors is not None else None
        use_english = (
            params.mode == "hybrid"
            and params.english_weight > 0
            and vector is not None
            and index.english is not None
        )
        if use_english:
            assert vector is not None
            english = _aggregate(
                index, *english_candidates(index, vector, n_candidates, chunk_mask)
            )
        query_params = params
        if params.identifier_weight != 1.0 and use_dense and use_lexical and has_identifier(query):
            query_params = replace(
                params, lexical_weight=params.lexical_weight * params.identifier_weight
            )
        results.append(
            _fuse(index, dense, lexical, query_params, k, english, use_english=use_english)
        )
    return results


def _fuse(
    index: KbIndex,
    dense: _Ranked,
    lexical: _Ranked,
    params: SearchParams,
    k: int,
    english: _Ranked | None = None,
    *,
    use_english: bool = False,
) -> list[SearchHit]:
    rk = params.rrf_k
    english = english or _Ranked()
    scored: list[tuple[float, float, int]] = []
    for article in set(dense.rank) | set(lexical.rank) | set(english.rank):
        if params.mode == "dense":
            score = dense.score[article]
        elif params.mode == "lexical":
            score = lexical.score[article]
        else:
            score = 0.0
            if article in dense.rank:
                score += params.dense_weight / (rk + dense.rank[article])
            if article in lexical.rank:
                score += params.lexical_weight / (rk + lexical.rank[article])
            if article in english.rank:
                score += params.english_weight / (rk + english.rank[article])
        tie = dense.score.get(article, -1.0)
        scored.append((score, tie, article))
    scored.sort(key=lambda t: (-t[0], -t[1], t[2]))
    rrf_max = params.max_score(use_english)
    hits = []
    for score, _tie, article in scored[:k]:
        row = _best_row(index, article, dense, lexical, params, english)
        chunk = index.chunks[row]
        meta = index.article_list[article]
        hits.append(
            SearchHit(
                article_id=meta.article_id,
                title=meta.title,
                url=meta.url,
                language=meta.language,
                categories=list(meta.categories),
                score=float(score),
                chunk_id=chunk.chunk_id,
                heading=chunk.heading,
                passage=chunk.text,
                dense_score=dense.score.get(article),
                lexical_score=lexical.score.get(article),
                dense_rank=dense.rank.get(article),
                lexical_rank=lexical.rank.get(article),
                english_score=english.score.get(article),
                english_rank=english.rank.get(article),
                extra={"rrf_max": rrf_max},
            )
        )
    return hits


def _best_row(
    index: KbIndex,
    article: int,
    dense: _Ranked,
    lexical: _Ranked,
    params: SearchParams,
    english: _Ranked | None = None,
) -> int:
    """The article's chunk with the best chunk-level fused score."""
    english = english or _Ranked()
    rankings = [
        (r, w)
        for r, w in (
            (dense, params.dense_weight),
            (lexical, params.lexical_weight),
            (english, params.english_weight),
        )
        if article in r.best_row
    ]
    if len(rankings) == 1:
        return rankings[0][0].best_row[article]
    candidates = {r.best_row[article] for r, _ in rankings}
    rk = params.rrf_k

    def fused(row: int) -> float:
        return sum(w / (rk + r.chunk_rank[row]) for r, w in rankings if row in r.chunk_rank)

    return max(sorted(candidates), key=fused)
