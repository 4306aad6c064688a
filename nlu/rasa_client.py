"""Async HTTP client for a Rasa NLU server (``POST /model/parse``); never imports rasa.

- Auth: Rasa's ``?token=`` query parameter. The token never appears in our logs or error
  messages (a filter also masks it in httpx's own request log lines).
- Timeouts per attempt, and an overall deadline per call.
- Retries: bounded, exponential backoff with jitter, only on transient errors (connection
  refused/reset, timeouts, 429/500/502/503/504). A 4xx answer or a malformed body is not
  retried.
- Circuit breaker: after N consecutive failed calls the client refuses calls (fast
  :class:`~nlu.errors.CircuitOpenError`) until a half-open probe succeeds.
- Results are typed (:class:`~nlu.schemas.ParseResult`) with canonical entity values; a
  response that does not validate raises :class:`~nlu.errors.RasaResponseError`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from nlu.breaker import CircuitBreaker
from nlu.entities import SynonymTable, dedupe_entities, normalize_entity_value
from nlu.errors import (
    CircuitOpenError,
    NluBackendError,
    RasaHTTPError,
    RasaResponseError,
    RasaTimeoutError,
    RasaUnavailableError,
)
from nlu.schemas import IntentScore, ParsedEntity, ParseResult
from nlu.text import detect_language

log = logging.getLogger(__name__)

_TOKEN_RE = re.compile(r"(token=)[^&\s\"']+")


class _RedactTokenFilter(logging.Filter):
    """Masks ``token=...`` in log records (httpx logs full request URLs at INFO)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True
        if "token=" in message:
            record.msg = _TOKEN_RE.sub(r"\1***", message)
            record.args = None
        return True


_REDACT_FILTER = _RedactTokenFilter()


def _install_redaction() -> None:
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if _REDACT_FILTER not in logger.filters:
            logger.addFilter(_REDACT_FILTER)


def redact(text: str) -> str:
    """`text` with any ``token=...`` value masked."""
    return _TOKEN_RE.sub(r"\1***", text)


# --- Rasa's response schema (only what we use; extra keys are ignored) ---------------------


class _RasaIntent(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    confidence: float

    @field_validator("confidence")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value) or value < -1e-6 or value > 1 + 1e-6:
            raise ValueError(f"confidence {value!r} is not in [0, 1]")
        return min(1.0, max(0.0, value))

    @field_validator("name")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("intent name is empty")
        return value


class _RasaEntity(BaseModel):
    model_config = ConfigDict(extra="ignore")

    entity: str
    value: Any = None
    start: int | None = None
    end: int | None = None
    extractor: str | None = None
    confidence_entity: float | None = None


class _RasaParse(BaseModel):
    model_config = ConfigDict(extra="ignore")

    text: str = ""
    intent: _RasaIntent
    entities: list[_RasaEntity] = []
    intent_ranking: list[_RasaIntent] = []


@dataclass(frozen=True)
class RetryPolicy:
    """At most `attempts` tries per call, sleeping `backoff_s` · 2^n (± jitter) between them."""

    attempts: int = 3
    backoff_s: float = 0.05
    backoff_max_s: float = 0.5
    jitter: float = 0.5

    def delay(self, attempt: int) -> float:
        """Sleep before retry number `attempt` (1 = first retry)."""
        base = min(self.backoff_max_s, self.backoff_s * (2 ** (attempt - 1)))
        return base * (1 + self.jitter * (random.random() * 2 - 1))


def _transient(exc: NluBackendError) -> bool:
    if isinstance(exc, RasaHTTPError):
        return exc.transient
    return isinstance(exc, (RasaUnavailableError, RasaTimeoutError))


