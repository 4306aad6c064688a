"""The real Rasa service: data validation, training (cached by fingerprint), serving, and the
application's client and router against it, including a crash mid-conversation.

Marked ``rasa``: needs ``.venv-rasa`` (``make rasa`` / ``hwcrm nlu setup``). Skipped locally
when it is missing; a failure in CI. The production model is trained with the production
config into ``var/nlu/rasa`` (the same cache ``hwcrm nlu train`` uses), so it trains once
per data/config change.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nlu.errors import RasaHTTPError
from nlu.rasa_client import RasaClient, RetryPolicy
from nlu.rasa_data import load_nlu_data
from nlu.rasa_service import (
    RasaModel,
    RasaServer,
    free_port,
    rasa_env,
    requirements,
    setup_venv,
    train_rasa,
)
from nlu.service import NluMetrics, NluService
from nlu.text import detect_language

from .conftest import RASA_PROJECT, ROOT

pytestmark = [pytest.mark.rasa, pytest.mark.slow, pytest.mark.timeout(3600)]

MODEL_DIR = ROOT / "var" / "nlu" / "rasa"
HELD_OUT = RASA_PROJECT / "tests" / "test_nlu.yml"
# Measured on the held-out set, minus a margin of about four messages per language.
RASA_FLOOR = {"zh": 0.85, "en": 0.85}


@pytest.fixture(scope="module")
def rasa_model(rasa_venv: Path) -> RasaModel:
    """The production model (trained once per data/config change, then reused)."""
    return train_rasa(rasa_venv, RASA_PROJECT, MODEL_DIR)


@pytest.fixture(scope="module")
def token() -> str:
    return secrets.token_urlsafe(16)


@pytest.fixture(scope="module")
def rasa_server(
    rasa_venv: Path, rasa_model: RasaModel, token: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RasaServer]:
    log = tmp_path_factory.mktemp("rasa") / "server.log"
    with RasaServer(rasa_venv, rasa_model.path, token=token, log_path=log) as server:
        server.wait_ready(timeout_s=600)
        yield server


def test_setup_is_a_no_op_when_the_venv_is_ready(rasa_venv: Path) -> None:
    assert setup_venv(rasa_venv, RASA_PROJECT) is False
    assert any(r.startswith("rasa==3.6.21") for r in requirements(RASA_PROJECT))


def test_rasa_data_validate_passes(rasa_venv: Path) -> None:
    result = subprocess.run(
        [
            str(rasa_venv / "bin" / "rasa"),
            "data",
            "validate",
            "--data",
            "data",
            "--domain",
            "domain.yml",
            "--config",
            "config.yml",
        ],
        cwd=RASA_PROJECT,
        env=rasa_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_training_is_skipped_when_data_and_config_are_unchanged(
    rasa_venv: Path, rasa_model: RasaModel
) -> None:
    started = time.monotonic()
    again = train_rasa(rasa_venv, RASA_PROJECT, MODEL_DIR)
    assert not again.trained and again.path == rasa_model.path
    assert time.monotonic() - started < 10
    meta = json.loads(
        rasa_model.path.with_name(
            rasa_model.path.name.replace(".tar.gz", ".fingerprint.json")
        ).read_text(encoding="utf-8")
    )
    assert meta["fingerprint"] == rasa_model.fingerprint and meta["rasa"] == "3.6.21"


async def test_client_parses_through_the_real_server(rasa_server: RasaServer, token: str) -> None:
    async with RasaClient(rasa_server.url, token, timeout_s=5.0) as client:
        assert await client.model_loaded()
        fault = await client.parse("我的显卡风扇不转了，订单so10023456")
        order = await client.parse("where is my order SO-10098765?")
        serial = await client.parse("is SN7F3K9Q2L1M still under warranty")
    assert fault.backend == "rasa" and fault.intent == "report_fault"
    assert fault.first("product_category") == "gpu"
    assert fault.first("order_number") == "SO-10023456"
    assert order.intent == "order_status" and order.first("order_number") == "SO-10098765"
    assert serial.intent == "check_warranty" and serial.first("serial_number") == "SN7F3K9Q2L1M"
    assert len(fault.ranking) >= 5
    assert fault.ranking[0].name == fault.intent
    assert token not in rasa_server.log_path.read_text(encoding="utf-8", errors="replace")
    assert token not in rasa_server.describe()


async def test_a_wrong_token_is_refused_and_not_retried(rasa_server: RasaServer) -> None:
    async with RasaClient(rasa_server.url, "wrong", retry=RetryPolicy(attempts=3)) as client:
        with pytest.raises(RasaHTTPError) as info:
            await client.parse("hi")
    assert info.value.status_code == 401
    assert not info.value.transient


async def test_held_out_accuracy_per_language_meets_the_floor(
    rasa_server: RasaServer, token: str
) -> None:
    test = load_nlu_data(HELD_OUT)
    hits: dict[str, list[bool]] = {"zh": [], "en": []}
    async with RasaClient(rasa_server.url, token, timeout_s=10.0) as client:
        for example in test.examples:
            result = await client.parse(example.text)
            hits[detect_language(example.text)].append(result.intent == example.intent)
    accuracy = {lang: sum(v) / len(v) for lang, v in hits.items()}
    print(f"Rasa held-out accuracy: {accuracy}")
    for lang, floor in RASA_FLOOR.items():
        assert accuracy[lang] >= floor, f"{lang}: {accuracy[lang]:.3f} < {floor}"


async def test_serve_command_then_a_crash_mid_conversation_falls_back_to_embedded(
    rasa_venv: Path, rasa_model: RasaModel, tiny_parser: object, tmp_path: Path
) -> None:
    """`hwcrm nlu serve` as a real process; its Rasa child is killed between two messages."""
    from nlu.embedded import EmbeddedParser

    assert isinstance(tiny_parser, EmbeddedParser)
    port = free_port()
    token = secrets.token_urlsafe(16)
    env = {
        **os.environ,
        "HWCRM_NLU__RASA_TOKEN": token,
        "HWCRM_NLU__MODEL_DIR": str(ROOT / "var" / "nlu"),
        "HWCRM_NLU__RASA_VENV": str(rasa_venv),
        "COLUMNS": "200",
    }
    # Blocking process I/O is fine here: nothing else runs on this test's event loop.
    serve = subprocess.Popen(  # noqa: ASYNC220
        [sys.executable, "-m", "app.cli", "nlu", "serve", "--no-train", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output: list[str] = []
    try:
        assert serve.stdout is not None
        deadline = time.monotonic() + 600
        pid = None
        while time.monotonic() < deadline:
            line = serve.stdout.readline()
            if not line:
                break
            output.append(line)
            found = re.search(r"\(pid (\d+)", line)
            if found:
                pid = int(found.group(1))
                break
        assert pid is not None, "".join(output)
        assert token not in "".join(output), "the token is never printed"

        client = RasaClient(
            f"http://127.0.0.1:{port}", token, timeout_s=2.0, retry=RetryPolicy(attempts=2)
        )
        metrics = NluMetrics()
        service = NluService(tiny_parser, client, budget_s=2.0, metrics=metrics)
        try:
            first = await service.parse("hello")
            second = await service.parse("where is my order SO-10023456")
            assert (first.backend, second.backend) == ("rasa", "rasa")

            os.kill(pid, signal.SIGKILL)  # Rasa crashes
            await asyncio.sleep(0.5)
            for text in ("my gpu fan stopped spinning", "订单什么时候发货", "hi there"):
                result = await service.parse(text)
                assert result.backend == "embedded" and result.fallback_reason is not None
            assert metrics.fallback_total == 3
        finally:
            await service.aclose()
        assert serve.wait(timeout=60) != 0, "serve reports that Rasa died"
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGTERM)
            serve.wait(timeout=60)


def test_evaluate_both_backends_on_a_tiny_data_set(tiny_data_dir: Path, tmp_path: Path) -> None:
    from app.cli_nlu import nlu_app

    from .test_cli_nlu import TEST_YML

    test_file = tmp_path / "test.yml"
    test_file.write_text(TEST_YML, encoding="utf-8")
    output = tmp_path / "both.json"
    result = CliRunner().invoke(
        nlu_app,
        [
            "evaluate",
            "--train",
            str(tiny_data_dir),
            "--test",
            str(test_file),
            "--backend",
            "both",
            "--embedder",
            "hashing",
            "--rasa-epochs",
            "30",
            "--output",
            str(output),
        ],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    report = json.loads(output.read_text(encoding="utf-8"))
    assert set(report) == {"embedded", "rasa"}
    rasa = report["rasa"]
    assert rasa["n"] == 9 and rasa["oos_recall"] is not None
    assert rasa["accuracy"] <= round(8 / 9, 4)  # "bye for now" cannot be right
    assert rasa["accuracy"] >= 5 / 9
    assert rasa["latency_ms_p50"] > 0
