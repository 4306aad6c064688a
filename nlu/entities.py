"""Entity normalisation (shared by every backend) and rule-based extraction (embedded backend).

Normalisation is the contract: whatever backend found an entity, the bot gets
``SO-########`` order numbers and ``SN`` + 10 serials (via :mod:`crm_core.ids`), canonical
category keys (via :func:`crm_core.catalog.categories.canonical_category`, zh and en), and
product models mapped through the training data's synonyms (``rtx4090`` → ``RTX 4090``).
Values that cannot be normalised (``SO-123``) are dropped rather than passed on as if valid.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nlu.contract import (
    Entity,
    canonical_category,
    normalize_order_number,
    normalize_serial_number,
)
from nlu.rasa_data import NluData
from nlu.schemas import ParsedEntity

# Extra category words seen in customer text that are unambiguous in context (plurals).
_EXTRA_CATEGORY_WORDS: dict[str, str] = {
    "graphics cards": "gpu",
    "video cards": "gpu",
    "monitors": "monitor",
    "motherboards": "motherboard",
    "laptops": "laptop",
    "ssds": "ssd",
    "keyboards": "keyboard",
    "headsets": "headset",
    "routers": "router",
}

# Which extractor wins when two spans overlap with the same length.
_PRIORITY = {
    Entity.ORDER_NUMBER.value: 0,
    Entity.SERIAL_NUMBER.value: 0,
    Entity.PRODUCT_MODEL.value: 1,
    Entity.PRODUCT_CATEGORY.value: 2,
    Entity.SYMPTOM.value: 3,
}


def _compact(text: str) -> str:
    return re.sub(r"[\s\-_]+", "", text.lower())


class SynonymTable:
    """Surface form → synonym value, matched case-, space- and hyphen-insensitively."""

    def __init__(self, synonyms: Mapping[str, str] | None = None) -> None:
        self._exact = {" ".join(k.lower().split()): v for k, v in (synonyms or {}).items()}
        self._compact = {_compact(v): v for v in self._exact.values()}
        self._compact.update({_compact(k): v for k, v in self._exact.items()})

    def get(self, text: str) -> str | None:
        """The synonym value for `text`, or None."""
        return self._exact.get(" ".join(text.lower().split())) or self._compact.get(_compact(text))

    def as_dict(self) -> dict[str, str]:
        return dict(self._exact)


def normalize_category(raw: str, synonyms: SynonymTable | None = None) -> str | None:
    """The canonical category key for a category word in zh or en, or None."""
    text = " ".join(raw.strip().split())
    key = canonical_category(text)
    if key is None and synonyms is not None:
        mapped = synonyms.get(text)
        key = canonical_category(mapped) if mapped else None
    if key is None:
        key = _EXTRA_CATEGORY_WORDS.get(text.lower())
    return key


def normalize_entity_value(
    entity: str, value: str, text: str = "", synonyms: SynonymTable | None = None
) -> str | None:
    """The canonical value of one extracted entity, or None when it is not a valid value.

    `value` is what the extractor reports (possibly already synonym-mapped), `text` the
    surface form in the message.
    """
    value = str(value).strip()
    surface = text.strip() or value
    if entity == Entity.ORDER_NUMBER:
        return normalize_order_number(value) or normalize_order_number(surface)
    if entity == Entity.SERIAL_NUMBER:
        return normalize_serial_number(value) or normalize_serial_number(surface)
    if entity == Entity.PRODUCT_CATEGORY:
        return normalize_category(value, synonyms) or normalize_category(surface, synonyms)
    if entity == Entity.PRODUCT_MODEL and synonyms is not None:
        mapped = synonyms.get(value) or synonyms.get(surface)
        if mapped:
            return mapped
    cleaned = " ".join(value.split())
    return cleaned or None


def dedupe_entities(entities: Iterable[ParsedEntity]) -> list[ParsedEntity]:
    """Drop repeated (entity, value, span) triples; regex extractors win over statistical ones."""
    ranked = sorted(
        entities,
        key=lambda e: 0 if (e.extractor or "").startswith("Regex") else 1,
    )
    kept: list[ParsedEntity] = []
    for item in ranked:
        duplicate = any(
            k.entity == item.entity
            and (
                k.value == item.value
                and (
                    k.start is None
                    or item.start is None
                    or (k.start < (item.end or 0) and item.start < (k.end or 0))
                )
            )
            for k in kept
        )
        if not duplicate:
            kept.append(item)
    return sorted(kept, key=lambda e: (e.start if e.start is not None else 1 << 30, e.entity))


def _is_ascii_word(term: str) -> bool:
    return all(ord(c) < 128 for c in term)


def _lookup_pattern(terms: Sequence[str]) -> re.Pattern[str] | None:
    """One case-insensitive alternation; ASCII terms need word boundaries, CJK terms do not."""
    parts: list[str] = []
    for term in sorted({t.strip() for t in terms if t.strip()}, key=len, reverse=True):
        escaped = r"[\s\-]?".join(re.escape(piece) for piece in term.split())
        if _is_ascii_word(term):
            parts.append(rf"(?<![A-Za-z0-9]){escaped}(?![A-Za-z0-9])")
        else:
            parts.append(escaped)
    if not parts:
        return None
    return re.compile("|".join(parts), re.IGNORECASE)


@dataclass(frozen=True)
class _Candidate:
    entity: str
    start: int
    end: int
    extractor: str


def entity_rules(data: NluData) -> dict[str, Any]:
    """The plain-data rules a :class:`RuleEntityExtractor` is built from (persistable).

    Symptom phrases annotated in the training examples become a gazetteer.
    """
    symptoms = sorted(
        {
            span.text
            for example in data.examples
            for span in example.entities
            if span.entity == Entity.SYMPTOM and len(span.text.strip()) >= 2
        }
    )
    return {
        "regexes": {k: list(v) for k, v in data.regexes.items()},
        "lookups": {k: list(v) for k, v in data.lookups.items()},
        "synonyms": dict(data.synonyms),
        "gazetteers": {Entity.SYMPTOM.value: symptoms} if symptoms else {},
    }


class RuleEntityExtractor:
    """Regex + lookup-table (+ learned gazetteer) entity extraction from Rasa-format data.

    - ``regex:`` blocks (order/serial numbers, category and model patterns) are applied as-is.
    - ``lookup:`` tables are matched for the entities in `lookup_entities` (product models by
      default: plain category word lists fire on "blue screen" or "in case", and the
      category regex already carries every unambiguous category synonym).
    - Symptom phrases annotated in the training examples become a gazetteer ("花屏",
      "coil whine"), so the embedded backend extracts ``symptom`` too.
    Overlapping matches: the longest wins, then ids > models > categories > symptoms.
    """

    def __init__(
        self,
        regexes: Mapping[str, Sequence[str]],
        lookups: Mapping[str, Sequence[str]],
        synonyms: Mapping[str, str],
        gazetteers: Mapping[str, Sequence[str]] | None = None,
        lookup_entities: Sequence[str] = (Entity.PRODUCT_MODEL.value,),
    ) -> None:
        self._synonyms = SynonymTable(synonyms)
        self._patterns: list[tuple[str, str, re.Pattern[str]]] = []
        for entity, patterns in regexes.items():
            for pattern in patterns:
                try:
                    self._patterns.append((entity, "RegexEntityExtractor", re.compile(pattern)))
                except re.error:
                    continue  # a pattern Python cannot compile is skipped, never fatal
        for entity, terms in lookups.items():
            if entity in lookup_entities:
                compiled = _lookup_pattern(terms)
                if compiled is not None:
                    self._patterns.append((entity, "LookupEntityExtractor", compiled))
        for entity, terms in (gazetteers or {}).items():
            compiled = _lookup_pattern(terms)
            if compiled is not None:
                self._patterns.append((entity, "GazetteerEntityExtractor", compiled))

    @classmethod
    def from_data(cls, data: NluData) -> RuleEntityExtractor:
        """Build from loaded training data (regexes, lookups, synonyms, annotated symptoms)."""
        return cls(**entity_rules(data))

    def extract(self, text: str) -> list[ParsedEntity]:
        """Entities in `text` with canonical values (invalid ids are dropped)."""
        candidates: list[_Candidate] = []
        for entity, extractor, pattern in self._patterns:
            for match in pattern.finditer(text):
                if match.end() > match.start():
                    candidates.append(_Candidate(entity, match.start(), match.end(), extractor))
        candidates.sort(key=lambda c: (-(c.end - c.start), _PRIORITY.get(c.entity, 9), c.start))
        taken: list[_Candidate] = []
        for cand in candidates:
            if all(cand.end <= t.start or cand.start >= t.end for t in taken):
                taken.append(cand)
        out: list[ParsedEntity] = []
        for cand in sorted(taken, key=lambda c: c.start):
            surface = text[cand.start : cand.end]
            value = normalize_entity_value(cand.entity, surface, surface, self._synonyms)
            if value is None:
                continue
            out.append(
                ParsedEntity(
                    entity=cand.entity,
                    value=value,
                    text=surface,
                    start=cand.start,
                    end=cand.end,
                    extractor=cand.extractor,
                    confidence=1.0,
                )
            )
        return out

    @property
    def synonyms(self) -> SynonymTable:
        return self._synonyms
