"""The router: Rasa when configured and healthy, the embedded classifier otherwise, unnoticed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from nlu.breaker import CircuitBreaker
from nlu.embedded import EmbeddedParser
from nlu.rasa_client import RasaClient, RetryPolicy
from nlu.rasa_service import free_port
from nlu.service import FakeIntentParser, IntentParser, NluMetrics, NluService

from .test_rasa_client import rasa_body

TOKEN = "router-token"


def _mock_rasa(handler: httpx.MockTransport, **kwargs: object) -> RasaClient:
    return RasaClient(
        "http://rasa.test",
        TOKEN,
        timeout_s=0.3,
        retry=RetryPolicy(attempts=2, backoff_s=0.01),
        transport=handler,
        **kwargs,  # type: ignore[arg-type]
    )


async def test_embedded_is_the_default_without_rasa(tiny_parser: EmbeddedParser) -> None:
    service = NluService(tiny_parser)
    result = await service.parse("where is my order SO-10023456")
    assert result.backend == "embedded"
    assert result.intent == "order_status"
    assert result.first("order_number") == "SO-10023456"
    assert result.fallback_reason is None
    assert service.metrics.fallback_total == 0


async def test_rasa_answers_when_healthy(tiny_parser: EmbeddedParser) -> None:
    transport = httpx.MockTransport(
        lambda r: httpx.Response(200, json=rasa_body("hi", "greet", 0.93))
    )
    service = NluService(tiny_parser, _mock_rasa(transport))
    result = await service.parse("hi")
    assert (result.backend, result.intent, result.fallback_reason) == ("rasa", "greet", None)
    assert service.metrics.by_backend["rasa"] == 1


async def test_rasa_error_falls_back_and_is_counted_and_logged(
    tiny_parser: EmbeddedParser, caplog: pytest.LogCaptureFixture
) -> None:
    transport = httpx.MockTransport(lambda r: httpx.Response(500, text="boom"))
    service = NluService(tiny_parser, _mock_rasa(transport))
    result = await service.parse("我的订单到哪了")
    assert result.backend == "embedded"
    assert result.intent == "order_status"
    assert result.fallback_reason == "http_error"
    assert service.metrics.fallbacks == {"http_error": 1}
    assert "NLU fallback" in caplog.text
    assert "我的订单" not in caplog.text, "customer text is not logged"


async def test_slow_rasa_falls_back_within_the_time_budget(tiny_parser: EmbeddedParser) -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, json=rasa_body())

    client = RasaClient(
        "http://rasa.test", TOKEN, timeout_s=5.0, transport=httpx.MockTransport(slow)
    )
    service = NluService(tiny_parser, client, budget_s=0.3)
    started = time.monotonic()
    result = await service.parse("track my package please")
    elapsed = time.monotonic() - started
    assert result.backend == "embedded" and result.intent == "order_status"
    assert result.fallback_reason == "timeout"
    assert elapsed < 1.5, f"the customer waited {elapsed:.2f}s"


async def test_malformed_rasa_answer_is_a_fallback(tiny_parser: EmbeddedParser) -> None:
    transport = httpx.MockTransport(lambda r: httpx.Response(200, json={"unexpected": True}))
    service = NluService(tiny_parser, _mock_rasa(transport))
    result = await service.parse("hello")
    assert result.backend == "embedded"
    assert result.fallback_reason == "malformed_response"


async def test_open_breaker_skips_rasa_and_counts_the_reason(tiny_parser: EmbeddedParser) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(503)

    client = _mock_rasa(
        httpx.MockTransport(handler), breaker=CircuitBreaker(failure_threshold=2, cooldown_s=60)
    )
    service = NluService(tiny_parser, client)
    for _ in range(5):
        assert (await service.parse("hello")).backend == "embedded"
    assert calls == 4  # 2 messages × 2 attempts, then the breaker is open
    assert service.metrics.fallbacks == {"http_error": 2, "circuit_open": 3}


async def test_low_rasa_confidence_becomes_out_of_scope(tiny_parser: EmbeddedParser) -> None:
    transport = httpx.MockTransport(
        lambda r: httpx.Response(200, json=rasa_body("hm", "greet", 0.31))
    )
    service = NluService(tiny_parser, _mock_rasa(transport), rasa_threshold=0.5)
    result = await service.parse("hm")
    assert (result.backend, result.intent) == ("rasa", "out_of_scope")
    assert "greet" in [r.name for r in result.ranking]


async def test_embedded_failure_still_gives_a_parse(tmp_path: Path) -> None:
    broken = EmbeddedParser(tmp_path / "no-such-data", tmp_path / "model")
    result = await NluService(broken).parse("hello")
    assert result.intent == "out_of_scope" and result.backend == "none"


async def test_the_implementations_satisfy_the_protocol(tiny_parser: EmbeddedParser) -> None:
    parsers: list[IntentParser] = [NluService(tiny_parser), FakeIntentParser()]
    for parser in parsers:
        assert isinstance(parser, IntentParser)
        await parser.aclose()


async def test_fake_parser_follows_its_rules_and_records_messages() -> None:
    fake = FakeIntentParser({r"显卡|gpu": "report_fault", "order": "order_status"})
    assert (await fake.parse("my GPU died")).intent == "report_fault"
    assert (await fake.parse("where is my order")).intent == "order_status"
    assert (await fake.parse("weather?")).intent == "out_of_scope"
    assert fake.seen == ["my GPU died", "where is my order", "weather?"]


# --- a real Rasa-like process, killed mid-conversation -----------------------------------


class FakeRasaProcess:
    """tests/nlu/fake_rasa_server.py as a real child process."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).with_name("fake_rasa_server.py")),
                str(self.port),
                TOKEN,
            ],
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "ready"

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()


