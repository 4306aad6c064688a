"""One immutable knowledge-base index: faiss vectors + BM25 + the metadata to show hits.

A `KbIndex` is built in memory (ingestion, evaluation) and saved as one *version
directory*. `index_dir/CURRENT` is a small JSON manifest naming the live version; it is
replaced atomically with `os.replace`, so a reader sees either the old or the new version,
never a half-written one (see `knowledge_base.store`).

Besides the main (multilingual) vectors a version may hold a second dense index of a
language-specific embedder over the English chunks only (`kb.english_embedder`, see
`knowledge_base.search`): files `english.faiss.index`, `english_vectors.npy`,
`english_ids.npy`, and `english_embedder` / `english_dim` in the manifest.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from knowledge_base.text import tokenize_many
from knowledge_base.vectors import Ids, IndexParams, Matrix, build_index, index_kind, load_index

FORMAT_VERSION = 1


@dataclass(frozen=True)
class ArticleMeta:
    """What a search hit shows about its article."""

    article_id: str
    title: str
    language: str
    categories: list[str] = field(default_factory=list)
    url: str | None = None
    translation_of: str | None = None
    # The article's solution sections ({"heading", "markdown"}), what the bot shows.
    solution: list[dict[str, str]] = field(default_factory=list)

    @property
    def topic(self) -> str:
        """Articles that translate each other share a topic."""
        return self.translation_of or self.article_id


@dataclass(frozen=True)
class ChunkMeta:
    """One indexed chunk; `chunk_id` is its faiss id."""

    chunk_id: int
    article_id: str
    position: int
    heading: str
    text: str


@dataclass
class SecondaryDense:
    """A second dense index over some of the chunks (the English ones), another embedder."""

    embedder: str
    faiss_index: Any
    vectors: Matrix
    chunk_ids: Ids

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1]) if self.vectors.ndim == 2 else 0


class KbIndex:
    """Dense + lexical index over chunks, with article metadata; read-only once built."""

    def __init__(
        self,
        *,
        manifest: dict[str, Any],
        faiss_index: Any,
        bm25: Any,
        chunks: list[ChunkMeta],
        articles: dict[str, ArticleMeta],
        vectors: Matrix,
        english: SecondaryDense | None = None,
    ) -> None:
        self.manifest = manifest
        self.english = english
        """The English-only dense index (None when `kb.english_embedder` is off)."""
        self.faiss_index = faiss_index
        self.bm25 = bm25
        self.chunks = chunks
        self.articles = articles
        self.vectors = vectors
        self.chunk_ids: Ids = np.array([c.chunk_id for c in chunks], dtype=np.int64)
        self.row_of: dict[int, int] = {c.chunk_id: i for i, c in enumerate(chunks)}
        self.english_rows: npt.NDArray[np.int64] = np.array(
            [self.row_of[int(i)] for i in english.chunk_ids] if english is not None else [],
            dtype=np.int64,
        )
        """Row (into `chunks`) of each vector of the English index."""
        self.article_list: list[ArticleMeta] = list(articles.values())
        article_pos = {a.article_id: i for i, a in enumerate(self.article_list)}
        self.chunk_article: npt.NDArray[np.int64] = np.array(
            [article_pos[c.article_id] for c in chunks], dtype=np.int64
        )
        self._topics = [a.topic for a in self.article_list]
        self._masks: dict[tuple[str, str], npt.NDArray[np.bool_]] = {}
        self._rows_by_article: dict[str, list[int]] = {}
        for row, chunk in enumerate(chunks):
            self._rows_by_article.setdefault(chunk.article_id, []).append(row)
        self._by_topic_lang: dict[tuple[str, str], str] = {
            (a.topic, a.language): a.article_id for a in self.article_list
        }

    # -- building -------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        *,
        articles: list[ArticleMeta],
        chunks: list[ChunkMeta],
        chunk_texts: list[str],
        vectors: Matrix,
        params: IndexParams,
        manifest: dict[str, Any],
        english: tuple[str, Matrix, Ids] | None = None,
    ) -> KbIndex:
        """Build the faiss and BM25 indexes; `chunk_texts` is what BM25 indexes.

        `english`: (embedder name, vectors, chunk ids) of the English-only dense index.
        """
        import bm25s

        if len(chunks) != len(vectors) or len(chunks) != len(chunk_texts):
            raise ValueError("chunks, chunk_texts and vectors must line up")
        ids = np.array([c.chunk_id for c in chunks], dtype=np.int64)
        dim = int(manifest.get("dim") or (vectors.shape[1] if vectors.ndim == 2 else 0))
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(chunks), dim)
        faiss_index = build_index(vectors, ids, params)
        bm25: Any = None
        if chunks:
            bm25 = bm25s.BM25()
            bm25.index(tokenize_many(chunk_texts), show_progress=False)
        manifest = {
            **manifest,
            "format": FORMAT_VERSION,
            "dim": dim,
            "index_type": index_kind(faiss_index),
            "articles": len(articles),
            "chunks": len(chunks),
        }
        secondary = None
        if english is not None:
            name, en_vectors, en_ids = english
            en_ids = np.ascontiguousarray(en_ids, dtype=np.int64)
            if len(en_vectors) != len(en_ids) or not set(en_ids.tolist()) <= set(ids.tolist()):
                raise ValueError("english vectors must belong to indexed chunks, one per id")
            en_vectors = np.ascontiguousarray(en_vectors, dtype=np.float32)
            en_dim = int(en_vectors.shape[1]) if en_vectors.ndim == 2 and len(en_vectors) else 0
            en_vectors = en_vectors.reshape(len(en_ids), en_dim)
            secondary = SecondaryDense(
                name, build_index(en_vectors, en_ids, params), en_vectors, en_ids
            )
            manifest.update(english_embedder=name, english_dim=en_dim, english_chunks=len(en_ids))
        return cls(
            manifest=manifest,
            faiss_index=faiss_index,
            bm25=bm25,
            chunks=chunks,
            articles={a.article_id: a for a in articles},
            vectors=vectors,
            english=secondary,
        )

    # -- persistence ----------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """Write every file of this version into `directory` (which must not be live yet)."""
        from knowledge_base.vectors import save_index

        directory.mkdir(parents=True, exist_ok=True)
        save_index(self.faiss_index, directory / "faiss.index")
        np.save(directory / "vectors.npy", self.vectors)
        np.save(directory / "ids.npy", self.chunk_ids)
        with (directory / "chunks.jsonl").open("w", encoding="utf-8") as fh:
            for chunk in self.chunks:
                fh.write(json.dumps(asdict(chunk), ensure_ascii=False) + "\n")
        (directory / "articles.json").write_text(
            json.dumps([asdict(a) for a in self.article_list], ensure_ascii=False),
            encoding="utf-8",
        )
        if self.bm25 is not None:
            self.bm25.save(str(directory / "bm25"), show_progress=False)
        if self.english is not None:
            save_index(self.english.faiss_index, directory / "english.faiss.index")
            np.save(directory / "english_vectors.npy", self.english.vectors)
            np.save(directory / "english_ids.npy", self.english.chunk_ids)
        (directory / "manifest.json").write_text(json.dumps(self.manifest, indent=2))

    @classmethod
    def load(cls, directory: Path, params: IndexParams | None = None) -> KbIndex:
        """Load a version fully into memory (the directory may be deleted afterwards)."""
        import bm25s

        manifest = json.loads((directory / "manifest.json").read_text())
        if manifest.get("format") != FORMAT_VERSION:
            raise ValueError(f"{directory}: unsupported index format {manifest.get('format')}")
        chunks = [
            ChunkMeta(**json.loads(line))
            for line in (directory / "chunks.jsonl").read_text(encoding="utf-8").splitlines()
            if line
        ]
        articles = [
            ArticleMeta(**row)
            for row in json.loads((directory / "articles.json").read_text(encoding="utf-8"))
        ]
        vectors = np.load(directory / "vectors.npy")
        faiss_index = load_index(directory / "faiss.index", params)
        bm25 = None
        if (directory / "bm25").is_dir():
            bm25 = bm25s.BM25.load(str(directory / "bm25"), show_progress=False)
        if faiss_index.ntotal != len(chunks):
            raise ValueError(f"{directory}: faiss index and chunk list disagree")
        english = None
        if manifest.get("english_embedder"):
            en_ids = np.load(directory / "english_ids.npy")
            en_index = load_index(directory / "english.faiss.index", params)
            if en_index.ntotal != len(en_ids):
                raise ValueError(f"{directory}: english index and its ids disagree")
            english = SecondaryDense(
                str(manifest["english_embedder"]),
                en_index,
                np.load(directory / "english_vectors.npy"),
                en_ids,
            )
        return cls(
            manifest=manifest,
            faiss_index=faiss_index,
            bm25=bm25,
            chunks=chunks,
            articles={a.article_id: a for a in articles},
            vectors=vectors,
            english=english,
        )

    # -- helpers for search ---------------------------------------------------------------

    @property
    def version(self) -> str:
        return str(self.manifest.get("version", ""))

    @property
    def embedder(self) -> str:
        return str(self.manifest.get("embedder", ""))

    @property
    def dim(self) -> int:
        return int(self.manifest.get("dim", 0))

    def rows_of_article(self, article_id: str) -> list[int]:
        """Row numbers (into `chunks` / `vectors`) of one article's chunks."""
        return self._rows_by_article.get(article_id, [])

    def translation(self, article_id: str, language: str) -> str | None:
        """The id of the `language` version of an article's topic, if there is one."""
        meta = self.articles.get(article_id)
        if meta is None:
            return None
        return self._by_topic_lang.get((meta.topic, language))

    def topic_of(self, article_index: int) -> str:
        return self._topics[article_index]

    def article_mask(self, lang: str | None, category: str | None) -> npt.NDArray[np.bool_]:
        """Articles passing the filters (articles with categories [] apply to every category)."""
        key = (lang or "", category or "")
        cached = self._masks.get(key)
        if cached is None:
            cached = self._masks[key] = self._article_mask(lang, category)
        return cached

    def _article_mask(self, lang: str | None, category: str | None) -> npt.NDArray[np.bool_]:
        mask = np.ones(len(self.article_list), dtype=bool)
        for i, article in enumerate(self.article_list):
            wrong_lang = bool(lang) and article.language != lang
            wrong_category = (
                bool(category) and bool(article.categories) and category not in article.categories
            )
            if wrong_lang or wrong_category:
                mask[i] = False
        return mask
