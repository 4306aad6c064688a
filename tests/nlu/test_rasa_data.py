"""Reading and writing Rasa NLU YAML without Rasa."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlu.contract import ENTITIES, INTENTS
from nlu.rasa_data import (
    EntitySpan,
    Example,
    NluDataError,
    dump_nlu_yaml,
    load_nlu_data,
    parse_annotated,
)

ROOT = Path(__file__).resolve().parents[2]


def test_plain_annotation_gives_the_span_and_the_surface_value() -> None:
    example = parse_annotated("my [gpu](product_category) died", "report_fault")
    assert example.text == "my gpu died"
    assert example.entities == (
        EntitySpan(entity="product_category", start=3, end=6, text="gpu", value="gpu"),
    )


def test_json_annotation_carries_the_canonical_value() -> None:
    example = parse_annotated('[显卡]{"entity": "product_category", "value": "gpu"}风扇不转了')
    assert example.text == "显卡风扇不转了"
    (span,) = example.entities
    assert (span.text, span.value, span.start, span.end) == ("显卡", "gpu", 0, 2)


def test_legacy_colon_annotation_and_several_entities() -> None:
    example = parse_annotated(
        "order [SO-10023456](order_number) for [4090](product_model:RTX 4090)"
    )
    assert example.text == "order SO-10023456 for 4090"
    assert [(e.entity, e.value) for e in example.entities] == [
        ("order_number", "SO-10023456"),
        ("product_model", "RTX 4090"),
    ]
    assert example.text[example.entities[1].start : example.entities[1].end] == "4090"


def test_bad_json_annotation_is_a_clear_error() -> None:
    with pytest.raises(NluDataError, match="bad entity annotation"):
        parse_annotated('[x]{"entity": product_category}')


def test_synonyms_regexes_and_lookups_are_read(tiny_data_dir: Path) -> None:
    data = load_nlu_data(tiny_data_dir)
    assert data.synonyms["graphics card"] == "gpu"
    assert data.synonyms["显卡"] == "gpu"
    assert data.synonyms["rtx4090"] == "RTX 4090"
    assert "order_number" in data.regexes and "serial_number" in data.regexes
    assert data.lookups["product_model"] == ["rtx4090", "4090", "rtx 4090"]
    assert data.counts() == {"greet": 8, "order_status": 8, "report_fault": 8, "out_of_scope": 8}


def test_examples_as_a_list_of_text_items(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text(
        'version: "3.1"\nnlu:\n- intent: greet\n  examples:\n  - text: hi\n  - text: hello\n',
        encoding="utf-8",
    )
    (tmp_path / "domain.yml").write_text("intents: [greet]\n", encoding="utf-8")
    data = load_nlu_data(tmp_path)
    assert [e.text for e in data.examples] == ["hi", "hello"]


def test_missing_source_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NluDataError, match="no such file or folder"):
        load_nlu_data(tmp_path / "nope")


def test_dump_and_load_round_trip_keeps_texts_intents_and_entities() -> None:
    examples = [
        parse_annotated('[显卡]{"entity": "product_category", "value": "gpu"}花屏', "report_fault"),
        parse_annotated("where is [SO-10023456](order_number)", "order_status"),
        Example(text="can I pay with [brackets]? - yes", intent="payment"),
    ]
    text = dump_nlu_yaml(examples, synonyms={"显卡": "gpu"})
    path = Path("/dev/null")  # not used; parse through a temp file below
    del path
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "x.yml"
        file.write_text(text, encoding="utf-8")
        back = load_nlu_data(file)
    assert [e.intent for e in back.examples] == ["report_fault", "order_status", "payment"]
    assert back.examples[0].entities == examples[0].entities
    assert back.examples[1].entities == examples[1].entities
    assert back.examples[2].text == "can I pay with (brackets)? - yes"
    assert back.synonyms == {"显卡": "gpu"}


def test_the_project_data_uses_only_contract_names() -> None:
    data = load_nlu_data(ROOT / "nlu" / "rasa" / "data")
    assert set(data.intents) == set(INTENTS)
    assert {s.entity for e in data.examples for s in e.entities} <= set(ENTITIES)
    held_out = load_nlu_data(ROOT / "nlu" / "rasa" / "tests" / "test_nlu.yml")
    assert set(held_out.intents) <= set(INTENTS)