@pytest.fixture
def fake_rasa_process() -> Iterator[FakeRasaProcess]:
    server = FakeRasaProcess(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_killing_rasa_mid_conversation_switches_to_embedded_and_back(
    tiny_parser: EmbeddedParser, fake_rasa_process: FakeRasaProcess
) -> None:
    clock_offset = [0.0]
    breaker = CircuitBreaker(
        failure_threshold=2, cooldown_s=30.0, clock=lambda: time.monotonic() + clock_offset[0]
    )
    client = RasaClient(
        f"http://127.0.0.1:{fake_rasa_process.port}",
        TOKEN,
        timeout_s=0.5,
        retry=RetryPolicy(attempts=2, backoff_s=0.02),
        breaker=breaker,
    )
    metrics = NluMetrics()
    service = NluService(tiny_parser, client, budget_s=1.0, metrics=metrics)
    try:
        first = await service.parse("hello")
        second = await service.parse("where is my order SO-10023456")
        assert (first.backend, second.backend) == ("rasa", "rasa")
        assert second.intent == "order_status"

        fake_rasa_process.kill()  # Rasa crashes between two customer messages

        conversation = [
            ("my gpu fan stopped spinning", "report_fault"),
            ("订单什么时候发货", "order_status"),
            ("hi there", "greet"),
            ("track my package please", "order_status"),
        ]
        for text, intent in conversation:
            started = time.monotonic()
            result = await service.parse(text)
            assert result.backend == "embedded"
            assert result.intent == intent
            assert time.monotonic() - started < 1.2
        assert metrics.fallbacks["unavailable"] == 2
        assert metrics.fallbacks["circuit_open"] == 2
        assert metrics.by_backend == {"rasa": 2, "embedded": 4}

        fake_rasa_process.start()  # back up: after the cool-down, the probe closes the breaker
        clock_offset[0] += 31.0
        back = await service.parse("my order is broken")
        assert back.backend == "rasa" and back.fallback_reason is None
    finally:
        await service.aclose()
