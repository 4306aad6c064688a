"""The knowledge base as the bot and the CLI use it: search and answer on the live index.

`KnowledgeBase` follows `index_dir/CURRENT`: at most once per `reload_interval_s` it stats
the pointer, and when a new version was published it loads that version completely, then
switches to it. A search that is running keeps the index object it started with, so a
re-ingest never disturbs it and never exposes a half-written index.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from knowledge_base.answer import (
    DEFAULT_CALIBRATION_FILE,
    Answer,
    Calibration,
    article_cosines,
    features,
    load_calibration,
)
from knowledge_base.embedders import Embedder, get_embedder
from knowledge_base.index import KbIndex
from knowledge_base.search import (
    EnglishVectors,
    Mode,
    SearchHit,
    SearchParams,
    english_query_vectors,
    search_index,
)
from knowledge_base.store import IndexStore
from knowledge_base.text import query_language
from knowledge_base.vectors import IndexParams

log = logging.getLogger(__name__)


class EmbedderMismatchError(RuntimeError):
    """The index was built with another embedder than the configured one."""


@dataclass
class KbStatus:
    """What `hwcrm kb status` shows."""

    index_dir: str
    version: str | None
    embedder: str | None
    configured_embedder: str
    dim: int | None
    index_type: str | None
    articles: int
    chunks: int
    created_at: str | None
    languages: dict[str, int]


def index_params_from(settings: Any) -> IndexParams:
    """IndexParams from a `KbSection` (duck-typed: knowledge_base does not import app)."""
    return IndexParams(
        index_type=settings.index_type,
        exact_index_max=settings.exact_index_max,
        hnsw_m=settings.hnsw_m,
        hnsw_ef_construction=settings.hnsw_ef_construction,
        hnsw_ef_search=settings.hnsw_ef_search,
        ivf_nlist=settings.ivf_nlist,
        ivf_nprobe=settings.ivf_nprobe,
    )


def search_params_from(settings: Any, mode: Mode = "hybrid") -> SearchParams:
    return SearchParams(
        mode=mode,
        rrf_k=settings.rrf_k,
        dense_weight=settings.dense_weight,
        lexical_weight=settings.lexical_weight,
        candidates=settings.candidates,
        english_weight=settings.english_weight if settings.english_embedder else 0.0,
    )


class KnowledgeBase:
    """Search and answer over the live index in `index_dir` (thread-safe, hot-reloading)."""

    def __init__(
        self,
        index_dir: Path,
        embedder: Embedder,
        *,
        search_params: SearchParams | None = None,
        index_params: IndexParams | None = None,
        calibration: Calibration | None = None,
        answer_threshold: float = 0.5,
        reload_interval_s: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
        english_embedder: Embedder | None = None,
    ) -> None:
        self.store = IndexStore(index_dir)
        self.embedder = embedder
        self.english_embedder = english_embedder
        """Second dense retriever for English queries (kb.english_embedder); None = off."""
        self._english_warned: str | None = None
        self.search_params = search_params or SearchParams()
        self.index_params = index_params or IndexParams()
        self.calibration = calibration or load_calibration(DEFAULT_CALIBRATION_FILE, embedder.name)
        self.answer_threshold = answer_threshold
        self.reload_interval_s = reload_interval_s
        self._monotonic = monotonic
        self._index: KbIndex | None = None
        self._stamp: tuple[int, int, int] | None = None
        self._checked_at = float("-inf")
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Any, embedder: Embedder | None = None) -> KnowledgeBase:
        """Build from a `KbSection`; the embedder is the process-wide one for kb.embedder."""
        embedder = embedder or get_embedder(settings.embedder)
        return cls(
            settings.index_dir,
            embedder,
            search_params=search_params_from(settings),
            index_params=index_params_from(settings),
            calibration=load_calibration(settings.calibration_file, embedder.name),
            answer_threshold=settings.answer_threshold,
            reload_interval_s=settings.reload_interval_s,
            english_embedder=(
                get_embedder(settings.english_embedder) if settings.english_embedder else None
            ),
        )

    # -- the live index -------------------------------------------------------------------

    def current(self) -> KbIndex | None:
        """The live index, reloading first if a new version was published (cheap check)."""
        now = self._monotonic()
        if now - self._checked_at < self.reload_interval_s and self._index is not None:
            return self._index
        with self._lock:
            if now - self._checked_at < self.reload_interval_s and self._index is not None:
                return self._index
            self._checked_at = now
            stamp = self.store.pointer_stamp()
            if stamp is None or stamp == self._stamp:
                return self._index
            manifest = self.store.current_manifest()
            assert manifest is not None
            if self._index is not None and manifest["version"] == self._index.version:
                self._stamp = stamp
                return self._index
            self._check_embedder(manifest)
            try:
                loaded = self.store.load(str(manifest["version"]), self.index_params)
            except FileNotFoundError:
                # Garbage-collected or not yet complete: keep serving the old version.
                log.warning("index version %s not loadable yet", manifest["version"])
                return self._index
            self._index = loaded  # one reference assignment: readers see old or new
            self._stamp = stamp
            log.info("knowledge base now at index %s", loaded.version)
            return self._index

    def _check_embedder(self, manifest: dict[str, Any]) -> None:
        name = manifest.get("embedder")
        if name != self.embedder.name:
            raise EmbedderMismatchError(
                f"the index in {self.store.root} was built with embedder {name!r} but "
                f"kb.embedder is {self.embedder.name!r}; run `hwcrm kb ingest` to re-embed"
            )

    def require(self) -> KbIndex:
        index = self.current()
        if index is None:
            raise FileNotFoundError(
                f"no knowledge-base index in {self.store.root}; run `hwcrm kb ingest` first"
            )
        return index

    # -- search ---------------------------------------------------------------------------

    def _english_vectors(
        self, index: KbIndex, queries: Sequence[str], params: SearchParams
    ) -> EnglishVectors | None:
        """The English model's vectors of the English queries, when the index has a matching
        English dense index (an index built before `kb.english_embedder` was set simply goes
        without it until the next `hwcrm kb ingest`)."""
        english = self.english_embedder
        if english is None or index.english is None or params.mode != "hybrid":
            return None
        if params.english_weight <= 0:
            return None
        if index.english.embedder != english.name:
            if self._english_warned != index.version:
                self._english_warned = index.version
                log.warning(
                    "index %s has English vectors of %r, kb.english_embedder is %r: not used; "
                    "run `hwcrm kb ingest` to re-embed",
                    index.version,
                    index.english.embedder,
                    english.name,
                )
            return None
        return english_query_vectors(english, queries)

    def search(
        self,
        query: str,
        *,
        k: int = 5,
        lang: str | None = None,
        category: str | None = None,
        mode: Mode | None = None,
    ) -> list[SearchHit]:
        return self.search_many([query], k=k, lang=lang, category=category, mode=mode)[0]

    def search_many(
        self,
        queries: Sequence[str],
        *,
        k: int = 5,
        lang: str | None = None,
        category: str | None = None,
        mode: Mode | None = None,
    ) -> list[list[SearchHit]]:
        """Ranked hits per query; the queries are embedded in one batch."""
        index = self.require()
        params = self.search_params
        if mode is not None and mode != params.mode:
            params = replace(params, mode=mode)
        vectors = None if params.mode == "lexical" else self.embedder.encode(list(queries))
        return search_index(
            index,
            queries,
            vectors,
            k=k,
            lang=lang,
            category=category,
            params=params,
            english_vectors=self._english_vectors(index, queries, params),
        )

    # -- answer ---------------------------------------------------------------------------

    def answer(self, query: str, lang: str | None = None, category: str | None = None) -> Answer:
        """The best passage for the bot, or `confident=False` so that it hands off."""
        return self.answer_many([query], lang=lang, category=category)[0]

    def answer_many(
        self, queries: Sequence[str], lang: str | None = None, category: str | None = None
    ) -> list[Answer]:
        """`answer` for several queries (embedded in one batch)."""
        index = self.require()
        vectors = self.embedder.encode(list(queries))
        hit_lists = search_index(
            index,
            queries,
            vectors,
            k=10,
            category=category,
            params=self.search_params,
            english_vectors=self._english_vectors(index, queries, self.search_params),
        )
        return [
            build_answer(
                index,
                query,
                vectors[i],
                hits,
                self.search_params,
                self.calibration,
                self.answer_threshold,
                lang,
            )
            for i, (query, hits) in enumerate(zip(queries, hit_lists, strict=True))
        ]

    # -- status ---------------------------------------------------------------------------

    def status(self) -> KbStatus:
        manifest = self.store.current_manifest()
        index = None
        if manifest is not None:
            try:
                index = self.current()
            except EmbedderMismatchError:
                index = None
        languages: dict[str, int] = {}
        if index is not None:
            for article in index.article_list:
                languages[article.language] = languages.get(article.language, 0) + 1
        return KbStatus(
            index_dir=str(self.store.root),
            version=manifest.get("version") if manifest else None,
            embedder=manifest.get("embedder") if manifest else None,
            configured_embedder=self.embedder.name,
            dim=manifest.get("dim") if manifest else None,
            index_type=manifest.get("index_type") if manifest else None,
            articles=int(manifest.get("articles", 0)) if manifest else 0,
            chunks=int(manifest.get("chunks", 0)) if manifest else 0,
            created_at=manifest.get("created_at") if manifest else None,
            languages=languages,
        )


def build_answer(
    index: KbIndex,
    query: str,
    query_vector: Any,
    hits: list[SearchHit],
    params: SearchParams,
    calibration: Calibration,
    threshold: float,
    lang: str | None = None,
) -> Answer:
    """Turn a hit list into an Answer: confidence, same-language article, best passage."""
    if not hits:
        return Answer(None, None, None, None, None, 0.0, False, hits=hits)
    confidence = calibration.probability(features(index, query_vector, hits, params))
    top = hits[0]
    want = lang or query_language(query)
    article_id = top.article_id
    passage, heading = top.passage, top.heading
    if top.language != want:
        translated = index.translation(top.article_id, want)
        if translated is not None:
            article_id = translated
            rows = index.rows_of_article(translated)
            cosines = article_cosines(index, query_vector, translated)
            row = rows[int(cosines.argmax())] if len(cosines) else rows[0]
            passage, heading = index.chunks[row].text, index.chunks[row].heading
    meta = index.articles[article_id]
    sections = solution_for(meta.solution, heading)
    return Answer(
        passage=passage,
        article_id=article_id,
        title=meta.title,
        url=meta.url,
        language=meta.language,
        confidence=confidence,
        confident=confidence >= threshold,
        heading=heading,
        hits=hits,
        solution_markdown="\n\n".join(f"## {s['heading']}\n\n{s['markdown']}" for s in sections),
        solution_headings=[s["heading"] for s in sections],
    )


def solution_for(solution: list[dict[str, str]], matched_heading: str) -> list[dict[str, str]]:
    """An article's solution sections in the order to show them: the section the query
    matched first when it is one of them (also when it matched one of its subsections),
    then the others in the order of the front matter."""
    for i, section in enumerate(solution):
        inside = {
            line.lstrip("#").strip()
            for line in section["markdown"].splitlines()
            if line.startswith("#")
        }
        if matched_heading and (matched_heading == section["heading"] or matched_heading in inside):
            return [section, *solution[:i], *solution[i + 1 :]]
    return list(solution)
