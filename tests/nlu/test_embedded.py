"""The embedded classifier: training, out-of-scope threshold, persistence with a fingerprint."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from knowledge_base.embedders import HashingEmbedder
from nlu.embedded import (
    FINGERPRINT_FILE,
    MODEL_FILE,
    EmbeddedConfig,
    EmbeddedModel,
    choose_threshold,
    decide,
    fit_temperature,
    load_or_train,
    train_embedded,
)
from nlu.rasa_data import load_nlu_data


def test_tiny_model_classifies_both_languages(tiny_model: EmbeddedModel) -> None:
    cases = {
        "hello there": "greet",
        "你好呀": "greet",
        "where is my order": "order_status",
        "订单到哪了": "order_status",
        "my gpu fan is not spinning": "report_fault",
        "显卡风扇坏了": "report_fault",
    }
    for text, intent in cases.items():
        assert tiny_model.parse(text).intent == intent, text


def test_parse_gives_calibrated_ranking_and_entities(tiny_model: EmbeddedModel) -> None:
    result = tiny_model.parse("我的显卡风扇不转了 订单so10023456")
    assert result.backend == "embedded"
    assert abs(sum(r.confidence for r in result.ranking) - 1.0) < 1e-6  # 4 labels: all listed
    assert result.ranking == sorted(result.ranking, key=lambda r: -r.confidence)
    assert result.first("product_category") == "gpu"
    assert result.first("order_number") == "SO-10023456"
    assert result.latency_ms is not None


def test_training_report_records_the_validation_choice(tiny_model: EmbeddedModel) -> None:
    report = tiny_model.report
    assert report.validation.startswith("cv-")
    assert report.feature_set in ("embedding", "embedding+char")
    assert len(report.candidates) == 2  # two feature sets × one C
    assert 0.0 <= tiny_model.threshold < 1.0
    assert tiny_model.temperature > 0


def test_out_of_scope_is_a_class_and_a_threshold(tiny_model: EmbeddedModel) -> None:
    assert "out_of_scope" in tiny_model.labels
    assert tiny_model.parse("讲个笑话吧").intent == "out_of_scope"


def test_threshold_turns_unsure_in_scope_answers_into_out_of_scope() -> None:
    probs = np.array([[0.5, 0.3, 0.2], [0.9, 0.05, 0.05], [0.1, 0.1, 0.8]])
    labels = ["a", "b", "out_of_scope"]
    assert decide(probs, labels, "out_of_scope", 0.6) == ["out_of_scope", "a", "out_of_scope"]
    assert decide(probs, labels, "out_of_scope", 0.0) == ["a", "a", "out_of_scope"]


def test_threshold_is_chosen_to_balance_in_scope_accuracy_and_oos_recall() -> None:
    labels = ["a", "b", "out_of_scope"]
    probs = np.array(
        [
            [0.9, 0.05, 0.05],  # a, sure
            [0.05, 0.9, 0.05],  # b, sure
            [0.8, 0.1, 0.1],  # a, sure
            [0.45, 0.35, 0.2],  # oos that looks like a (unsure)
            [0.4, 0.4, 0.2],  # oos that looks like a/b (unsure)
        ]
    )
    gold = ["a", "b", "a", "out_of_scope", "out_of_scope"]
    threshold, objective = choose_threshold(probs, labels, gold, "out_of_scope")
    assert 0.45 < threshold <= 0.8
    assert objective == 1.0
    assert choose_threshold(probs, labels, ["a", "b", "a", "a", "a"], "out_of_scope")[0] == 0.0


def test_temperature_scaling_fits_overconfident_logits() -> None:
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 3, 300)
    logits = rng.normal(0, 1, (300, 3))
    logits[np.arange(300), gold] += 1.0
    temperature = fit_temperature(logits * 10, gold)  # ten times too confident
    assert 5 < temperature < 20


def test_given_validation_data_is_used_instead_of_cross_validation(
    tiny_data_dir: Path, hashing_config: EmbeddedConfig
) -> None:
    data = load_nlu_data(tiny_data_dir)
    train = type(data)(examples=data.examples[::2])
    val = type(data)(examples=data.examples[1::2])
    model = train_embedded(train, hashing_config, validation=val, embedder=HashingEmbedder())
    assert model.report.validation == "given"
    assert model.report.n_train == len(train.examples)
    refit = train_embedded(
        train,
        hashing_config,
        validation=val,
        refit_with_validation=True,
        embedder=HashingEmbedder(),
    )
    assert refit.report.n_train == len(data.examples)


def test_persisted_model_is_reused_until_the_data_change(
    tiny_data_dir: Path, hashing_config: EmbeddedConfig, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(tiny_data_dir, data_dir)
    model_dir = tmp_path / "model"
    embedder = HashingEmbedder()

    first, trained = load_or_train(data_dir, model_dir, hashing_config, embedder=embedder)
    assert trained and (model_dir / MODEL_FILE).is_file()
    stored = json.loads((model_dir / FINGERPRINT_FILE).read_text(encoding="utf-8"))
    assert stored["fingerprint"] == first.fingerprint and stored["embedder"] == "hashing"

    started = time.perf_counter()
    again, trained = load_or_train(data_dir, model_dir, hashing_config, embedder=embedder)
    assert not trained
    assert time.perf_counter() - started < 5
    assert again.fingerprint == first.fingerprint
    assert again.parse("where is my order SO-10023456").first("order_number") == "SO-10023456"
    assert again.labels == first.labels

    # The data change → the fingerprint no longer matches → retrain.
    with (data_dir / "nlu.yml").open("a", encoding="utf-8") as handle:
        handle.write(
            "- intent: goodbye\n  examples: |\n    - bye\n    - see you\n    - 再见\n    - 拜拜\n"
        )
    changed, trained = load_or_train(data_dir, model_dir, hashing_config, embedder=embedder)
    assert trained and changed.fingerprint != first.fingerprint
    assert "goodbye" in changed.labels

    # A different configuration (e.g. another embedder or grid) also retrains.
    other = EmbeddedConfig(embedder="hashing", c_grid=(3.0,), cv_folds=4)
    _, trained = load_or_train(data_dir, model_dir, other, embedder=embedder)
    assert trained


def test_a_corrupt_model_file_is_retrained_not_fatal(
    tiny_data_dir: Path, hashing_config: EmbeddedConfig, tmp_path: Path
) -> None:
    model_dir = tmp_path / "model"
    load_or_train(tiny_data_dir, model_dir, hashing_config, embedder=HashingEmbedder())
    (model_dir / MODEL_FILE).write_bytes(b"not a joblib file")
    model, trained = load_or_train(
        tiny_data_dir, model_dir, hashing_config, embedder=HashingEmbedder()
    )
    assert trained
    assert model.parse("hello").intent == "greet"


def test_force_retrains(
    tiny_data_dir: Path, hashing_config: EmbeddedConfig, tmp_path: Path
) -> None:
    load_or_train(tiny_data_dir, tmp_path, hashing_config, embedder=HashingEmbedder())
    _, trained = load_or_train(
        tiny_data_dir, tmp_path, hashing_config, embedder=HashingEmbedder(), force=True
    )
    assert trained


def test_one_intent_is_not_enough(hashing_config: EmbeddedConfig) -> None:
    from nlu.rasa_data import Example, NluData

    with pytest.raises(ValueError, match="two intents"):
        train_embedded(
            NluData(examples=[Example("hi", "greet"), Example("hello", "greet")]),
            hashing_config,
            embedder=HashingEmbedder(),
        )
