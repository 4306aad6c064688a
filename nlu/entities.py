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


# --- "X for my Y": which category is the accessory, which mention is the device ---------------

ROLE_ACCESSORY = "accessory"
ROLE_DEVICE = "device"
_MENTIONS = (Entity.PRODUCT_CATEGORY.value, Entity.PRODUCT_MODEL.value)

# The device is introduced by these words right before it ("a PSU for my 4090", "which case
# fits my RTX 4070", "给我的显卡配个电源", "买个电源给我的4070用", "适合7800X3D的散热器").
_DEVICE_BEFORE = re.compile(
    r"(?:\b(?:for|with|fits?|fitting|to\s+go\s+with|compatible\s+with|works?\s+with|"
    r"suits?|supports?|powers?|power|cool|run|handle|matches|match)"
    r"\s+(?:(?:my|the|a|an|our|this|that|his|her|me)\s+)?(?:(?:new|current|old)\s+)?"
    r"|\bmy\s+(?:(?:new|current|old)\s+)?"
    r"|(?:给|为|替|适合|适配|兼容)(?:我的|我家的?|我)?(?:这个|这块|这张|这颗|这台|那个)?"
    r"|我的(?:这个|这块|这张|这颗|这台)?)$",
    re.IGNORECASE,
)
# Between a device and its accessory ("4090配多大的电源", "7800X3D用什么散热器",
# "my 4090 needs a new psu").
_DEVICE_THEN_ACCESSORY = re.compile(
    r"配|搭|用|带|需要|适合|装|换|上什么|\b(?:needs?|wants?|requires?|deserves?)\b",
    re.IGNORECASE,
)
# "for" etc. between two mentions flips the order ("电源给我的显卡": the second is the device).
_ACCESSORY_THEN_DEVICE = re.compile(r"给|为|替|\b(?:for|fits?|with)\b", re.IGNORECASE)
# Category words too ambiguous for the category regex ("in case", "on board"), accepted as the
# accessory only right before a device connector ("which case fits my RTX 4070").
_AMBIGUOUS_ACCESSORY = re.compile(
    r"(?<![A-Za-z])(?P<word>case|cases|tower)(?=\s+(?:for|that\s+fits?|which\s+fits?|"
    r"to\s+fit|fits?|compatible\s+with|big\s+enough\s+for)\b)",
    re.IGNORECASE,
)
# A model the extractors do not know ("for my RTX 9999", "给我的 Arc B580"), accepted as the
# device only right after a device marker: the bot then says honestly it is not in the catalog.
_UNKNOWN_DEVICE_MODEL = re.compile(
    r"(?:\bfor\s+(?:my|the|a|an)\s+|给我的|为我的|我的)\s*"
    r"(?P<model>(?:[A-Za-z]{1,12}[\s\-]?){0,2}\d{2,5}(?:[\s\-]?(?:[A-Za-z]{1,5}\d{0,2}))?)"
    r"(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_SAME_DEVICE_GAP = re.compile(r"^\s*$|^\s*(?:is|是)\s*(?:an?\s+|the\s+)?$", re.IGNORECASE)


@dataclass
class _Group:
    """Adjacent mentions naming one thing ("B650 board", "RTX 4070 graphics card")."""

    items: list[ParsedEntity]

    @property
    def start(self) -> int:
        return self.items[0].start or 0

    @property
    def end(self) -> int:
        return self.items[-1].end or 0

    def categories(self) -> set[str]:
        return {e.value for e in self.items if e.entity == Entity.PRODUCT_CATEGORY}


def assign_roles(text: str, entities: Sequence[ParsedEntity]) -> list[ParsedEntity]:
    """Mark the accessory and the device in "X for my Y" with entity roles.

    Backend-independent (it reads only the text and the spans both backends report): in
    "给我的显卡配个电源" the ``psu`` category gets role ``accessory`` and ``gpu`` role
    ``device``; in "need a cooler for my 7800X3D" the model is the device. Entities without
    spans, or messages without both an accessory category and a device, are returned as they
    were (roles None).
    """
    spanned = [e for e in entities if e.start is not None and e.end is not None]
    mentions = sorted(
        (e for e in spanned if e.entity in _MENTIONS and e.role is None),
        key=lambda e: e.start or 0,
    )
    extra = _ambiguous_accessories(text, spanned)
    if not any(e.entity == Entity.PRODUCT_MODEL for e in mentions):
        extra += _unknown_device_models(text, [*spanned, *extra])
    mentions = sorted([*mentions, *extra], key=lambda e: e.start or 0)
    groups = _group(text, mentions)
    if len(groups) < 2:
        return list(entities)
    pair = _device_and_accessory(text, groups)
    if pair is None:
        return list(entities)
    device, accessory = pair
    roles = {id(e): ROLE_DEVICE for e in device.items}
    roles.update({id(e): ROLE_ACCESSORY for e in accessory.items})
    out = [e.model_copy(update={"role": roles[id(e)]}) if id(e) in roles else e for e in entities]
    out += [e.model_copy(update={"role": roles[id(e)]}) for e in extra if id(e) in roles]
    return sorted(out, key=lambda e: (e.start if e.start is not None else 1 << 30, e.entity))


def _ambiguous_accessories(text: str, taken: Sequence[ParsedEntity]) -> list[ParsedEntity]:
    found = []
    for match in _AMBIGUOUS_ACCESSORY.finditer(text):
        start, end = match.span("word")
        if any((e.start or 0) < end and start < (e.end or 0) for e in taken):
            continue
        found.append(
            ParsedEntity(
                entity=Entity.PRODUCT_CATEGORY.value,
                value="case",
                text=match.group("word"),
                start=start,
                end=end,
                extractor="AccessoryPattern",
                confidence=1.0,
            )
        )
    return found


def _unknown_device_models(text: str, taken: Sequence[ParsedEntity]) -> list[ParsedEntity]:
    found = []
    for match in _UNKNOWN_DEVICE_MODEL.finditer(text):
        start, end = match.span("model")
        surface = match.group("model").strip()
        end = start + len(surface)
        if any((e.start or 0) < end and start < (e.end or 0) for e in taken):
            continue
        found.append(
            ParsedEntity(
                entity=Entity.PRODUCT_MODEL.value,
                value=" ".join(surface.split()),
                text=surface,
                start=start,
                end=end,
                extractor="AccessoryPattern",
                confidence=0.5,
            )
        )
    return found


def _group(text: str, mentions: Sequence[ParsedEntity]) -> list[_Group]:
    groups: list[_Group] = []
    for item in mentions:
        if groups and _SAME_DEVICE_GAP.match(text[groups[-1].end : item.start or 0]):
            last = groups[-1]
            # Two different categories side by side ("键盘鼠标") are two things, not one.
            cats = last.categories()
            if item.entity != Entity.PRODUCT_CATEGORY or not cats or item.value in cats:
                last.items.append(item)
                continue
        groups.append(_Group([item]))
    return groups


def _device_and_accessory(text: str, groups: Sequence[_Group]) -> tuple[_Group, _Group] | None:
    """The (device, accessory) pair, or None when the message is not "X for my Y"."""
    for i, group in enumerate(groups):
        before = text[groups[i - 1].end if i else 0 : group.start]
        if _DEVICE_BEFORE.search(before.rstrip()) or _DEVICE_BEFORE.search(before):
            accessory = _nearest_accessory(groups, i)
            if accessory is not None:
                return group, accessory
    for i in range(len(groups) - 1):
        first, second = groups[i], groups[i + 1]
        gap = text[first.end : second.start]
        if (
            _DEVICE_THEN_ACCESSORY.search(gap)
            and not _ACCESSORY_THEN_DEVICE.search(gap)
            and _is_accessory(second, first)
        ):
            return first, second
    return None


def _nearest_accessory(groups: Sequence[_Group], device_index: int) -> _Group | None:
    device = groups[device_index]
    others = sorted(
        (g for j, g in enumerate(groups) if j != device_index),
        key=lambda g: abs(g.start - device.start),
    )
    return next((g for g in others if _is_accessory(g, device)), None)


def _is_accessory(group: _Group, device: _Group) -> bool:
    cats = group.categories()
    return bool(cats) and not cats <= device.categories()
