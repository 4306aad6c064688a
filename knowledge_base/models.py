"""Knowledge-base tables in the CRM database: one row per article, one per chunk.

The vectors themselves live in the faiss index on disk (`kb.index_dir`); a chunk's primary
key is its faiss id. `content_hash` of an article is the SHA-256 of its source file, which
makes ingestion incremental: unchanged files keep their chunks and vectors.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm_core.db import Base, JSONType, UTCDateTime, utcnow


class KbArticle(Base):
    """An ingested article (one source file)."""

    __tablename__ = "kb_articles"

    id: Mapped[int] = mapped_column(primary_key=True)
    article_id: Mapped[str] = mapped_column(String(200), unique=True)
    translation_of: Mapped[str | None] = mapped_column(String(200), index=True)
    title: Mapped[str] = mapped_column(String(500))
    language: Mapped[str] = mapped_column(String(8))
    categories: Mapped[list[str]] = mapped_column(JSONType, default=list)
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    source_url: Mapped[str | None] = mapped_column(String(1000))
    source_path: Mapped[str] = mapped_column(String(1000), unique=True)
    file_format: Mapped[str] = mapped_column(String(8))
    content_hash: Mapped[str] = mapped_column(String(64))
    embedder: Mapped[str] = mapped_column(String(200))
    index_version: Mapped[str] = mapped_column(String(64))
    # [{"heading", "markdown"}] of the sections named by the front matter `solution:`.
    solution: Mapped[list[dict[str, str]]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    chunks: Mapped[list[KbChunk]] = relationship(
        back_populates="article",
        cascade="all, delete-orphan",
        order_by="KbChunk.position",
        passive_deletes=True,
    )

    def to_meta(self) -> dict[str, Any]:
        """Search-time metadata of this article (copied into each index version)."""
        return {
            "article_id": self.article_id,
            "translation_of": self.translation_of,
            "title": self.title,
            "language": self.language,
            "categories": list(self.categories or []),
            "url": self.source_url,
            "solution": [dict(s) for s in self.solution or []],
        }


class KbChunk(Base):
    """A retrievable piece of an article; `id` is its id in the faiss index."""

    __tablename__ = "kb_chunks"

    id: Mapped[int] = mapped_column(primary_key=True)
    article_pk: Mapped[int] = mapped_column(
        ForeignKey("kb_articles.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    heading: Mapped[str] = mapped_column(String(500), default="")
    text: Mapped[str] = mapped_column(Text)

    article: Mapped[KbArticle] = relationship(back_populates="chunks")
