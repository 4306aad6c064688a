"""Incremental ingestion: a directory of articles → kb_articles/kb_chunks + a new index version.

- Only new or changed files (SHA-256 of the file) are chunked and embedded again; the
  vectors of unchanged articles are copied from the live version. Files that disappeared
  leave the index.
- A bad file (empty, binary, too large, broken front matter, duplicate id, unknown
  language, ...) is skipped and reported with its reason; if an earlier version of that
  file was ingested, that version stays in the index.
- Switching the embedder (or the chunking settings) re-embeds everything: one index never
  mixes vectors of two embedders.
- With `kb.english_embedder`, the English articles' chunks are also embedded with that
  model into a second dense index (English queries fuse it in, `knowledge_base.search`);
  its vectors are reused the same way, and switching that model re-embeds only them.
- The new version is written completely, then published by atomically replacing
  `CURRENT` after the database transaction committed (`knowledge_base.store`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from crm_core.db import unit_of_work, utcnow
from knowledge_base.chunking import Chunk, chunk_article, embedding_text
from knowledge_base.embedders import Embedder, Vectors, get_embedder
from knowledge_base.index import ArticleMeta, ChunkMeta, KbIndex
from knowledge_base.models import KbArticle, KbChunk
from knowledge_base.sources import SourceArticle, SourceError, is_candidate, read_source
from knowledge_base.store import IndexStore
from knowledge_base.vectors import IndexParams

log = logging.getLogger(__name__)

# (stage, done, total): stages are "read", "embed", "index".
ProgressCallback = Callable[[str, int, int], None]


@dataclass
class SkippedFile:
    """A file that was not ingested, and why."""

    path: str
    reason: str
    kept_previous: bool = False


@dataclass
class IngestReport:
    """What one ingestion did."""

    version: str | None
    published: bool
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    embedded_chunks: int = 0
    articles: int = 0
    chunks: int = 0
    full_reembed_reason: str | None = None


def _noop(stage: str, done: int, total: int) -> None:
    return None


class Ingestor:
    """Ingests a directory into the CRM database and the versioned faiss index."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        index_dir: Path,
        embedder: Embedder,
        *,
        chunk_size: int = 700,
        chunk_overlap: int = 100,
        max_file_bytes: int = 5_000_000,
        index_params: IndexParams | None = None,
        keep_versions: int = 3,
        batch_size: int = 32,
        english_embedder: Embedder | None = None,
    ) -> None:
        self.sessions = sessions
        self.store = IndexStore(index_dir)
        self.embedder = embedder
        self.english_embedder = english_embedder
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.max_file_bytes = max_file_bytes
        self.index_params = index_params or IndexParams()
        self.keep_versions = keep_versions
        self.batch_size = batch_size

    @classmethod
    def from_settings(
        cls,
        sessions: async_sessionmaker[AsyncSession],
        settings: Any,
        embedder: Embedder | None = None,
    ) -> Ingestor:
        """Build from a `KbSection` (kb.* settings)."""
        from knowledge_base.service import index_params_from

        return cls(
            sessions,
            settings.index_dir,
            embedder or get_embedder(settings.embedder),
            chunk_size=settings.chunk_size,
            chunk_overlap=settings.chunk_overlap,
            max_file_bytes=settings.max_file_bytes,
            index_params=index_params_from(settings),
            keep_versions=settings.keep_versions,
            english_embedder=(
                get_embedder(settings.english_embedder) if settings.english_embedder else None
            ),
        )

    # -- reading --------------------------------------------------------------------------

    def read_directory(
        self, directory: Path, progress: ProgressCallback = _noop
    ) -> tuple[dict[str, SourceArticle], list[SkippedFile]]:
        """Parse every candidate file below `directory` (sorted, deterministic)."""
        files = sorted(
            p
            for p in directory.rglob("*")
            if p.is_file()
            and is_candidate(p)
            and not any(part.startswith(".") for part in p.relative_to(directory).parts)
        )
        parsed: dict[str, SourceArticle] = {}
        skipped: list[SkippedFile] = []
        for i, path in enumerate(files, start=1):
            rel = path.relative_to(directory).as_posix()
            try:
                parsed[rel] = read_source(path, directory, max_bytes=self.max_file_bytes)
            except SourceError as exc:
                skipped.append(SkippedFile(rel, str(exc)))
            except OSError as exc:
                skipped.append(SkippedFile(rel, f"cannot read: {exc.strerror or exc}"))
            progress("read", i, len(files))
        return parsed, skipped

    # -- the whole run --------------------------------------------------------------------

    async def ingest(
        self, directory: Path, progress: ProgressCallback | None = None
    ) -> IngestReport:
        """Bring the knowledge base in line with `directory`; publish a new version if needed."""
        progress = progress or _noop
        directory = await asyncio.to_thread(lambda: Path(directory).resolve())
        if not await asyncio.to_thread(directory.is_dir):
            raise FileNotFoundError(f"{directory} is not a directory")
        with self.store.ingest_lock():
            return await self._ingest_locked(directory, progress)

    async def _ingest_locked(self, directory: Path, progress: ProgressCallback) -> IngestReport:
        parsed, skipped = await asyncio.to_thread(self.read_directory, directory, progress)
        manifest = self.store.current_manifest()
        full_reason = self._full_reembed_reason(manifest)
        prev_vectors = self._previous_vectors(manifest) if full_reason is None else {}
        prev_english = self._previous_english(manifest)
        report = IngestReport(
            version=None, published=False, skipped=skipped, full_reembed_reason=full_reason
        )

        async with unit_of_work(self.sessions) as session:
            rows = list(
                (
                    await session.scalars(select(KbArticle).options(selectinload(KbArticle.chunks)))
                ).all()
            )
            by_path = {r.source_path: r for r in rows}
            skipped_paths = {s.path for s in skipped}
            valid = self._resolve_duplicates(parsed, by_path, skipped_paths, skipped)
            for item in skipped:
                item.kept_previous = item.path in by_path

            kept = [r for r in rows if r.source_path in skipped_paths]
            removed = [r for r in rows if r.source_path not in valid and r not in kept]
            unchanged: list[KbArticle] = []
            changed: list[tuple[KbArticle | None, SourceArticle]] = []
            for rel, article in sorted(valid.items()):
                row = by_path.get(rel)
                if (
                    row is not None
                    and full_reason is None
                    and row.content_hash == article.content_hash
                    and row.article_id == article.article_id
                    and all(c.id in prev_vectors for c in row.chunks)
                ):
                    unchanged.append(row)
                else:
                    changed.append((row, article))
            # Kept (now unreadable) articles whose vectors are gone are re-embedded from the
            # chunk text stored in the database.
            reembed_rows = [r for r in kept if not all(c.id in prev_vectors for c in r.chunks)]

            report.unchanged = [r.article_id for r in unchanged + kept]
            report.removed = [r.article_id for r in removed]
            nothing_to_do = (
                manifest is not None
                and not removed
                and not changed
                and not reembed_rows
                and manifest.get("index_type") == self._expected_index_type(manifest)
                and manifest.get("english_embedder") == self._english_name
            )
            if nothing_to_do:
                assert manifest is not None
                report.version = str(manifest["version"])
                report.articles = int(manifest.get("articles", 0))
                report.chunks = int(manifest.get("chunks", 0))
                return report

            # Chunk and embed what is new or changed (before touching the database).
            planned: list[tuple[KbArticle | None, SourceArticle, list[Chunk]]] = []
            texts: list[str] = []
            for row, article in changed:
                chunks = chunk_article(
                    article.body, chunk_size=self.chunk_size, chunk_overlap=self.chunk_overlap
                )
                if not chunks:
                    skipped.append(SkippedFile(article.source_path, "empty file (no text)"))
                    continue
                planned.append((row, article, chunks))
                texts.extend(embedding_text(article.title, c.heading, c.text) for c in chunks)
            for row in reembed_rows:
                texts.extend(embedding_text(row.title, c.heading, c.text) for c in row.chunks)
            new_vectors = await self._embed(texts, progress)
            report.embedded_chunks = len(texts)

            # Database: removals first (ids and paths may be reused), then updates, inserts.
            for row in removed:
                await session.delete(row)
            await session.flush()
            now = utcnow()
            pending_vectors: list[tuple[KbArticle, Vectors]] = []
            offset = 0
            for row, article, chunks in planned:
                vecs = new_vectors[offset : offset + len(chunks)]
                offset += len(chunks)
                if row is None:
                    row = KbArticle(source_path=article.source_path, created_at=now)
                    session.add(row)
                    report.added.append(article.article_id)
                else:
                    row.chunks.clear()
                    report.updated.append(article.article_id)
                self._fill(row, article, now)
                row.chunks.extend(
                    KbChunk(position=c.position, heading=c.heading[:500], text=c.text)
                    for c in chunks
                )
                await session.flush()
                pending_vectors.append((row, vecs))
            for row in reembed_rows:
                vecs = new_vectors[offset : offset + len(row.chunks)]
                offset += len(row.chunks)
                pending_vectors.append((row, vecs))
            await session.flush()

            # Assemble the complete new version.
            vector_of: dict[int, np.ndarray] = {}
            for row, vecs in pending_vectors:
                for chunk, vec in zip(row.chunks, vecs, strict=True):
                    vector_of[chunk.id] = vec
            final_rows = sorted(
                [r for r in unchanged + kept if r not in reembed_rows]
                + [r for r, _ in pending_vectors],
                key=lambda r: r.article_id,
            )
            version, seq = self.store.next_version()
            changed_ids = set(vector_of)
            english_of = {i: v for i, v in prev_english.items() if i not in changed_ids}
            index = await asyncio.to_thread(
                self._build_index,
                final_rows,
                vector_of,
                prev_vectors,
                version,
                seq,
                progress,
                english_of,
            )
            self.store.write_version(index)
            try:
                await session.execute(
                    update(KbArticle).values(index_version=version, embedder=self.embedder.name)
                )
                await session.flush()
            except BaseException:
                self.store.discard(version)
                raise
            report.version = version
            report.articles = len(final_rows)
            report.chunks = len(index.chunks)
        # Committed: now make the new version live.
        self.store.publish(index.manifest)
        report.published = True
        self.store.collect_garbage(self.keep_versions)
        log.info(
            "knowledge base %s: +%d ~%d -%d, %d skipped, %d chunks embedded",
            version,
            len(report.added),
            len(report.updated),
            len(report.removed),
            len(report.skipped),
            report.embedded_chunks,
        )
        return report

    # -- helpers --------------------------------------------------------------------------

    def _full_reembed_reason(self, manifest: dict[str, Any] | None) -> str | None:
        if manifest is None:
            return None
        if manifest.get("embedder") != self.embedder.name:
            return f"embedder changed from {manifest.get('embedder')!r} to {self.embedder.name!r}"
        if manifest.get("dim") not in (None, self.embedder.dim):
            return f"embedding dimension changed from {manifest.get('dim')} to {self.embedder.dim}"
        if (manifest.get("chunk_size"), manifest.get("chunk_overlap")) != (
            self.chunk_size,
            self.chunk_overlap,
        ):
            return "chunking settings changed"
        return None

    @property
    def _english_name(self) -> str | None:
        return self.english_embedder.name if self.english_embedder is not None else None

    def _previous_english(self, manifest: dict[str, Any] | None) -> dict[int, np.ndarray]:
        """Chunk id → English-model vector of the live version (same English model only)."""
        if manifest is None or self.english_embedder is None:
            return {}
        if manifest.get("english_embedder") != self.english_embedder.name:
            return {}
        if (manifest.get("chunk_size"), manifest.get("chunk_overlap")) != (
            self.chunk_size,
            self.chunk_overlap,
        ):
            return {}
        directory = self.store.version_dir(str(manifest["version"]))
        try:
            ids = np.load(directory / "english_ids.npy")
            vectors = np.load(directory / "english_vectors.npy", mmap_mode="r")
        except (FileNotFoundError, ValueError):
            return {}
        return {int(i): vectors[row] for row, i in enumerate(ids)}

    def _expected_index_type(self, manifest: dict[str, Any]) -> str:
        return self.index_params.resolve(int(manifest.get("chunks", 0)))

    def _previous_vectors(self, manifest: dict[str, Any] | None) -> dict[int, np.ndarray]:
        """Chunk id → vector of the live version (memory-mapped)."""
        if manifest is None:
            return {}
        directory = self.store.version_dir(str(manifest["version"]))
        try:
            ids = np.load(directory / "ids.npy")
            vectors = np.load(directory / "vectors.npy", mmap_mode="r")
        except (FileNotFoundError, ValueError):
            log.warning("live index %s is incomplete; re-embedding", manifest["version"])
            return {}
        return {int(i): vectors[row] for row, i in enumerate(ids)}

    @staticmethod
    def _resolve_duplicates(
        parsed: dict[str, SourceArticle],
        by_path: dict[str, KbArticle],
        skipped_paths: set[str],
        skipped: list[SkippedFile],
    ) -> dict[str, SourceArticle]:
        """One file per article id: the file that already owns the id wins, else the first."""
        owner: dict[str, str] = {}
        # Ids held by ingested files that are still there (even if unreadable right now).
        for rel, row in by_path.items():
            if rel in skipped_paths or (rel in parsed and parsed[rel].article_id == row.article_id):
                owner[row.article_id] = rel
        valid: dict[str, SourceArticle] = {}
        for rel in sorted(parsed):
            article = parsed[rel]
            holder = owner.get(article.article_id)
            if holder is not None and holder != rel:
                skipped.append(
                    SkippedFile(rel, f"duplicate id '{article.article_id}' (also in {holder})")
                )
                continue
            owner[article.article_id] = rel
            valid[rel] = article
        return valid

    async def _embed(self, texts: list[str], progress: ProgressCallback) -> Vectors:
        if not texts:
            return np.zeros((0, self.embedder.dim), dtype=np.float32)
        parts = []
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start : start + self.batch_size]
            parts.append(await asyncio.to_thread(self.embedder.encode, batch, self.batch_size))
            progress("embed", min(start + len(batch), len(texts)), len(texts))
        return np.vstack(parts).astype(np.float32)

    def _fill(self, row: KbArticle, article: SourceArticle, now: dt.datetime) -> None:
        row.article_id = article.article_id
        row.translation_of = article.translation_of
        row.title = article.title
        row.language = article.language
        row.categories = list(article.categories)
        row.tags = list(article.tags)
        row.source_url = article.source_url
        row.source_path = article.source_path
        row.file_format = article.file_format
        row.content_hash = article.content_hash
        row.solution = [dict(s) for s in article.solution]
        row.embedder = self.embedder.name
        row.index_version = ""
        row.updated_at = now

    def _build_index(
        self,
        rows: list[KbArticle],
        vector_of: dict[int, np.ndarray],
        prev_vectors: dict[int, np.ndarray],
        version: str,
        seq: int,
        progress: ProgressCallback,
        english_of: dict[int, np.ndarray] | None = None,
    ) -> KbIndex:
        articles: list[ArticleMeta] = []
        chunks: list[ChunkMeta] = []
        texts: list[str] = []
        vectors: list[np.ndarray] = []
        english_ids: list[int] = []
        english_missing: list[tuple[int, str]] = []
        english_of = dict(english_of or {})
        for row in rows:
            if self.english_embedder is not None and row.language == "en":
                for chunk in row.chunks:
                    english_ids.append(chunk.id)
                    if chunk.id not in english_of:
                        english_missing.append(
                            (chunk.id, embedding_text(row.title, chunk.heading, chunk.text))
                        )
            articles.append(ArticleMeta(**{**row.to_meta()}))
            for chunk in row.chunks:
                chunks.append(
                    ChunkMeta(
                        chunk_id=chunk.id,
                        article_id=row.article_id,
                        position=chunk.position,
                        heading=chunk.heading,
                        text=chunk.text,
                    )
                )
                texts.append(embedding_text(row.title, chunk.heading, chunk.text))
                vec = vector_of.get(chunk.id)
                vectors.append(np.asarray(prev_vectors[chunk.id] if vec is None else vec))
        english = None
        if self.english_embedder is not None:
            for start in range(0, len(english_missing), self.batch_size):
                batch = english_missing[start : start + self.batch_size]
                encoded = self.english_embedder.encode([t for _, t in batch], self.batch_size)
                english_of.update((cid, vec) for (cid, _), vec in zip(batch, encoded, strict=True))
                progress("embed-en", start + len(batch), len(english_missing))
            english_matrix = (
                np.vstack([np.asarray(english_of[i]) for i in english_ids]).astype(np.float32)
                if english_ids
                else np.zeros((0, self.english_embedder.dim), dtype=np.float32)
            )
            english = (
                self.english_embedder.name,
                english_matrix,
                np.array(english_ids, dtype=np.int64),
            )
        progress("index", 0, 1)
        matrix = (
            np.vstack(vectors).astype(np.float32)
            if vectors
            else np.zeros((0, self.embedder.dim), dtype=np.float32)
        )
        manifest = {
            "version": version,
            "seq": seq,
            "embedder": self.embedder.name,
            "dim": int(self.embedder.dim),
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "chunk_size": self.chunk_size,
            "chunk_overlap": self.chunk_overlap,
        }
        index = KbIndex.build(
            articles=articles,
            chunks=chunks,
            chunk_texts=texts,
            vectors=matrix,
            params=self.index_params,
            manifest=manifest,
            english=english,
        )
        progress("index", 1, 1)
        return index
