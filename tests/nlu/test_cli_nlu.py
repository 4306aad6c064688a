"""`hwcrm nlu parse` and `hwcrm nlu evaluate` on a tiny data set with known results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli_nlu import nlu_app

TEST_YML = """\
version: "3.1"
nlu:
- intent: greet
  examples: |
    - hello
    - 你好
- intent: order_status
  examples: |
    - track my package please
    - 查一下物流
- intent: report_fault
  examples: |
    - pc will not boot any more
    - 电脑开不了机
- intent: out_of_scope
  examples: |
    - tell me a joke
    - 讲个笑话
- intent: goodbye
  examples: |
    - bye for now
"""


@pytest.fixture
def env(tiny_data_dir: Path, tmp_path: Path) -> dict[str, str]:
    return {
        "HWCRM_NLU__DATA_DIR": str(tiny_data_dir),
        "HWCRM_NLU__MODEL_DIR": str(tmp_path / "nlu"),
        "HWCRM_NLU__EMBEDDER": "hashing",
        "HWCRM_NLU__RASA_URL": "",
        "COLUMNS": "200",
    }


def test_evaluate_reports_known_scores_as_json(
    tiny_data_dir: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    test_file = tmp_path / "test.yml"
    test_file.write_text(TEST_YML, encoding="utf-8")
    output = tmp_path / "out" / "results.json"
    result = CliRunner().invoke(
        nlu_app,
        [
            "evaluate",
            "--train",
            str(tiny_data_dir),
            "--test",
            str(test_file),
            "--backend",
            "embedded",
            "--embedder",
            "hashing",
            "--oos-label",
            "out_of_scope",
            "--output",
            str(output),
        ],
        env=env,
    )
    assert result.exit_code == 0, result.output
    assert "NLU evaluation" in result.output and "accuracy" in result.output
    report = json.loads(output.read_text(encoding="utf-8"))
    assert list(report) == ["embedded"]
    embedded = report["embedded"]
    for key in (
        "accuracy",
        "macro_f1",
        "in_scope_accuracy",
        "oos_recall",
        "latency_ms_p50",
        "latency_ms_p95",
    ):
        assert key in embedded
    # Every test text is a training text except "bye for now", whose intent was never trained:
    assert embedded["n"] == 9
    assert embedded["accuracy"] == round(8 / 9, 4)
    assert embedded["in_scope_accuracy"] == round(6 / 7, 4)
    assert embedded["oos_recall"] == 1.0
    assert embedded["macro_f1"] == 0.76  # (1 + 1 + 1 + 0.8 + 0) / 5
    assert embedded["per_intent"]["goodbye"]["recall"] == 0.0
    assert embedded["confused"][0]["gold"] == "goodbye"
    assert embedded["per_language"]["zh"]["accuracy"] == 1.0
    assert 0 < embedded["latency_ms_p50"] <= embedded["latency_ms_p95"]


def test_evaluate_without_oos_examples_reports_null_recall(
    tiny_data_dir: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    test_file = tmp_path / "test.yml"
    test_file.write_text(
        'version: "3.1"\nnlu:\n- intent: greet\n  examples: |\n    - hello\n    - 你好\n',
        encoding="utf-8",
    )
    output = tmp_path / "r.json"
    result = CliRunner().invoke(
        nlu_app,
        [
            "evaluate",
            "--train",
            str(tiny_data_dir),
            "--test",
            str(test_file),
            "--backend",
            "embedded",
            "--embedder",
            "hashing",
            "--output",
            str(output),
        ],
        env=env,
    )
    assert result.exit_code == 0, result.output
    report = json.loads(output.read_text(encoding="utf-8"))["embedded"]
    assert report["oos_recall"] is None
    assert report["accuracy"] == report["in_scope_accuracy"] == 1.0


def test_evaluate_rejects_missing_data_clearly(tmp_path: Path, env: dict[str, str]) -> None:
    result = CliRunner().invoke(
        nlu_app,
        [
            "evaluate",
            "--train",
            str(tmp_path / "nope"),
            "--test",
            str(tmp_path / "nope"),
            "--backend",
            "embedded",
        ],
        env=env,
    )
    assert result.exit_code == 1
    assert "no such file or folder" in result.output


def test_parse_prints_intent_ranking_entities_and_backend(env: dict[str, str]) -> None:
    runner = CliRunner()
    result = runner.invoke(nlu_app, ["parse", "我的显卡风扇不转了，订单 so10023456"], env=env)
    assert result.exit_code == 0, result.output
    assert "report_fault" in result.output or "order_status" in result.output
    assert "backend embedded" in result.output
    assert "ranking (top 5)" in result.output
    assert "SO-10023456" in result.output and "gpu" in result.output

    as_json = runner.invoke(nlu_app, ["parse", "--json", ""], env=env)
    assert as_json.exit_code == 0, as_json.output
    parsed = json.loads(as_json.output)
    assert parsed["intent"] == "out_of_scope" and parsed["notes"] == ["empty message"]


def test_parse_with_rasa_down_falls_back_and_says_so(env: dict[str, str]) -> None:
    from nlu.rasa_service import free_port

    env = {
        **env,
        "HWCRM_NLU__RASA_URL": f"http://127.0.0.1:{free_port()}",
        "HWCRM_NLU__RASA_ATTEMPTS": "1",
    }
    result = CliRunner().invoke(nlu_app, ["parse", "hello"], env=env)
    assert result.exit_code == 0, result.output
    assert "backend embedded" in result.output
    assert "Rasa not used: unavailable" in result.output


def test_train_embedded_skips_when_unchanged(env: dict[str, str]) -> None:
    runner = CliRunner()
    first = runner.invoke(nlu_app, ["train-embedded"], env=env)
    assert first.exit_code == 0, first.output
    assert "embedded model trained" in first.output
    second = runner.invoke(nlu_app, ["train-embedded"], env=env)
    assert "up to date" in second.output
    forced = runner.invoke(nlu_app, ["train-embedded", "--force"], env=env)
    assert "embedded model trained" in forced.output
