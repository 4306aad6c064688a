"""`hwcrm kb evaluate` / `export-corpus` and the metric definitions, on hand-checked data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from app import cli_kb
from knowledge_base.embedders import Embedder
from knowledge_base.evaluation import (
    METRIC_KEYS,
    average_precision,
    build_corpus_index,
    evaluate_index,
    reciprocal_rank,
    write_jsonl,
)

runner = CliRunner()


def kb_cli() -> typer.Typer:
    app = typer.Typer()
    cli_kb.register(app)
    return app


def test_metric_definitions_by_hand() -> None:
    ranked = ["a", "x", "b", "y"]
    assert reciprocal_rank(ranked, {"b"}) == pytest.approx(1 / 3)
    assert reciprocal_rank(ranked, {"z"}) == 0.0
    # relevant a (rank 1) and b (rank 3): (1/1 + 2/3) / 2
    assert average_precision(ranked, {"a", "b"}) == pytest.approx((1 + 2 / 3) / 2)
    # a relevant document that is never retrieved counts as precision 0
    assert average_precision(ranked, {"a", "z"}) == pytest.approx(0.5)


TINY_CORPUS = [
    {"id": "d1", "title": "", "text": "alpha apple"},
    {"id": "d2", "title": "", "text": "beta banana"},
    {"id": "d3", "title": "", "text": "gamma grape grape"},
    {"id": "d4", "title": "", "text": "delta date"},
]
TINY_QUERIES = [
    {"query": "alpha", "relevant": ["d1"]},  # rank 1: RR 1, AP 1
    {"query": "banana", "relevant": ["d3"]},  # d3 never retrieved: RR 0, AP 0
    {"query": "grape", "relevant": ["d3", "d4"]},  # d3 rank 1, d4 missing: RR 1, AP 0.5
    {"query": "apple grape", "relevant": ["d1"]},  # d3 (tf 2) before d1: RR 0.5, AP 0.5
    {"query": "nothing", "relevant": ["not-in-corpus"]},  # not scored
]


def test_evaluate_command_on_a_tiny_corpus_gives_the_hand_computed_numbers(
    tmp_path: Path,
) -> None:
    corpus, queries, output = tmp_path / "c.jsonl", tmp_path / "q.jsonl", tmp_path / "m.json"
    write_jsonl(corpus, TINY_CORPUS)
    write_jsonl(queries, TINY_QUERIES)
    result = runner.invoke(
        kb_cli(),
        [
            "kb",
            "evaluate",
            "--corpus",
            str(corpus),
            "--queries",
            str(queries),
            "--embedder",
            "hashing",
            "--mode",
            "lexical",
            "--output",
            str(output),
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads(output.read_text())
    assert list(metrics) == list(METRIC_KEYS)
    assert metrics["hit@1"] == pytest.approx(2 / 4)
    assert metrics["hit@3"] == pytest.approx(3 / 4)
    assert metrics["hit@10"] == pytest.approx(3 / 4)
    assert metrics["mrr"] == pytest.approx((1 + 0 + 1 + 0.5) / 4)
    assert metrics["map"] == pytest.approx((1 + 0 + 0.5 + 0.5) / 4)
    assert 0 <= metrics["latency_ms_p50"] <= metrics["latency_ms_p95"]
    assert "hit@3" in result.output and "1 queries had no relevant document" in result.output


def test_evaluation_works_when_documents_and_queries_are_in_different_languages(
    use_embedder: Embedder,
) -> None:
    corpus = [
        {"id": "fan", "title": "显卡风扇不转", "text": "显卡在低温时风扇停转是正常的静音模式。"},
        {
            "id": "battery",
            "title": "笔记本电池不充电",
            "text": "插着电源却显示未充电，检查充电器功率和电池保护模式。",
        },
        {"id": "ups", "title": "UPS 一直响", "text": "UPS 每隔几秒响一声说明正在使用电池供电。"},
    ]
    queries = [
        {"query": "graphics card fan does not spin", "relevant": ["fan"]},
        {"query": "laptop plugged in but not charging", "relevant": ["battery"]},
        {"query": "my UPS keeps beeping", "relevant": ["ups"]},
    ]
    index = build_corpus_index(corpus, use_embedder)
    assert {a.language for a in index.article_list} == {"zh"}
    result = evaluate_index(index, use_embedder, queries, mode="dense")
    assert result.metrics["hit@1"] == 1.0 and result.metrics["map"] == 1.0


def test_long_corpus_texts_are_chunked_and_aggregated_to_documents() -> None:
    from knowledge_base.embedders import HashingEmbedder

    long_text = "\n\n".join(f"Paragraph {i} about fans. " + "filler " * 40 for i in range(12))
    corpus = [{"id": "long", "title": "Fans", "text": long_text + "\n\nzebra crossing"}]
    corpus.append({"id": "short", "title": "Other", "text": "nothing to see"})
    index = build_corpus_index(corpus, HashingEmbedder(), chunk_size=300, chunk_overlap=50)
    assert len(index.rows_of_article("long")) > 5
    result = evaluate_index(
        index, HashingEmbedder(), [{"query": "zebra", "relevant": ["long"]}], mode="lexical"
    )
    assert result.metrics["mrr"] == 1.0


def test_export_corpus_turns_our_articles_into_the_evaluation_format(tmp_path: Path) -> None:
    output = tmp_path / "corpus.jsonl"
    result = runner.invoke(
        kb_cli(), ["kb", "export-corpus", "--output", str(output), "--lang", "en"]
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(rows) >= 80 and all(r["lang"] == "en" for r in rows)
    by_id = {r["id"]: r for r in rows}
    assert by_id["gpu-artifacts.en"]["title"] and "##" in by_id["gpu-artifacts.en"]["text"]
    assert not any(r["id"].lower().startswith("readme") for r in rows)


def test_the_sentence_transformers_engine_runs_the_packaged_minilm_for_real() -> None:
    from knowledge_base.embedders import get_embedder

    minilm = get_embedder("sentence-transformers:minilm")
    corpus = [
        {"id": "fan", "title": "GPU fan not spinning", "text": "Zero RPM mode stops the fans."},
        {"id": "ups", "title": "UPS beeping", "text": "A beep every few seconds: on battery."},
        {"id": "ssd", "title": "SSD not detected", "text": "Check the M.2 slot and the BIOS."},
    ]
    queries = [
        {"query": "my graphics card fans stopped", "relevant": ["fan"]},
        {"query": "the battery backup keeps making noises", "relevant": ["ups"]},
        {"query": "new nvme drive does not show up", "relevant": ["ssd"]},
    ]
    index = build_corpus_index(corpus, minilm)
    assert index.manifest["embedder"] == "sentence-transformers:minilm"
    assert index.dim == 384
    assert evaluate_index(index, minilm, queries, mode="dense").metrics["hit@1"] == 1.0
