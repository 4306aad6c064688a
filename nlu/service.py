"""What the bot uses: the :class:`IntentParser` protocol, the router, and a test double.

:class:`NluService` routes each message to Rasa when a Rasa URL is configured and the
service is healthy, and to the embedded classifier otherwise: when Rasa is not configured,
its circuit breaker is open, or the call fails or exceeds the per-message time budget. The
customer always gets a parse; every fallback is counted in :class:`NluMetrics` and logged
(reason only: message text is customer data and is not logged).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from nlu.contract import FALLBACK_INTENT
from nlu.embedded import EmbeddedParser
from nlu.entities import assign_roles
from nlu.errors import CircuitOpenError, NluBackendError
from nlu.rasa_client import RasaClient
from nlu.schemas import IntentScore, ParseResult
from nlu.text import DEFAULT_MAX_CHARS, PreparedText, detect_language, prepare_text

log = logging.getLogger(__name__)


@runtime_checkable
class IntentParser(Protocol):
    """Turns a customer message into a :class:`~nlu.schemas.ParseResult`; never raises on text."""

    async def parse(self, text: str) -> ParseResult:
        """Parse one message."""
        ...

    async def aclose(self) -> None:
        """Release connections and background resources."""
        ...


@dataclass
class NluMetrics:
    """Counters of the router (exported by whoever scrapes metrics; logged on fallbacks)."""

    requests: int = 0
    by_backend: Counter[str] = field(default_factory=Counter)
    fallbacks: Counter[str] = field(default_factory=Counter)
    """Messages answered by the embedded classifier although Rasa is configured, by reason."""
    rasa_latency_ms_total: float = 0.0

    @property
    def fallback_total(self) -> int:
        return sum(self.fallbacks.values())

    def snapshot(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "by_backend": dict(self.by_backend),
            "fallbacks": dict(self.fallbacks),
            "fallback_total": self.fallback_total,
        }


def _input_only_result(prepared: PreparedText) -> ParseResult:
    return ParseResult(
        text=prepared.text,
        intent=FALLBACK_INTENT,
        confidence=1.0,
        ranking=[IntentScore(name=FALLBACK_INTENT, confidence=1.0)],
        backend="input",
        language=detect_language(prepared.text),
        truncated=prepared.truncated,
        notes=list(prepared.notes),
    )


class NluService:
    """The router: Rasa when configured and healthy, the embedded classifier otherwise.

    - `rasa`: a :class:`RasaClient` or None (embedded only).
    - `budget_s`: the whole time Rasa may take for one message (all attempts); after that
      the embedded classifier answers.
    - `rasa_threshold`: Rasa answers below this confidence become ``out_of_scope``
      (the embedded classifier has its own threshold, chosen on validation data).
    """

    def __init__(
        self,
        embedded: EmbeddedParser,
        rasa: RasaClient | None = None,
        *,
        budget_s: float = 1.5,
        rasa_threshold: float = 0.0,
        max_chars: int = DEFAULT_MAX_CHARS,
        metrics: NluMetrics | None = None,
    ) -> None:
        self.embedded = embedded
        self.rasa = rasa
        self.budget_s = budget_s
        self.rasa_threshold = rasa_threshold
        self.max_chars = max_chars
        self.metrics = metrics or NluMetrics()

    async def warm_up(self) -> None:
        """Load (or train) the embedded model now instead of on the first message."""
        await asyncio.to_thread(self.embedded.model)

    async def aclose(self) -> None:
        if self.rasa is not None:
            await self.rasa.aclose()

    async def parse(self, text: str) -> ParseResult:
        """Parse one customer message. Never raises for any input text."""
        started = time.perf_counter()
        self.metrics.requests += 1
        prepared = prepare_text(text, self.max_chars)
        if not prepared.has_content:
            self.metrics.by_backend["input"] += 1
            return _input_only_result(prepared)
        reason: str | None = None
        if self.rasa is not None:
            try:
                result = await asyncio.wait_for(
                    self.rasa.parse(prepared.text, deadline_s=self.budget_s),
                    timeout=self.budget_s + 0.05,
                )
                result = self._apply_rasa_threshold(result)
                self.metrics.by_backend["rasa"] += 1
                return self._finish(result, prepared, started, None)
            except CircuitOpenError as exc:
                # Rasa already failed repeatedly (logged then); one line per message is noise.
                reason = exc.reason
                log.debug("NLU fallback to the embedded classifier: %s", exc)
            except NluBackendError as exc:
                reason = exc.reason
                log.warning("NLU fallback to the embedded classifier: %s (%s)", reason, exc)
            except TimeoutError:
                reason = "timeout"
                log.warning(
                    "NLU fallback to the embedded classifier: Rasa exceeded %.2fs", self.budget_s
                )
            except Exception as exc:  # a bug or an unexpected library error: still answer
                reason = "error"
                log.exception("NLU fallback to the embedded classifier: unexpected %r", exc)
            self.metrics.fallbacks[reason] += 1
        result = await self._parse_embedded(prepared.text)
        self.metrics.by_backend[result.backend] += 1
        return self._finish(result, prepared, started, reason)

    async def _parse_embedded(self, text: str) -> ParseResult:
        try:
            if not self.embedded.loaded:
                await asyncio.to_thread(self.embedded.model)
            return self.embedded.model().parse_prepared(text)
        except Exception as exc:  # the last line of defence: a valid parse, never an exception
            log.exception("embedded NLU failed: %r", exc)
            return ParseResult(
                text=text,
                intent=FALLBACK_INTENT,
                confidence=0.0,
                ranking=[IntentScore(name=FALLBACK_INTENT, confidence=0.0)],
                backend="none",
                language=detect_language(text),
                notes=["no NLU backend could classify this message"],
            )

    def _apply_rasa_threshold(self, result: ParseResult) -> ParseResult:
        if result.intent != FALLBACK_INTENT and result.confidence < self.rasa_threshold:
            return result.model_copy(
                update={"intent": FALLBACK_INTENT, "confidence": 1.0 - result.confidence}
            )
        return result

    def _finish(
        self, result: ParseResult, prepared: PreparedText, started: float, reason: str | None
    ) -> ParseResult:
        return result.model_copy(
            update={
                "entities": assign_roles(result.text, result.entities),
                "notes": list(prepared.notes) + list(result.notes),
                "truncated": prepared.truncated,
                "fallback_reason": reason,
                "latency_ms": (time.perf_counter() - started) * 1000,
            }
        )


class FakeIntentParser:
    """Test double: keyword rules → intent; records every message it was asked to parse.

    ``FakeIntentParser({"显卡|gpu": "report_fault"})`` answers ``report_fault`` for any
    message matching the regex, ``default`` (``out_of_scope``) otherwise. Entities come
    from the same regex extraction the embedded backend uses when `extractor` is given.
    """

    backend_name = "fake"

    def __init__(
        self,
        rules: dict[str, str] | Sequence[tuple[str, str]] | None = None,
        *,
        default: str = FALLBACK_INTENT,
        confidence: float = 0.95,
    ) -> None:
        items = rules.items() if isinstance(rules, dict) else (rules or [])
        self._rules = [(re.compile(pattern, re.IGNORECASE), intent) for pattern, intent in items]
        self.default = default
        self.confidence = confidence
        self.seen: list[str] = []

    async def parse(self, text: str) -> ParseResult:
        self.seen.append(text)
        prepared = prepare_text(text)
        intent, confidence = self.default, 1.0
        for pattern, rule_intent in self._rules:
            if pattern.search(prepared.text):
                intent, confidence = rule_intent, self.confidence
                break
        return ParseResult(
            text=prepared.text,
            intent=intent,
            confidence=confidence,
            ranking=[IntentScore(name=intent, confidence=confidence)],
            backend=self.backend_name,
            language=detect_language(prepared.text),
            truncated=prepared.truncated,
            notes=list(prepared.notes),
        )

    async def aclose(self) -> None:
        return None
