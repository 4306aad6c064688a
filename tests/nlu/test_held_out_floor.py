"""CI floor: the shipped embedded model on our held-out set (nlu/rasa/tests/test_nlu.yml).

Uses the real multilingual embedder and the production configuration; the trained model is
cached by fingerprint in var/nlu/embedded (shared with `hwcrm nlu train-embedded`), so it
trains once per data change. The Rasa floor is in test_rasa_integration.py.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import pytest

from nlu.embedded import EmbeddedConfig, EmbeddedModel, load_or_train
from nlu.rasa_data import load_nlu_data
from nlu.text import detect_language

from .conftest import RASA_PROJECT, ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

# Measured 0.971 (zh) and 0.953-0.972 (en, depending on the feature set chosen by
# cross-validation) on 105/106 messages; the floor leaves a margin of 3-5 messages.
EMBEDDED_FLOOR = {"zh": 0.92, "en": 0.92}


@pytest.fixture(scope="module")
def shipped_model() -> EmbeddedModel:
    model, _ = load_or_train(
        RASA_PROJECT / "data", ROOT / "var" / "nlu" / "embedded", EmbeddedConfig()
    )
    return model


def test_embedded_held_out_accuracy_per_language_meets_the_floor(
    shipped_model: EmbeddedModel,
) -> None:
    test = load_nlu_data(RASA_PROJECT / "tests" / "test_nlu.yml")
    hits: dict[str, list[bool]] = {"zh": [], "en": []}
    for example in test.examples:
        hits[detect_language(example.text)].append(
            shipped_model.parse(example.text).intent == example.intent
        )
    accuracy = {lang: sum(v) / len(v) for lang, v in hits.items()}
    print(f"embedded held-out accuracy: {accuracy}")
    for lang, floor in EMBEDDED_FLOOR.items():
        assert len(hits[lang]) >= 50, f"too few {lang} test messages"
        assert accuracy[lang] >= floor, f"{lang}: {accuracy[lang]:.3f} < {floor}"


def test_embedded_parse_is_fast_per_message(shipped_model: EmbeddedModel) -> None:
    texts = [e.text for e in load_nlu_data(RASA_PROJECT / "tests" / "test_nlu.yml").examples]
    shipped_model.parse("warm up")
    samples = []
    for text in texts[:100]:
        started = time.perf_counter()
        shipped_model.parse(text)
        samples.append((time.perf_counter() - started) * 1000)
    # The goal is ≤ 10 ms on 2 idle cores (benchmarks/nlu_eval.py measures it); CI machines
    # are shared, so this only catches gross regressions.
    assert statistics.median(samples) < 50, f"median {statistics.median(samples):.1f} ms"


def test_shipped_model_finds_entities_in_both_languages(shipped_model: EmbeddedModel) -> None:
    zh = shipped_model.parse("我的显卡花屏了，订单号so10023456")
    en = shipped_model.parse("my RTX 4090 has coil whine, serial sn7f3k9q2l1m")
    assert zh.intent == "report_fault" and zh.first("product_category") == "gpu"
    assert zh.first("order_number") == "SO-10023456"
    assert en.intent == "report_fault" and en.first("product_model") == "RTX 4090"
    assert en.first("serial_number") == "SN7F3K9Q2L1M"
    assert Path(ROOT / "var" / "nlu" / "embedded" / "embedded.fingerprint.json").is_file()
