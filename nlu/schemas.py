"""Typed NLU results: what every parser (Rasa, embedded, test double) returns to the bot."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class IntentScore(BaseModel):
    """One intent with its confidence (0–1)."""

    model_config = ConfigDict(frozen=True)

    name: str
    confidence: float = Field(ge=0.0, le=1.0)


class ParsedEntity(BaseModel):
    """An entity found in the message, with its canonical value.

    ``value`` is normalised: order numbers are ``SO-########``, serial numbers ``SN`` + 10
    upper-case characters, product categories the canonical key (``gpu``, ``ram`` …);
    ``text`` is what the customer wrote.
    """

    model_config = ConfigDict(frozen=True)

    entity: str
    value: str
    text: str
    start: int | None = None
    end: int | None = None
    extractor: str | None = None
    confidence: float | None = None
    role: str | None = None
    """``accessory`` / ``device`` in "a PSU for my 4090" (nlu.entities.assign_roles), else None."""


class ParseResult(BaseModel):
    """The parse of one message: intent, ranking, entities, and which backend answered."""

    model_config = ConfigDict(frozen=True)

    text: str
    """The text the model classified (cleaned and possibly truncated)."""
    intent: str
    confidence: float = Field(ge=0.0, le=1.0)
    ranking: list[IntentScore] = Field(default_factory=list)
    entities: list[ParsedEntity] = Field(default_factory=list)
    backend: str
    """``rasa``, ``embedded``, ``input`` (no model needed: empty/emoji only), or a double's name."""
    language: str = "en"
    truncated: bool = False
    notes: list[str] = Field(default_factory=list)
    """What was done to the input (truncated, control characters removed, …)."""
    fallback_reason: str | None = None
    """Why Rasa was not used for this message although it is configured, if it was not."""
    latency_ms: float | None = None

    def values(self, entity: str) -> list[str]:
        """Canonical values of every `entity` in the message, in order, without duplicates."""
        seen: list[str] = []
        for item in self.entities:
            if item.entity == entity and item.value not in seen:
                seen.append(item.value)
        return seen

    def first(self, entity: str) -> str | None:
        """The first canonical value of `entity`, or None."""
        found = self.values(entity)
        return found[0] if found else None

    def with_role(self, entity: str, role: str) -> str | None:
        """The first canonical value of `entity` with `role` ("accessory", "device"), or None."""
        for item in self.entities:
            if item.entity == entity and item.role == role:
                return item.value
        return None
