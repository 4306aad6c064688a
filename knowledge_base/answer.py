"""Calibrated answer confidence: is the top article really about the customer's question?

The probability comes from a logistic regression over a few retrieval features, fitted on
the DEV query set (`tests/data/kb_queries_dev.jsonl`) plus a small list of off-topic
questions (`knowledge_base/calibration_offtopic.jsonl`), per embedder. The fitted
parameters live in `knowledge_base/calibration.json`; refit them with
`hwcrm kb calibrate` (or `python -m knowledge_base.calibrate`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from knowledge_base.index import KbIndex
from knowledge_base.search import SearchHit, SearchParams
from knowledge_base.vectors import Matrix

FEATURES = (
    "dense_top",  # cosine of the query with the top article's best chunk
    "dense_margin",  # ... minus the best cosine of an article of another topic
    "rrf_top",  # fused score of the top article, relative to the best possible
    "lexical_top",  # log(1 + BM25) of the top article
    "dense_agrees",  # 1 when dense retrieval alone ranks the top article first
    "lexical_agrees",  # 1 when lexical retrieval alone ranks the top article first
)
DEFAULT_CALIBRATION_FILE = Path(__file__).resolve().parent / "calibration.json"


@dataclass
class Answer:
    """What the bot says: the article's solution with its source, or that it has no
    confident answer.

    `passage`/`heading` are the chunk that matched (it ranked the article; it is not what
    the customer needs to read). `solution_markdown` is what to show: the article's solution
    sections (front matter `solution:`, see knowledge_base/README.md) as Markdown, each under
    its "## heading"; `solution_headings` names them. Empty only for articles without a
    `solution:` field (e.g. ingested from HTML/PDF); callers then fall back to the passage.
    """

    passage: str | None
    article_id: str | None
    title: str | None
    url: str | None
    language: str | None
    confidence: float
    confident: bool
    heading: str = ""
    hits: list[SearchHit] = field(default_factory=list)
    solution_markdown: str = ""
    solution_headings: list[str] = field(default_factory=list)

    @property
    def display_markdown(self) -> str:
        """What the customer reads: the solution, else the matched passage."""
        return self.solution_markdown or self.passage or ""


@dataclass(frozen=True)
class Calibration:
    """Logistic-regression parameters for one embedder."""

    coef: tuple[float, ...]
    intercept: float
    features: tuple[str, ...] = FEATURES
    info: dict[str, Any] = field(default_factory=dict)

    def probability(self, x: np.ndarray) -> float:
        z = float(np.dot(np.asarray(self.coef), x)) + self.intercept
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


# Used when calibration.json has no entry for the configured embedder: a conservative
# guess from the dense cosine alone (refit with `hwcrm kb calibrate` for real numbers).
UNCALIBRATED = Calibration(
    coef=(12.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    intercept=-7.2,
    info={"note": "uncalibrated fallback: sigmoid(12 * (dense_top - 0.6))"},
)


def load_calibration(path: Path, embedder: str) -> Calibration:
    """The calibration of `embedder` from `path`, or the uncalibrated fallback."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return UNCALIBRATED
    entry = data.get(embedder)
    if not entry:
        return UNCALIBRATED
    if tuple(entry["features"]) != FEATURES:
        raise ValueError(f"{path}: calibration for {embedder} uses other features; refit it")
    info = {k: v for k, v in entry.items() if k not in ("coef", "intercept", "features")}
    return Calibration(
        coef=tuple(float(c) for c in entry["coef"]),
        intercept=float(entry["intercept"]),
        info=info,
    )


def save_calibration(path: Path, embedder: str, calibration: Calibration) -> None:
    """Write (or replace) the entry of `embedder` in the calibration file."""
    path = Path(path)
    data: dict[str, Any] = {}
    if path.exists():
        data = json.loads(path.read_text(encoding="utf-8"))
    data[embedder] = {
        "features": list(calibration.features),
        "coef": [round(c, 6) for c in calibration.coef],
        "intercept": round(calibration.intercept, 6),
        **calibration.info,
    }
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def article_cosines(index: KbIndex, query_vector: Matrix, article_id: str) -> np.ndarray:
    """Cosine of the query with every chunk of one article (rows of `index.vectors`)."""
    rows = index.rows_of_article(article_id)
    if not rows or index.vectors.size == 0:
        return np.zeros(0, dtype=np.float32)
    return np.asarray(index.vectors[rows] @ np.asarray(query_vector).reshape(-1))


def features(
    index: KbIndex, query_vector: Matrix | None, hits: list[SearchHit], params: SearchParams
) -> np.ndarray:
    """The feature vector (see FEATURES) of a ranked hit list."""
    if not hits:
        return np.zeros(len(FEATURES))
    top = hits[0]
    dense_top = 0.0
    margin = 0.0
    if query_vector is not None:
        top_topic = index.articles[top.article_id].topic
        dense_top = float(article_cosines(index, query_vector, top.article_id).max(initial=0.0))
        others = [
            float(article_cosines(index, query_vector, h.article_id).max(initial=0.0))
            for h in hits[1:]
            if index.articles[h.article_id].topic != top_topic
        ]
        margin = dense_top - (max(others) if others else 0.0)
    # The best score this query could reach (search sets it: English queries have a third
    # ranking to fuse, see knowledge_base.search).
    best = top.extra.get("rrf_max") or params.max_score(english=False)
    rrf = top.score / best if params.mode == "hybrid" and best > 0 else 0.0
    return np.array(
        [
            dense_top,
            margin,
            rrf,
            math.log1p(max(0.0, top.lexical_score or 0.0)),
            1.0 if top.dense_rank == 1 else 0.0,
            1.0 if top.lexical_rank == 1 else 0.0,
        ]
    )
