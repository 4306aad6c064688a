"""The second, English-only dense retriever (kb.english_embedder) fused in for English queries."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from knowledge_base.embedders import HashingEmbedder
from knowledge_base.evaluation import build_corpus_index
from knowledge_base.index import KbIndex
from knowledge_base.search import SearchParams, english_query_vectors, search_index
from knowledge_base.service import KnowledgeBase
from knowledge_base.store import IndexStore
from tests.conftest import Database
from tests.kb.conftest import CountingEmbedder
from tests.kb.test_ingest import articles_dir, make_ingestor  # noqa: F401  (fixture)


class EnglishDouble(CountingEmbedder):
    """A second test model with its own name and dimension."""

    def __init__(self, name: str = "english-double", dim: int = 64) -> None:
        super().__init__(HashingEmbedder(dim=dim))
        self._name = name

    @property
    def name(self) -> str:
        return self._name


CORPUS = [
    {"id": "gpu.en", "title": "GPU artifacts", "text": "Coloured dots and lines in games."},
    {"id": "gpu.zh", "title": "显卡花屏", "text": "游戏中出现彩色噪点和线条。", "lang": "zh"},
    {"id": "psu.en", "title": "PSU sizing", "text": "Add GPU and CPU power plus headroom."},
]


@pytest.fixture
def index() -> KbIndex:
    return build_corpus_index(CORPUS, HashingEmbedder(), english_embedder=EnglishDouble())


def test_the_english_index_holds_only_the_english_chunks(index: KbIndex) -> None:
    assert index.english is not None
    english_articles = {index.chunks[r].article_id for r in index.english_rows}
    assert english_articles == {"gpu.en", "psu.en"}
    assert index.manifest["english_embedder"] == "english-double"
    assert index.english.dim == 64 and index.dim == 256


def test_only_english_queries_are_embedded_by_the_english_model() -> None:
    model = EnglishDouble()
    vectors = english_query_vectors(model, ["my gpu shows dots", "显卡花屏了怎么办"])
    assert vectors[0] is not None and vectors[1] is None
    assert model.texts == ["my gpu shows dots"]
    assert english_query_vectors(None, ["my gpu shows dots"]) == [None]


def test_an_english_query_fuses_three_rankings_and_a_chinese_one_two(index: KbIndex) -> None:
    params = SearchParams(rrf_k=60, english_weight=1.0)
    queries = ["coloured dots in games", "显卡彩色噪点"]
    main = HashingEmbedder().encode(queries)
    english = english_query_vectors(EnglishDouble(), queries)
    en_hits, zh_hits = search_index(
        index, queries, main, k=3, params=params, english_vectors=english
    )
    assert en_hits[0].article_id == "gpu.en" and en_hits[0].english_rank == 1
    assert en_hits[0].extra["rrf_max"] == pytest.approx(3 / 61)
    assert all(h.english_rank is None for h in zh_hits)
    assert zh_hits[0].extra["rrf_max"] == pytest.approx(2 / 61)
    # The top English hit's fused score is the sum of its three reciprocal ranks.
    top = en_hits[0]
    assert top.dense_rank is not None and top.lexical_rank is not None
    expected = 1 / (60 + top.dense_rank) + 1 / (60 + top.lexical_rank) + 1 / 61
    assert top.score == pytest.approx(expected)


def test_weight_zero_or_another_mode_leaves_the_english_ranking_out(index: KbIndex) -> None:
    queries = ["coloured dots in games"]
    main = HashingEmbedder().encode(queries)
    english = english_query_vectors(EnglishDouble(), queries)
    for params in (SearchParams(english_weight=0.0), SearchParams(mode="dense")):
        hits = search_index(index, queries, main, k=3, params=params, english_vectors=english)[0]
        assert all(h.english_rank is None for h in hits)


def test_filters_apply_to_the_english_ranking_too(index: KbIndex) -> None:
    queries = ["coloured dots in games"]
    main = HashingEmbedder().encode(queries)
    english = english_query_vectors(EnglishDouble(), queries)
    hits = search_index(
        index, queries, main, k=3, lang="zh", params=SearchParams(), english_vectors=english
    )[0]
    assert [h.article_id for h in hits] == ["gpu.zh"] and hits[0].english_rank is None


def test_the_english_index_survives_save_and_load(index: KbIndex, tmp_path: Path) -> None:
    index.save(tmp_path / "v1")
    loaded = KbIndex.load(tmp_path / "v1")
    assert loaded.english is not None and index.english is not None
    assert loaded.english.embedder == "english-double"
    assert np.array_equal(loaded.english.chunk_ids, index.english.chunk_ids)
    assert np.allclose(loaded.english.vectors, index.english.vectors)


def test_an_index_without_english_vectors_loads_and_searches_as_before(tmp_path: Path) -> None:
    plain = build_corpus_index(CORPUS, HashingEmbedder())
    plain.save(tmp_path / "v1")
    loaded = KbIndex.load(tmp_path / "v1")
    assert loaded.english is None and "english_embedder" not in loaded.manifest
    queries = ["coloured dots in games"]
    english = english_query_vectors(EnglishDouble(), queries)
    hits = search_index(
        loaded, queries, HashingEmbedder().encode(queries), english_vectors=english
    )[0]
    assert hits[0].english_rank is None


async def test_ingest_embeds_english_chunks_with_the_english_model_and_reuses_them(
    db: Database,
    tmp_path: Path,
    articles_dir: Path,  # noqa: F811
) -> None:
    english = EnglishDouble()
    first = await make_ingestor(db, tmp_path, HashingEmbedder(), english_embedder=english).ingest(
        articles_dir
    )
    manifest = IndexStore(tmp_path / "index").current_manifest()
    assert manifest is not None and manifest["english_embedder"] == "english-double"
    assert english.texts and not any("显卡" in t for t in english.texts)  # English only
    assert manifest["english_chunks"] == len(english.texts) < first.chunks

    english.reset()
    again = await make_ingestor(db, tmp_path, HashingEmbedder(), english_embedder=english).ingest(
        articles_dir
    )
    assert again.version == first.version and english.texts == []  # nothing to do

    kb = KnowledgeBase(
        tmp_path / "index", HashingEmbedder(), reload_interval_s=0.0, english_embedder=english
    )
    hits = kb.search("graphics card shows coloured dots", k=3)
    assert hits and hits[0].english_rank is not None
    assert kb.search("显卡花屏", k=3)[0].english_rank is None


async def test_switching_the_english_model_re_embeds_only_the_english_vectors(
    db: Database,
    tmp_path: Path,
    articles_dir: Path,  # noqa: F811
) -> None:
    main = CountingEmbedder()
    await make_ingestor(db, tmp_path, main, english_embedder=EnglishDouble()).ingest(articles_dir)
    main.reset()
    other = EnglishDouble("english-other", dim=32)
    report = await make_ingestor(db, tmp_path, main, english_embedder=other).ingest(articles_dir)
    assert report.published and report.embedded_chunks == 0 and main.texts == []
    manifest = IndexStore(tmp_path / "index").current_manifest()
    assert manifest is not None
    assert (manifest["english_embedder"], manifest["english_dim"]) == ("english-other", 32)

    # Turning it off drops the English index on the next ingest.
    report = await make_ingestor(db, tmp_path, main).ingest(articles_dir)
    manifest = IndexStore(tmp_path / "index").current_manifest()
    assert manifest is not None and "english_embedder" not in manifest


async def test_a_served_index_with_another_english_model_is_searched_without_it(
    db: Database,
    tmp_path: Path,
    articles_dir: Path,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    await make_ingestor(db, tmp_path, HashingEmbedder(), english_embedder=EnglishDouble()).ingest(
        articles_dir
    )
    kb = KnowledgeBase(
        tmp_path / "index",
        HashingEmbedder(),
        reload_interval_s=0.0,
        english_embedder=EnglishDouble("english-other", dim=32),
    )
    with caplog.at_level("WARNING"):
        hits = kb.search("graphics card shows coloured dots", k=3)
    assert hits and all(h.english_rank is None for h in hits)
    assert "kb ingest" in caplog.text


def test_search_params_from_settings_turn_the_english_weight_off_without_a_model() -> None:
    from app.settings import KbSection
    from knowledge_base.service import search_params_from

    default = KbSection()
    assert default.english_embedder == "sentence-transformers:minilm"
    assert search_params_from(default).english_weight == default.english_weight > 0
    off = replace(search_params_from(default.model_copy(update={"english_embedder": ""})))
    assert off.english_weight == 0.0
