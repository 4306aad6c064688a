"""Ingestion: incremental embedding, atomic index swaps, every kind of bad file."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from knowledge_base.embedders import HashingEmbedder
from knowledge_base.ingest import Ingestor
from knowledge_base.models import KbArticle, KbChunk
from knowledge_base.service import EmbedderMismatchError, KnowledgeBase
from knowledge_base.store import IndexStore
from tests.conftest import Database
from tests.kb.conftest import CountingEmbedder, article, minimal_pdf

GPU = article(
    "gpu-artifacts.en",
    "Graphics card shows artifacts",
    "## Symptoms\n\nColoured dots, lines and flickering textures in games.\n\n"
    "## What to do\n\nReset the overclock, check the GPU temperature, run a VRAM test.",
    categories="[gpu]",
    extra="translation_of: gpu-artifacts\n",
)
GPU_ZH = article(
    "gpu-artifacts.zh",
    "显卡花屏",
    "## 现象\n\n游戏中出现彩色噪点、线条和闪烁的贴图。\n\n"
    "## 怎么办\n\n取消超频，检查显卡温度，运行显存测试。",
    language="zh",
    categories="[gpu]",
    extra="translation_of: gpu-artifacts\n",
)
PSU = article(
    "psu-sizing.en",
    "How many watts does my power supply need",
    "## Rule of thumb\n\nAdd the GPU board power and the CPU power, then 30% headroom. "
    "An RTX 4070 system runs well on a 650 W unit.",
    categories="[psu, gpu]",
)
WARRANTY = article(
    "warranty-policy.en",
    "Warranty policy",
    "## Coverage\n\nThe warranty starts on the delivery date. Physical damage voids it.",
)


def write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


@pytest.fixture
def articles_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "articles"
    write(folder, "gpu-artifacts.en.md", GPU)
    write(folder, "gpu-artifacts.zh.md", GPU_ZH)
    write(folder, "psu-sizing.en.md", PSU)
    write(folder, "README.md", "# How to write articles\n\nNot an article itself.")
    return folder


def make_ingestor(db: Database, tmp_path: Path, embedder: object, **kwargs: object) -> Ingestor:
    return Ingestor(
        db.sessions,
        tmp_path / "index",
        embedder,  # type: ignore[arg-type]
        chunk_size=kwargs.pop("chunk_size", 300),  # type: ignore[arg-type]
        chunk_overlap=40,
        **kwargs,  # type: ignore[arg-type]
    )


async def counts(db: Database) -> tuple[int, int]:
    async with db.sessions() as session:
        articles = await session.scalar(select(func.count()).select_from(KbArticle))
        chunks = await session.scalar(select(func.count()).select_from(KbChunk))
    return int(articles or 0), int(chunks or 0)


async def test_first_ingest_stores_metadata_in_the_database_and_publishes_an_index(
    db: Database, tmp_path: Path, articles_dir: Path, counting_embedder: CountingEmbedder
) -> None:
    ingestor = make_ingestor(db, tmp_path, counting_embedder)
    report = await ingestor.ingest(articles_dir)

    assert report.published and report.version == "v000001"
    assert sorted(report.added) == ["gpu-artifacts.en", "gpu-artifacts.zh", "psu-sizing.en"]
    assert report.skipped == []  # README.md is documentation, not an article
    articles, chunks = await counts(db)
    assert (articles, report.chunks) == (3, chunks)
    assert report.embedded_chunks == chunks == len(counting_embedder.texts)
    async with db.sessions() as session:
        row = await session.scalar(
            select(KbArticle).where(KbArticle.article_id == "gpu-artifacts.zh")
        )
        assert row is not None
        assert (row.language, row.categories, row.translation_of) == (
            "zh",
            ["gpu"],
            "gpu-artifacts",
        )
        assert row.source_url == "https://kb.example/gpu-artifacts.zh"
        assert row.embedder == "hashing" and row.index_version == "v000001"
    manifest = json.loads((tmp_path / "index" / "CURRENT").read_text())
    assert manifest["version"] == "v000001"
    assert (manifest["embedder"], manifest["dim"]) == ("hashing", 256)

    kb = KnowledgeBase(tmp_path / "index", counting_embedder)
    hits = kb.search("RTX 4070 power supply watts", k=3)
    assert hits[0].article_id == "psu-sizing.en"
    assert hits[0].url == "https://kb.example/psu-sizing.en"


async def test_reingest_embeds_only_new_and_changed_files_and_drops_removed_ones(
    db: Database, tmp_path: Path, articles_dir: Path, counting_embedder: CountingEmbedder
) -> None:
    ingestor = make_ingestor(db, tmp_path, counting_embedder)
    first = await ingestor.ingest(articles_dir)

    counting_embedder.reset()
    again = await ingestor.ingest(articles_dir)
    assert counting_embedder.calls == 0
    assert not again.published and again.version == first.version
    assert len(again.unchanged) == 3

    # Change one file, add one, remove one.
    write(articles_dir, "psu-sizing.en.md", PSU.replace("650 W", "750 W"))
    write(articles_dir, "policies/warranty-policy.en.md", WARRANTY)
    (articles_dir / "gpu-artifacts.zh.md").unlink()
    counting_embedder.reset()
    report = await ingestor.ingest(articles_dir)

    assert report.published and report.version == "v000002"
    assert report.added == ["warranty-policy.en"]
    assert report.updated == ["psu-sizing.en"]
    assert report.removed == ["gpu-artifacts.zh"]
    assert report.unchanged == ["gpu-artifacts.en"]
    embedded = "\n".join(counting_embedder.texts)
    assert "750 W" in embedded and "warranty starts" in embedded
    assert "Coloured dots" not in embedded  # the unchanged article was not embedded again
    assert await counts(db) == (3, report.chunks)

    kb = KnowledgeBase(tmp_path / "index", counting_embedder)
    index = kb.require()
    assert sorted(index.articles) == ["gpu-artifacts.en", "psu-sizing.en", "warranty-policy.en"]
    assert all(h.article_id != "gpu-artifacts.zh" for h in kb.search("显卡花屏", k=10))


async def test_a_searcher_keeps_working_during_reingest_and_switches_to_the_new_version(
    db: Database, tmp_path: Path, articles_dir: Path
) -> None:
    embedder = HashingEmbedder()
    ingestor = make_ingestor(db, tmp_path, embedder)
    await ingestor.ingest(articles_dir)
    kb = KnowledgeBase(tmp_path / "index", embedder, reload_interval_s=0.0)
    assert kb.require().version == "v000001"

    errors: list[BaseException] = []
    versions_seen: set[str] = set()
    stop = threading.Event()

    def search_loop() -> None:
        while not stop.is_set():
            try:
                index = kb.require()
                hits = kb.search("power supply watts", k=5)
                versions_seen.add(index.version)
                # Every hit belongs to a complete version (never a half-written one).
                assert hits and all(h.article_id in kb.require().articles for h in hits)
            except BaseException as exc:
                errors.append(exc)
                return

    thread = threading.Thread(target=search_loop)
    thread.start()
    try:
        # What a crashed ingest leaves behind (a half-written version) is never loaded.
        crashed = tmp_path / "index" / "versions" / ".tmp-v000002-crashed"
        write(crashed, "faiss.index", b"garbage")
        for n in range(3):
            write(
                articles_dir,
                f"extra-{n}.en.md",
                WARRANTY.replace("warranty-policy.en", f"extra-{n}.en"),
            )
            await ingestor.ingest(articles_dir)
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert errors == []
    assert kb.require().version == "v000004"
    assert "extra-2.en" in kb.require().articles
    assert "v000001" in versions_seen


async def test_the_pointer_is_checked_at_most_once_per_interval(
    db: Database, tmp_path: Path, articles_dir: Path
) -> None:
    embedder = HashingEmbedder()
    ingestor = make_ingestor(db, tmp_path, embedder)
    await ingestor.ingest(articles_dir)
    now = [100.0]
    kb = KnowledgeBase(
        tmp_path / "index", embedder, reload_interval_s=1.0, monotonic=lambda: now[0]
    )
    assert kb.require().version == "v000001"
    write(articles_dir, "warranty-policy.en.md", WARRANTY)
    await ingestor.ingest(articles_dir)
    now[0] += 0.5
    assert kb.require().version == "v000001"  # not checked yet
    now[0] += 0.6
    assert kb.require().version == "v000002"


BAD_FILES = [
    ("empty.md", b"", "empty file"),
    ("blank.txt", b"   \n\n  ", "empty file"),
    ("binary.txt", bytes(range(256)) * 8, "binary file"),
    ("image.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 64, "binary file"),
    ("huge.md", ("# Big\n\n" + "lots of text " * 400).encode(), "file too large"),
    ("unclosed.md", b"---\nid: x\ntitle: never closed\n\n## Body\n\ntext", "broken front matter"),
    (
        "badyaml.md",
        b"---\nid: [unclosed\ntitle: : :\n---\n\n## Body\n\ntext",
        "broken front matter",
    ),
    ("notamap.md", b"---\n- just\n- a list\n---\n\nSome body text here.", "broken front matter"),
    (
        "duplicate.md",
        article("psu-sizing.en", "Another PSU article", "## Body\n\nDifferent text.").encode(),
        "duplicate id 'psu-sizing.en' (also in psu-sizing.en.md)",
    ),
    (
        "french.md",
        article("french.fr", "Carte graphique", "## Texte\n\nBonjour.", language="fr").encode(),
        "unknown language 'fr'",
    ),
    (
        "french.txt",
        "Bonjour, ma carte graphique ne fonctionne plus depuis la mise à jour du pilote, "
        "elle affiche des lignes colorées et le ventilateur tourne très fort.".encode(),
        "unknown language",
    ),
    (
        "japanese.txt",
        "グラフィックカードが動作しません。ドライバーを更新しました。".encode(),
        "unknown language",
    ),
    ("broken.pdf", b"%PDF-1.4\nthis is not really a pdf", "PDF"),
    ("notes.docx", b"PK\x03\x04 word document", "unsupported file type"),
    (
        "badcategory.md",
        article("x.en", "X", "## Body\n\nText about GPUs.", categories="[gpus]").encode(),
        "unknown product categories",
    ),
]


@pytest.mark.parametrize(("name", "content", "reason"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
async def test_a_bad_file_is_skipped_with_its_reason_and_the_index_stays_intact(
    db: Database,
    tmp_path: Path,
    articles_dir: Path,
    name: str,
    content: bytes,
    reason: str,
) -> None:
    embedder = HashingEmbedder()
    ingestor = make_ingestor(db, tmp_path, embedder, max_file_bytes=4000)
    first = await ingestor.ingest(articles_dir)
    kb = KnowledgeBase(tmp_path / "index", embedder, reload_interval_s=0.0)
    before = [h.article_id for h in kb.search("power supply watts", k=3)]

    write(articles_dir, name, content)
    report = await ingestor.ingest(articles_dir)

    assert [s.path for s in report.skipped] == [name]
    assert reason in report.skipped[0].reason
    assert report.version == first.version and not report.published
    assert sorted(kb.require().articles) == sorted(first.added)
    assert [h.article_id for h in kb.search("power supply watts", k=3)] == before
    assert await counts(db) == (3, first.chunks)


async def test_a_file_that_breaks_keeps_its_previous_version_in_the_index(
    db: Database, tmp_path: Path, articles_dir: Path
) -> None:
    embedder = HashingEmbedder()
    ingestor = make_ingestor(db, tmp_path, embedder)
    await ingestor.ingest(articles_dir)
    write(articles_dir, "psu-sizing.en.md", "---\nid: psu-sizing.en\ntitle: [broken\n---\nbody")
    write(articles_dir, "warranty-policy.en.md", WARRANTY)
    report = await ingestor.ingest(articles_dir)
    assert report.published and report.added == ["warranty-policy.en"]
    assert [(s.path, s.kept_previous) for s in report.skipped] == [("psu-sizing.en.md", True)]
    kb = KnowledgeBase(tmp_path / "index", embedder)
    assert "psu-sizing.en" in kb.require().articles
    assert kb.search("RTX 4070 650 W power supply", k=1)[0].article_id == "psu-sizing.en"


async def test_html_plain_text_and_pdf_are_ingested_with_detected_languages(
    db: Database, tmp_path: Path
) -> None:
    folder = tmp_path / "mixed"
    write(
        folder,
        "monitor.html",
        "<html><head><title>Monitor says no signal</title>"
        '<meta name="categories" content="monitor, gpu">'
        '<link rel="canonical" href="https://kb.example/no-signal"></head><body>'
        "<h1>Monitor says no signal</h1><p>Check that the cable is plugged into the graphics "
        "card and not into the motherboard, then select the right input source.</p>"
        "<h2>Still nothing</h2><ul><li>Try another cable</li><li>Try DisplayPort</li></ul>"
        "<script>var tracking = 1;</script></body></html>",
    )
    write(
        folder,
        "风扇.txt",
        "显卡风扇不转怎么办\n\n很多显卡在低温时会停转风扇，这是正常的静音模式。"
        "温度超过六十度风扇仍然不转，请联系客服。",
    )
    write(
        folder,
        "ups.pdf",
        minimal_pdf(
            [
                "UPS keeps beeping",
                "A UPS beeps every few seconds when it runs on battery power.",
                "A continuous tone means overload: unplug the printer and the heater.",
            ]
        ),
    )
    embedder = HashingEmbedder()
    report = await make_ingestor(db, tmp_path, embedder).ingest(folder)
    assert report.skipped == []
    assert sorted(report.added) == ["monitor", "ups", "风扇"]
    async with db.sessions() as session:
        rows = {r.article_id: r for r in (await session.scalars(select(KbArticle))).all()}
    assert (rows["monitor"].language, rows["monitor"].file_format) == ("en", "html")
    assert rows["monitor"].title == "Monitor says no signal"
    assert rows["monitor"].categories == ["monitor", "gpu"]
    assert rows["monitor"].source_url == "https://kb.example/no-signal"
    assert (rows["风扇"].language, rows["风扇"].title) == ("zh", "显卡风扇不转怎么办")
    assert (rows["ups"].language, rows["ups"].file_format) == ("en", "pdf")
    kb = KnowledgeBase(tmp_path / "index", embedder)
    index = kb.require()
    assert "tracking" not in " ".join(c.text for c in index.chunks)
    assert kb.search("UPS continuous tone overload", k=1, mode="lexical")[0].article_id == "ups"


async def test_switching_the_embedder_re_embeds_everything_and_never_mixes(
    db: Database, tmp_path: Path, articles_dir: Path
) -> None:
    old = HashingEmbedder()
    await make_ingestor(db, tmp_path, old).ingest(articles_dir)
    kb_old = KnowledgeBase(tmp_path / "index", old, reload_interval_s=0.0)
    assert kb_old.require().embedder == "hashing"

    class OtherEmbedder(CountingEmbedder):
        @property
        def name(self) -> str:
            return "other-model"

    new = OtherEmbedder(HashingEmbedder(dim=64))
    report = await make_ingestor(db, tmp_path, new).ingest(articles_dir)
    assert report.full_reembed_reason == "embedder changed from 'hashing' to 'other-model'"
    assert report.embedded_chunks == report.chunks == len(new.texts)
    manifest = IndexStore(tmp_path / "index").current_manifest()
    assert manifest is not None and (manifest["embedder"], manifest["dim"]) == ("other-model", 64)
    with pytest.raises(EmbedderMismatchError, match="re-embed"):
        kb_old.require()
    assert KnowledgeBase(tmp_path / "index", new).search("显卡花屏", k=1)


async def test_ingest_reports_progress_per_stage(
    db: Database, tmp_path: Path, articles_dir: Path
) -> None:
    events: list[tuple[str, int, int]] = []
    await make_ingestor(db, tmp_path, HashingEmbedder()).ingest(
        articles_dir, lambda stage, done, total: events.append((stage, done, total))
    )
    stages = {e[0] for e in events}
    assert stages == {"read", "embed", "index"}
    assert ("read", 3, 3) in events  # three articles (README.md is not one)
    embed = [e for e in events if e[0] == "embed"]
    assert embed[-1][1] == embed[-1][2]


async def test_old_versions_are_garbage_collected(
    db: Database, tmp_path: Path, articles_dir: Path
) -> None:
    ingestor = make_ingestor(db, tmp_path, HashingEmbedder(), keep_versions=2)
    for n in range(4):
        write(articles_dir, f"extra-{n}.en.md", WARRANTY.replace("warranty-policy.en", f"x-{n}.en"))
        await ingestor.ingest(articles_dir)
    versions = sorted(p.name for p in (tmp_path / "index" / "versions").iterdir())
    assert versions == ["v000003", "v000004"]
