"""`hwcrm kb ingest | search | answer | status` end to end (SQLite, hashing embedder)."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from app import cli_kb
from tests.kb.conftest import article

runner = CliRunner()


@pytest.fixture
def kb_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HWCRM_DB__URL", f"sqlite+aiosqlite:///{tmp_path / 'hwcrm.sqlite3'}")
    monkeypatch.setenv("HWCRM_KB__INDEX_DIR", str(tmp_path / "kb"))
    monkeypatch.setenv("HWCRM_KB__EMBEDDER", "hashing")
    folder = tmp_path / "articles"
    folder.mkdir()
    (folder / "ups-beeping.en.md").write_text(
        article(
            "ups-beeping.en",
            "UPS keeps beeping",
            "## On battery\n\nA beep every few seconds means the UPS runs on battery.\n\n"
            "## Overload\n\nA continuous tone means overload.",
            categories="[ups]",
        )
    )
    (folder / "empty.md").write_text("")
    return folder


def kb_cli() -> typer.Typer:
    app = typer.Typer()
    cli_kb.register(app)
    return app


def test_ingest_search_answer_and_status_from_the_command_line(kb_env: Path) -> None:
    app = kb_cli()
    result = runner.invoke(app, ["kb", "ingest", str(kb_env)])
    assert result.exit_code == 0, result.output
    assert "published v000001" in result.output
    assert "empty.md" in result.output and "empty file" in result.output

    result = runner.invoke(app, ["kb", "ingest", str(kb_env)])
    assert "unchanged, still v000001" in result.output and "0 chunks embedded" in result.output

    result = runner.invoke(
        app, ["kb", "search", "ups continuous tone", "--mode", "lexical", "-k", "3"]
    )
    assert result.exit_code == 0, result.output
    assert "ups-beeping.en" in result.output

    result = runner.invoke(app, ["kb", "search", "ups", "--category", "gpu"])
    assert result.exit_code == 0 and "no matching articles" in result.output

    result = runner.invoke(app, ["kb", "answer", "ups beeping every few seconds"])
    assert result.exit_code == 0, result.output
    assert "confidence" in result.output

    result = runner.invoke(app, ["kb", "status"])
    assert result.exit_code == 0, result.output
    for expected in ("v000001", "hashing", "flat", "articles"):
        assert expected in result.output


def test_search_before_any_ingest_says_what_to_do(kb_env: Path) -> None:
    result = runner.invoke(kb_cli(), ["kb", "search", "anything"])
    assert result.exit_code == 1
    assert "hwcrm kb ingest" in " ".join(result.output.split())


def test_every_kb_command_has_help() -> None:
    app = kb_cli()
    for command in (
        "ingest",
        "search",
        "answer",
        "status",
        "evaluate",
        "export-corpus",
        "calibrate",
    ):
        result = runner.invoke(app, ["kb", command, "--help"])
        assert result.exit_code == 0, (command, result.output)