class RasaClient:
    """Parses messages through a running Rasa server.

    `transport` is for tests (``httpx.MockTransport``); `sleep` and the breaker's clock are
    injectable so retry/backoff/breaker behaviour is testable without waiting.
    """

    backend_name = "rasa"

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout_s: float = 0.7,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        synonyms: SynonymTable | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        ranking_size: int = 10,
    ) -> None:
        if not base_url:
            raise ValueError("Rasa base URL is empty")
        _install_redaction()
        self.base_url = base_url.rstrip("/")
        self._token = token or None
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        self.breaker = breaker or CircuitBreaker()
        self._synonyms = synonyms
        self._sleep = sleep
        self._ranking_size = ranking_size
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            transport=transport,
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=8),
        )

    async def __aenter__(self) -> RasaClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def _params(self) -> dict[str, str]:
        return {"token": self._token} if self._token else {}

    async def _post_once(self, text: str, timeout_s: float) -> dict[str, Any]:
        try:
            response = await self._http.post(
                "/model/parse",
                params=self._params(),
                json={"text": text},
                timeout=httpx.Timeout(timeout_s),
            )
        except httpx.TimeoutException as exc:
            raise RasaTimeoutError(
                f"Rasa at {self.base_url} did not answer within {timeout_s:.2f}s"
            ) from exc
        except httpx.TransportError as exc:
            raise RasaUnavailableError(
                f"Rasa at {self.base_url} is unreachable: {type(exc).__name__}: {redact(str(exc))}"
            ) from exc
        if response.status_code != 200:
            detail = redact(response.text[:200].replace("\n", " "))
            hint = " (check HWCRM_NLU__RASA_TOKEN)" if response.status_code in (401, 403) else ""
            raise RasaHTTPError(
                response.status_code,
                f"Rasa at {self.base_url} answered HTTP {response.status_code}{hint}: {detail}",
            )
        try:
            body = response.json()
        except ValueError as exc:
            raise RasaResponseError(
                f"Rasa at {self.base_url} answered with a body that is not JSON: "
                f"{response.text[:120]!r}"
            ) from exc
        if not isinstance(body, dict):
            raise RasaResponseError(f"Rasa answered a {type(body).__name__}, not a JSON object")
        return body

    async def parse_raw(self, text: str, deadline_s: float | None = None) -> dict[str, Any]:
        """The raw JSON of ``/model/parse`` for `text`, with retries, within `deadline_s`."""
        if not self.breaker.allow():
            raise CircuitOpenError(
                f"Rasa circuit open after {self.breaker.consecutive_failures} consecutive "
                f"failures; next probe in {self.breaker.retry_in_s():.1f}s"
            )
        started = time.monotonic()
        budget = deadline_s if deadline_s is not None else math.inf
        attempt = 0
        try:
            while True:
                attempt += 1
                remaining = budget - (time.monotonic() - started)
                try:
                    if remaining <= 0:
                        raise RasaTimeoutError(
                            f"Rasa at {self.base_url}: time budget of {budget:.2f}s used up"
                        )
                    body = await self._post_once(text, min(self.timeout_s, remaining))
                except NluBackendError as exc:
                    delay = self.retry.delay(attempt)
                    remaining = budget - (time.monotonic() - started)
                    if (
                        not _transient(exc)
                        or attempt >= self.retry.attempts
                        or remaining <= delay + 0.01
                    ):
                        raise
                    log.debug("rasa attempt %d failed (%s); retrying in %.3fs", attempt, exc, delay)
                    await self._sleep(delay)
                    continue
                self.breaker.record_success()
                return body
        except NluBackendError:
            self._record_failure()
            raise
        except asyncio.CancelledError:
            # The caller gave up (its own budget): a slow service counts as a failure.
            self._record_failure()
            raise

    def _record_failure(self) -> None:
        opened = self.breaker.times_opened
        self.breaker.record_failure()
        if self.breaker.times_opened > opened:
            log.warning(
                "Rasa at %s failed %d times in a row: not calling it for %.0fs",
                self.base_url,
                self.breaker.consecutive_failures,
                self.breaker.cooldown_s,
            )

    async def parse(self, text: str, deadline_s: float | None = None) -> ParseResult:
        """Parse `text`; raises a :class:`~nlu.errors.NluBackendError` subclass on failure."""
        started = time.perf_counter()
        body = await self.parse_raw(text, deadline_s)
        try:
            parsed = _RasaParse.model_validate(body)
        except ValidationError as exc:
            # Counted against the breaker: a server that answers garbage is not healthy.
            self._record_failure()
            errors = exc.errors()
            where = ".".join(str(p) for p in errors[0]["loc"]) if errors else "?"
            what = errors[0]["msg"] if errors else str(exc)
            raise RasaResponseError(f"Rasa answered an unexpected parse ({where}: {what})") from exc
        return self._to_result(text, parsed, (time.perf_counter() - started) * 1000)

    def _to_result(self, text: str, parsed: _RasaParse, latency_ms: float) -> ParseResult:
        ranking = [
            IntentScore(name=item.name, confidence=item.confidence)
            for item in sorted(parsed.intent_ranking, key=lambda i: -i.confidence)
        ][: self._ranking_size]
        if not ranking:
            ranking = [IntentScore(name=parsed.intent.name, confidence=parsed.intent.confidence)]
        entities: list[ParsedEntity] = []
        for item in parsed.entities:
            surface = ""
            if item.start is not None and item.end is not None and 0 <= item.start < item.end:
                surface = text[item.start : item.end]
            raw_value = "" if item.value is None else str(item.value)
            value = normalize_entity_value(item.entity, raw_value, surface, self._synonyms)
            if value is None:
                continue
            entities.append(
                ParsedEntity(
                    entity=item.entity,
                    value=value,
                    text=surface or raw_value,
                    start=item.start,
                    end=item.end,
                    extractor=item.extractor,
                    confidence=item.confidence_entity,
                )
            )
        return ParseResult(
            text=text,
            intent=parsed.intent.name,
            confidence=parsed.intent.confidence,
            ranking=ranking,
            entities=dedupe_entities(entities),
            backend=self.backend_name,
            language=detect_language(text),
            latency_ms=latency_ms,
        )

    async def status(self, timeout_s: float = 2.0) -> dict[str, Any]:
        """Rasa's ``GET /status`` (the loaded model); raises NluBackendError when unreachable."""
        try:
            response = await self._http.get(
                "/status", params=self._params(), timeout=httpx.Timeout(timeout_s)
            )
        except httpx.TimeoutException as exc:
            raise RasaTimeoutError(f"Rasa at {self.base_url}: /status timed out") from exc
        except httpx.TransportError as exc:
            raise RasaUnavailableError(
                f"Rasa at {self.base_url} is unreachable: {type(exc).__name__}"
            ) from exc
        if response.status_code != 200:
            raise RasaHTTPError(
                response.status_code, f"Rasa /status answered HTTP {response.status_code}"
            )
        try:
            body = response.json()
        except ValueError as exc:
            raise RasaResponseError("Rasa /status body is not JSON") from exc
        if not isinstance(body, dict):
            raise RasaResponseError("Rasa /status body is not a JSON object")
        return body

    async def model_loaded(self) -> bool:
        """Whether the server is up and has a model loaded (``/status`` names a model file)."""
        try:
            body = await self.status()
        except NluBackendError:
            return False
        return bool(body.get("model_file") or body.get("model_id"))
