"""The Rasa HTTP client: typed results, timeouts, bounded retries, circuit breaker, bad answers."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from nlu.breaker import BreakerState, CircuitBreaker
from nlu.entities import SynonymTable
from nlu.errors import (
    CircuitOpenError,
    RasaHTTPError,
    RasaResponseError,
    RasaTimeoutError,
    RasaUnavailableError,
)
from nlu.rasa_client import RasaClient, RetryPolicy, redact

TOKEN = "s3cret-token"


def rasa_body(
    text: str = "hi", intent: str = "greet", confidence: float = 0.97, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "text": text,
        "intent": {"name": intent, "confidence": confidence},
        "entities": [],
        "intent_ranking": [
            {"name": intent, "confidence": confidence},
            {"name": "goodbye", "confidence": round(1 - confidence, 4)},
        ],
    }
    body.update(extra)
    return body


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _no_sleep(_: float) -> None:
    return None


def make_client(
    handler: Callable[[httpx.Request], httpx.Response],
    *,
    attempts: int = 3,
    breaker: CircuitBreaker | None = None,
    sleeps: list[float] | None = None,
    timeout_s: float = 0.5,
) -> RasaClient:
    async def sleep(seconds: float) -> None:
        if sleeps is not None:
            sleeps.append(seconds)

    return RasaClient(
        "http://rasa.test:5005",
        TOKEN,
        timeout_s=timeout_s,
        retry=RetryPolicy(attempts=attempts, backoff_s=0.01, jitter=0.0),
        breaker=breaker or CircuitBreaker(failure_threshold=3, cooldown_s=10.0),
        transport=httpx.MockTransport(handler),
        sleep=sleep,
        synonyms=SynonymTable({"rtx4090": "RTX 4090"}),
    )


async def test_parse_returns_typed_result_with_token_and_canonical_entities() -> None:
    seen: list[httpx.Request] = []
    text = "订单so10023456的显卡和rtx4090坏了 sn7f3k9q2l1m"

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        entities = [
            {
                "entity": "order_number",
                "value": "so10023456",
                "start": 2,
                "end": 12,
                "extractor": "DIETClassifier",
                "confidence_entity": 0.9,
            },
            {
                "entity": "order_number",
                "value": "so10023456",
                "start": 2,
                "end": 12,
                "extractor": "RegexEntityExtractor",
            },
            {
                "entity": "product_category",
                "value": "gpu",
                "start": 13,
                "end": 15,
                "extractor": "RegexEntityExtractor",
                "processors": ["EntitySynonymMapper"],
            },
            {
                "entity": "product_model",
                "value": "rtx4090",
                "start": 16,
                "end": 23,
                "extractor": "DIETClassifier",
            },
            {
                "entity": "serial_number",
                "value": "sn7f3k9q2l1m",
                "start": 27,
                "end": 39,
                "extractor": "RegexEntityExtractor",
            },
            {
                "entity": "order_number",
                "value": "SO-12",
                "start": 0,
                "end": 2,
                "extractor": "DIETClassifier",
            },
        ]
        return httpx.Response(200, json=rasa_body(text, "report_fault", 0.91, entities=entities))

    async with make_client(handler) as client:
        result = await client.parse(text)
    assert seen[0].method == "POST" and seen[0].url.path == "/model/parse"
    assert seen[0].url.params["token"] == TOKEN
    assert json.loads(seen[0].content) == {"text": text}
    assert (result.intent, result.confidence, result.backend) == ("report_fault", 0.91, "rasa")
    assert [r.name for r in result.ranking] == ["report_fault", "goodbye"]
    assert result.values("order_number") == ["SO-10023456"]  # deduped; "SO-12" dropped
    assert result.first("product_category") == "gpu"
    assert result.first("product_model") == "RTX 4090"
    assert result.first("serial_number") == "SN7F3K9Q2L1M"
    assert [e.extractor for e in result.entities if e.entity == "order_number"] == [
        "RegexEntityExtractor"
    ]
    assert result.language == "zh"


async def test_transient_errors_are_retried_with_backoff_then_succeed() -> None:
    calls = 0
    sleeps: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise httpx.ConnectError("connection refused")
        if calls == 2:
            return httpx.Response(503, text="loading")
        return httpx.Response(200, json=rasa_body())

    async with make_client(handler, sleeps=sleeps) as client:
        result = await client.parse("hi")
    assert result.intent == "greet"
    assert calls == 3
    assert sleeps == [0.01, 0.02]  # exponential backoff
    assert client.breaker.consecutive_failures == 0


async def test_retries_are_bounded() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise httpx.ConnectError("connection refused")

    async with make_client(handler, attempts=3) as client:
        with pytest.raises(RasaUnavailableError):
            await client.parse("hi")
    assert calls == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409])
async def test_client_errors_are_not_retried(status: int) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(status, text="nope")

    async with make_client(handler) as client:
        with pytest.raises(RasaHTTPError) as info:
            await client.parse("hi")
    assert calls == 1
    assert info.value.status_code == status
    assert TOKEN not in str(info.value)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"<html>502 Bad Gateway</html>", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"text": "hi"}', "intent"),
        (b'{"intent": {"name": null, "confidence": 0.5}}', "intent.name"),
        (b'{"intent": {"name": "greet", "confidence": "high"}}', "intent.confidence"),
        (b'{"intent": {"name": "greet", "confidence": 7.5}}', "intent.confidence"),
        (b'{"intent": {"name": "greet", "confidence": NaN}}', "intent.confidence"),
        (b'{"intent": {"name": "", "confidence": 0.5}}', "intent.name"),
        (b'{"intent": {"name": "greet", "confidence": 0.5}, "entities": "x"}', "entities"),
    ],
)
async def test_malformed_responses_are_a_clear_error_and_not_retried(body: bytes, why: str) -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    async with make_client(handler) as client:
        with pytest.raises(RasaResponseError, match=why.replace(".", r"\.")):
            await client.parse("hi")
    assert calls == 1
    assert client.breaker.consecutive_failures == 1


async def test_breaker_opens_after_consecutive_failures_and_probes_after_cooldown() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=10.0, clock=clock)
    calls = 0
    healthy = False

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if healthy:
            return httpx.Response(200, json=rasa_body())
        return httpx.Response(500, text="boom")

    async with make_client(handler, attempts=1, breaker=breaker) as client:
        for _ in range(2):
            with pytest.raises(RasaHTTPError):
                await client.parse("hi")
        assert breaker.state is BreakerState.OPEN
        with pytest.raises(CircuitOpenError):
            await client.parse("hi")
        assert calls == 2, "an open breaker does not call Rasa"

        clock.now += 10.0  # cool-down over: one probe, which fails → open again
        assert breaker.state is BreakerState.HALF_OPEN
        with pytest.raises(RasaHTTPError):
            await client.parse("hi")
        assert calls == 3
        assert breaker.state is BreakerState.OPEN
        with pytest.raises(CircuitOpenError):
            await client.parse("hi")

        clock.now += 10.0
        healthy = True
        assert (await client.parse("hi")).intent == "greet"  # the probe succeeds
        assert breaker.state is BreakerState.CLOSED
        assert (await client.parse("hi")).intent == "greet"
        assert calls == 5


def test_half_open_breaker_lets_exactly_one_probe_through() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=5.0, clock=clock)
    breaker.record_failure()
    assert not breaker.allow()
    clock.now += 5.0
    assert breaker.allow() is True
    assert breaker.allow() is False, "a second caller waits for the probe's verdict"
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED and breaker.allow()
    assert breaker.times_opened == 1


def test_breaker_success_resets_the_failure_count() -> None:
    breaker = CircuitBreaker(failure_threshold=3)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED


# --- against a real local HTTP server (real sockets, real timeouts) ----------------------


class _SlowRasa(BaseHTTPRequestHandler):
    delay_s = 0.0
    requests = 0

    def do_POST(self) -> None:
        type(self).requests += 1
        length = int(self.headers.get("content-length", 0))
        text = json.loads(self.rfile.read(length))["text"]
        time.sleep(type(self).delay_s)
        payload = json.dumps(rasa_body(text)).encode()
        try:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args: object) -> None:
        return None


@pytest.fixture
def slow_server() -> Iterator[tuple[str, type[_SlowRasa]]]:
    handler = type("Handler", (_SlowRasa,), {"delay_s": 0.0, "requests": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


async def test_real_server_answers_within_the_timeout(slow_server: tuple[str, Any]) -> None:
    url, handler = slow_server
    async with RasaClient(url, TOKEN, timeout_s=1.0) as client:
        result = await client.parse("hello there")
    assert result.intent == "greet" and result.text == "hello there"
    assert handler.requests == 1


async def test_a_slow_server_times_out_per_attempt_and_within_the_deadline(
    slow_server: tuple[str, Any],
) -> None:
    url, handler = slow_server
    handler.delay_s = 2.0
    async with RasaClient(
        url, TOKEN, timeout_s=0.2, retry=RetryPolicy(attempts=5, backoff_s=0.01)
    ) as client:
        started = time.monotonic()
        with pytest.raises(RasaTimeoutError):
            await client.parse("hi", deadline_s=0.5)
        elapsed = time.monotonic() - started
    assert elapsed < 0.9, f"the deadline bounds all attempts ({elapsed:.2f}s)"
    assert 2 <= handler.requests <= 3


async def test_connection_refused_is_unavailable_quickly() -> None:
    from nlu.rasa_service import free_port

    async with RasaClient(
        f"http://127.0.0.1:{free_port()}", TOKEN, retry=RetryPolicy(attempts=2, backoff_s=0.01)
    ) as client:
        started = time.monotonic()
        with pytest.raises(RasaUnavailableError):
            await client.parse("hi")
    assert time.monotonic() - started < 1.0


async def test_concurrent_parses_share_one_client(slow_server: tuple[str, Any]) -> None:
    url, handler = slow_server
    handler.delay_s = 0.05
    async with RasaClient(url, TOKEN, timeout_s=2.0) as client:
        results = await asyncio.gather(*(client.parse(f"hi {i}") for i in range(10)))
    assert [r.text for r in results] == [f"hi {i}" for i in range(10)]


def test_token_is_masked_in_httpx_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    RasaClient("http://127.0.0.1:1", TOKEN)  # installs the filter
    with caplog.at_level(logging.INFO, logger="httpx"):
        logging.getLogger("httpx").info(
            'HTTP Request: POST http://127.0.0.1:5005/model/parse?token=%s "HTTP/1.1 200 OK"', TOKEN
        )
    assert TOKEN not in caplog.text
    assert "token=***" in caplog.text
    assert redact(f"x?token={TOKEN}&a=1") == "x?token=***&a=1"
