"""The bot's answer: calibrated confidence, threshold, same-language article, citation."""

from __future__ import annotations

import json

from knowledge_base.answer import DEFAULT_CALIBRATION_FILE, FEATURES, load_calibration
from knowledge_base.service import KnowledgeBase


def test_off_topic_questions_get_no_confident_answer(article_kb: KnowledgeBase) -> None:
    for query in ("how do I bake bread", "怎么做蛋糕", "what is the meaning of life"):
        answer = article_kb.answer(query)
        assert not answer.confident, (query, answer.confidence, answer.article_id)
        assert answer.confidence < article_kb.answer_threshold


def test_a_clear_question_gets_a_confident_answer_with_a_citation(
    article_kb: KnowledgeBase,
) -> None:
    answer = article_kb.answer("我的显卡风扇不转了")
    assert answer.confident and answer.confidence >= article_kb.answer_threshold
    assert answer.article_id == "gpu-fan-not-spinning.zh"
    assert answer.language == "zh" and answer.passage
    assert answer.url and answer.title


def test_the_same_language_article_of_the_best_topic_is_preferred(
    article_kb: KnowledgeBase,
) -> None:
    english = article_kb.answer("GPU fans are not spinning at idle, is it broken?")
    assert english.article_id == "gpu-fan-not-spinning.en"
    chinese = article_kb.answer("GPU fans are not spinning at idle, is it broken?", lang="zh")
    assert chinese.article_id == "gpu-fan-not-spinning.zh"
    assert chinese.language == "zh"
    assert any("\u4e00" <= ch <= "\u9fff" for ch in chinese.passage or "")


def test_the_threshold_is_configurable(article_kb: KnowledgeBase) -> None:
    answer = article_kb.answer("my pc randomly shuts down when gaming")
    old = article_kb.answer_threshold
    try:
        article_kb.answer_threshold = 0.999
        assert not article_kb.answer("my pc randomly shuts down when gaming").confident
        article_kb.answer_threshold = 0.0
        assert article_kb.answer("how do I bake bread").confident
    finally:
        article_kb.answer_threshold = old
    assert 0.0 <= answer.confidence <= 1.0


def test_calibration_parameters_for_the_default_embedder_are_in_the_repo() -> None:
    data = json.loads(DEFAULT_CALIBRATION_FILE.read_text())
    entry = data["use-multilingual"]
    assert entry["features"] == list(FEATURES)
    assert "kb_queries_dev.jsonl" in entry["fitted_on"]
    assert "kb_queries_test" not in entry["fitted_on"]
    calibration = load_calibration(DEFAULT_CALIBRATION_FILE, "use-multilingual")
    assert len(calibration.coef) == len(FEATURES)
