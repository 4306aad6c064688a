"""Knowledge-base fixtures: embedders (real USE once per session, a counting test double),
article folders written on the fly, and the real article index built once per session."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from knowledge_base.embedders import Embedder, HashingEmbedder, Vectors, get_embedder
from knowledge_base.evaluation import article_corpus, build_corpus_index
from knowledge_base.index import KbIndex
from knowledge_base.service import KnowledgeBase
from knowledge_base.store import IndexStore

ROOT = Path(__file__).resolve().parents[2]
ARTICLES = ROOT / "knowledge_base" / "articles"
DATA = ROOT / "tests" / "data"


class CountingEmbedder:
    """Wraps an embedder and counts what is embedded (to prove incrementality)."""

    def __init__(self, inner: Embedder | None = None) -> None:
        self.inner = inner or HashingEmbedder()
        self.calls = 0
        self.texts: list[str] = []

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dim(self) -> int:
        return self.inner.dim

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> Vectors:
        self.calls += 1
        self.texts.extend(texts)
        return self.inner.encode(texts, batch_size)

    def reset(self) -> None:
        self.calls = 0
        self.texts = []


def article(
    article_id: str,
    title: str,
    body: str,
    *,
    language: str = "en",
    categories: str = "[]",
    extra: str = "",
) -> str:
    """A Markdown article with front matter."""
    return (
        f'---\nid: {article_id}\ntitle: "{title}"\nlanguage: {language}\n'
        f"categories: {categories}\ntags: []\n"
        f"source_url: https://kb.example/{article_id}\n{extra}---\n\n{body}\n"
    )


def minimal_pdf(lines: list[str]) -> bytes:
    """A small valid PDF with one page of text (Helvetica), built by hand."""
    text_ops = (
        "BT /F1 12 Tf 72 720 Td 14 TL "
        + " ".join(
            "(" + line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ") Tj T*"
            for line in lines
        )
        + " ET"
    )
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        "/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        f"<< /Length {len(text_ops)} >>\nstream\n{text_ops}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return out


@pytest.fixture
def counting_embedder() -> CountingEmbedder:
    return CountingEmbedder()


@pytest.fixture(scope="session")
def use_embedder() -> Embedder:
    """The real multilingual USE model, loaded once for the whole test session."""
    return get_embedder("use-multilingual")


@pytest.fixture(scope="session")
def english_embedder() -> Embedder:
    """The real default English model (kb.english_embedder: the packaged MiniLM), once."""
    from app.settings import KbSection

    return get_embedder(KbSection().english_embedder)


@pytest.fixture(scope="session")
def article_index(use_embedder: Embedder, english_embedder: Embedder) -> KbIndex:
    """All our articles indexed as the default configuration does (built once per session):
    the multilingual USE over every chunk plus MiniLM over the English chunks."""
    return build_corpus_index(
        article_corpus(ARTICLES), use_embedder, english_embedder=english_embedder
    )


@pytest.fixture(scope="session")
def article_kb(
    article_index: KbIndex,
    use_embedder: Embedder,
    english_embedder: Embedder,
    tmp_path_factory: pytest.TempPathFactory,
) -> KnowledgeBase:
    """A KnowledgeBase serving the real article index (as published by an ingest)."""
    from app.settings import KbSection
    from knowledge_base.service import search_params_from

    store = IndexStore(tmp_path_factory.mktemp("kb-index"))
    store.write_version(article_index)
    store.publish(article_index.manifest)
    return KnowledgeBase(
        store.root,
        use_embedder,
        search_params=search_params_from(KbSection()),
        english_embedder=english_embedder,
    )
