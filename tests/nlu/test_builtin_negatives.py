"""Out of scope without labelled out-of-scope data: the built-in off-topic negatives.

A vendor's training data usually has no `out_of_scope` examples; the embedded classifier then
trains that class from `nlu/off_topic.txt` and chooses its threshold on held-out ones.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from knowledge_base.embedders import HashingEmbedder
from nlu.embedded import (
    OFF_TOPIC_FILE,
    EmbeddedConfig,
    data_fingerprint,
    load_off_topic,
    oos_scores,
    split_off_topic,
    train_embedded,
)
from nlu.rasa_data import Example, NluData, load_nlu_data
from nlu.text import detect_language

from .conftest import RASA_PROJECT

OOS = "out_of_scope"


def _without_oos(data: NluData) -> NluData:
    return replace(data, examples=[e for e in data.examples if e.intent != OOS])


def test_the_shipped_off_topic_set_is_several_hundred_lines_in_both_languages() -> None:
    lines = load_off_topic()
    by_lang = {"zh": 0, "en": 0}
    for line in lines:
        by_lang[detect_language(line)] += 1
    assert len(lines) >= 300 and len(lines) == len(set(lines))
    assert min(by_lang.values()) >= 150, by_lang
    assert abs(by_lang["zh"] - by_lang["en"]) <= 0.1 * len(lines), by_lang


def test_the_off_topic_set_shares_no_line_with_our_nlu_data_or_held_out_tests() -> None:
    ours = load_nlu_data(RASA_PROJECT / "data").examples
    ours += load_nlu_data(RASA_PROJECT / "tests" / "test_nlu.yml").examples
    known = {e.text.strip().lower() for e in ours}
    assert not [line for line in load_off_topic() if line.lower() in known]


def test_held_out_negatives_are_bilingual_disjoint_and_deterministic() -> None:
    lines = load_off_topic()
    train, held = split_off_topic(lines, 0.3, seed=13)
    assert not set(train) & set(held) and len(train) + len(held) == len(lines)
    assert {detect_language(t) for t in held} == {"zh", "en"}
    assert 0.25 < len(held) / len(lines) < 0.35
    assert split_off_topic(lines, 0.3, seed=13) == (train, held)


def test_data_without_out_of_scope_still_gets_an_out_of_scope_class_and_threshold(
    tiny_data_dir: Path, hashing_config: EmbeddedConfig
) -> None:
    data = _without_oos(load_nlu_data(tiny_data_dir))
    model = train_embedded(data, hashing_config, embedder=HashingEmbedder())
    assert OOS in model.labels
    negatives = model.report.negatives
    assert negatives["file"] == OFF_TOPIC_FILE.name and negatives["train"] >= 300
    assert negatives["validation"] == 0  # cross-validation: all of them take part in the folds
    assert model.report.n_train == len(data.examples) + negatives["train"]
    assert model.parse("who will win the next election?").intent == OOS


def test_with_given_validation_data_the_held_out_negatives_choose_the_threshold(
    tiny_data_dir: Path, hashing_config: EmbeddedConfig
) -> None:
    data = _without_oos(load_nlu_data(tiny_data_dir))
    train = replace(data, examples=data.examples[::2])
    val = replace(data, examples=data.examples[1::2])
    model = train_embedded(train, hashing_config, validation=val, embedder=HashingEmbedder())
    negatives = model.report.negatives
    assert negatives["validation"] > 50 and negatives["train"] > 2 * negatives["validation"]
    assert model.report.n_validation == len(val.examples) + negatives["validation"]
    assert 0.0 <= model.threshold < 1.0
    assert model.parse("which football club has the most fans in spain").intent == OOS
    assert model.parse("where is my order SO-10023456").intent == "order_status"


def test_a_negative_that_the_vendor_trained_as_an_intent_is_dropped(
    hashing_config: EmbeddedConfig,
) -> None:
    # This bot answers weather questions: the off-topic weather lines must not fight it.
    weather = [
        "do i need an umbrella when i go out later",
        "出门要不要带伞",
        "what's the humidity right now",
        "明天最高气温多少度",
    ]
    data = NluData(
        examples=[Example(t, "weather") for t in weather]
        + [Example(t, "greet") for t in ("hello", "hi there", "你好", "您好")]
    )
    model = train_embedded(data, hashing_config, embedder=HashingEmbedder())
    assert model.report.negatives["dropped_as_in_scope"] >= len(weather)
    assert model.parse("出门要不要带伞").intent == "weather"


def test_data_with_its_own_out_of_scope_examples_uses_no_builtin_negatives(
    tiny_model_config_data: tuple[NluData, EmbeddedConfig],
) -> None:
    data, config = tiny_model_config_data
    model = train_embedded(data, config, embedder=HashingEmbedder())
    assert model.report.negatives == {}
    assert model.report.n_train == len(data.examples)


def test_builtin_negatives_can_be_switched_off(
    tiny_data_dir: Path, hashing_config: EmbeddedConfig
) -> None:
    data = _without_oos(load_nlu_data(tiny_data_dir))
    config = replace(hashing_config, builtin_negatives=False)
    model = train_embedded(data, config, embedder=HashingEmbedder())
    assert OOS not in model.labels and model.threshold == 0.0
    assert model.report.negatives == {}


def test_the_off_topic_file_is_part_of_the_model_fingerprint(
    tiny_data_dir: Path, hashing_config: EmbeddedConfig
) -> None:
    files = sorted(tiny_data_dir.glob("*.yml"))
    with_negatives = data_fingerprint(files, hashing_config)
    without = data_fingerprint(files, replace(hashing_config, builtin_negatives=False))
    assert with_negatives != without


@pytest.fixture
def tiny_model_config_data(
    tiny_data_dir: Path, hashing_config: EmbeddedConfig
) -> tuple[NluData, EmbeddedConfig]:
    return load_nlu_data(tiny_data_dir), hashing_config


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_our_data_without_out_of_scope_still_detects_held_out_off_topic_messages() -> None:
    """Real USE: nlu/rasa/data minus its out_of_scope examples, scored on test_nlu.yml.

    Measured: in-scope accuracy 0.954, out-of-scope recall 1.00; with its own
    out_of_scope examples the shipped model scores 0.95-0.97 (test_held_out_floor.py).
    """
    data = _without_oos(load_nlu_data(RASA_PROJECT / "data"))
    model = train_embedded(data, EmbeddedConfig())
    test = load_nlu_data(RASA_PROJECT / "tests" / "test_nlu.yml")
    gold = [e.intent for e in test.examples]
    predicted = [model.parse(e.text).intent for e in test.examples]
    in_scope, recall = oos_scores(gold, predicted, OOS)
    print(f"without labelled out_of_scope: in-scope {in_scope:.3f}, oos recall {recall:.3f}")
    assert model.report.negatives["train"] >= 300
    assert in_scope >= 0.92
    assert recall >= 0.85
