"""Entity values are canonical whichever backend found them (ids, zh/en categories, models)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlu.entities import (
    RuleEntityExtractor,
    SynonymTable,
    dedupe_entities,
    normalize_category,
    normalize_entity_value,
)
from nlu.rasa_data import load_nlu_data
from nlu.schemas import ParsedEntity

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "raw",
    ["SO-10023456", "so-10023456", "SO 10023456", "so10023456", "SO－10023456", "SO_10023456"],
)
def test_order_numbers_are_normalised(raw: str) -> None:
    assert normalize_entity_value("order_number", raw) == "SO-10023456"


@pytest.mark.parametrize("raw", ["SO-1234", "SO-123456789", "PO-10023456", "10023456"])
def test_invalid_order_numbers_are_dropped(raw: str) -> None:
    assert normalize_entity_value("order_number", raw) is None


@pytest.mark.parametrize("raw", ["SN7F3K9Q2L1M", "sn7f3k9q2l1m", "Sn7F3k9q2L1m"])
def test_serial_numbers_are_normalised(raw: str) -> None:
    assert normalize_entity_value("serial_number", raw) == "SN7F3K9Q2L1M"


@pytest.mark.parametrize("raw", ["SN123", "SN7F3K9Q2L1MX", "XX7F3K9Q2L1M"])
def test_invalid_serial_numbers_are_dropped(raw: str) -> None:
    assert normalize_entity_value("serial_number", raw) is None


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("显卡", "gpu"),
        ("独显", "gpu"),
        ("Graphics Card", "gpu"),
        ("graphics  card", "gpu"),
        ("内存条", "ram"),
        ("memory", "ram"),
        ("固态硬盘", "ssd"),
        ("NVMe", "ssd"),
        ("主板", "motherboard"),
        ("mobo", "motherboard"),
        ("电源", "psu"),
        ("power supply", "psu"),
        ("水冷", "cooler"),
        ("显示器", "monitor"),
        ("笔记本", "laptop"),
        ("鼠标", "mouse"),
        ("耳机", "headset"),
        ("路由器", "router"),
        ("不间断电源", "ups"),
        ("monitors", "monitor"),
        ("gpu", "gpu"),
    ],
)
def test_categories_in_both_languages_map_to_canonical_keys(raw: str, key: str) -> None:
    assert normalize_category(raw) == key
    assert normalize_entity_value("product_category", raw) == key


def test_unknown_category_words_are_dropped() -> None:
    assert normalize_entity_value("product_category", "toaster") is None


def test_category_value_already_mapped_by_rasa_is_kept() -> None:
    # Rasa's EntitySynonymMapper already turned "显卡" into "gpu": value wins over the text.
    assert normalize_entity_value("product_category", "gpu", "显卡") == "gpu"


def test_product_models_map_through_the_training_synonyms() -> None:
    table = SynonymTable({"rtx4090": "RTX 4090", "4090": "RTX 4090"})
    assert normalize_entity_value("product_model", "rtx4090", synonyms=table) == "RTX 4090"
    assert normalize_entity_value("product_model", "RTX-4090", synonyms=table) == "RTX 4090"
    assert normalize_entity_value("product_model", "Rtx 4090", synonyms=table) == "RTX 4090"
    assert normalize_entity_value("product_model", "B650", synonyms=table) == "B650"


def test_duplicates_from_two_extractors_collapse_to_the_regex_one() -> None:
    diet = ParsedEntity(
        entity="order_number",
        value="SO-10023456",
        text="so10023456",
        start=5,
        end=15,
        extractor="DIETClassifier",
    )
    regex = ParsedEntity(
        entity="order_number",
        value="SO-10023456",
        text="so10023456",
        start=5,
        end=15,
        extractor="RegexEntityExtractor",
    )
    kept = dedupe_entities([diet, regex])
    assert [e.extractor for e in kept] == ["RegexEntityExtractor"]


@pytest.fixture(scope="module")
def project_extractor() -> RuleEntityExtractor:
    return RuleEntityExtractor.from_data(load_nlu_data(ROOT / "nlu" / "rasa" / "data"))


def _pairs(extractor: RuleEntityExtractor, text: str) -> list[tuple[str, str]]:
    return [(e.entity, e.value) for e in extractor.extract(text)]


def test_project_rules_find_ids_categories_and_models_in_chinese(
    project_extractor: RuleEntityExtractor,
) -> None:
    pairs = _pairs(project_extractor, "订单so10023456的显卡风扇不转了，序列号SN7F3K9Q2L1M")
    assert ("order_number", "SO-10023456") in pairs
    assert ("serial_number", "SN7F3K9Q2L1M") in pairs
    assert ("product_category", "gpu") in pairs


def test_project_rules_find_models_and_symptoms_in_english(
    project_extractor: RuleEntityExtractor,
) -> None:
    pairs = _pairs(project_extractor, "my rtx4090 has coil whine since the driver update")
    assert ("product_model", "RTX 4090") in pairs
    assert ("symptom", "coil whine") in pairs


def test_project_rules_do_not_read_ambiguous_words_as_categories(
    project_extractor: RuleEntityExtractor,
) -> None:
    pairs = _pairs(project_extractor, "in case of a blue screen, what should I do")
    assert not [p for p in pairs if p[0] == "product_category"]


def test_spans_point_into_the_text(project_extractor: RuleEntityExtractor) -> None:
    text = "内存条插上就蓝屏"
    for entity in project_extractor.extract(text):
        assert entity.start is not None and entity.end is not None
        assert text[entity.start : entity.end] == entity.text
