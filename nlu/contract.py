"""The NLU contract: the one Python source of truth for intent and entity names.

The Rasa project in ``nlu/rasa/`` (domain, training data, tests) uses exactly these names;
the bot and the CRM import them from here and never import Rasa. Identifier formats and
product categories are defined in :mod:`crm_core` and only re-exported here, so that NLU
code has a single import point.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from crm_core.catalog.categories import (
    CATEGORY_KEYS,
    CATEGORY_NAMES,
    CATEGORY_SYNONYMS,
    Category,
    canonical_category,
)
from crm_core.ids import (
    ORDER_NUMBER_IN_TEXT_RE,
    ORDER_NUMBER_PATTERN,
    ORDER_NUMBER_RE,
    SERIAL_NUMBER_IN_TEXT_RE,
    SERIAL_NUMBER_PATTERN,
    SERIAL_NUMBER_RE,
    is_order_number,
    is_serial_number,
    normalize_order_number,
    normalize_serial_number,
)

__all__ = [
    "CATEGORY_KEYS",
    "CATEGORY_NAMES",
    "CATEGORY_SYNONYMS",
    "ENTITIES",
    "FALLBACK_INTENT",
    "INTENTS",
    "ORDER_NUMBER_IN_TEXT_RE",
    "ORDER_NUMBER_PATTERN",
    "ORDER_NUMBER_RE",
    "SERIAL_NUMBER_IN_TEXT_RE",
    "SERIAL_NUMBER_PATTERN",
    "SERIAL_NUMBER_RE",
    "Category",
    "Entity",
    "Intent",
    "canonical_category",
    "is_order_number",
    "is_serial_number",
    "normalize_order_number",
    "normalize_serial_number",
]


class Intent(StrEnum):
    """Every intent the NLU service can return (names match ``nlu/rasa/domain.yml``)."""

    GREET = "greet"
    GOODBYE = "goodbye"
    THANKS = "thanks"
    AFFIRM = "affirm"
    DENY = "deny"
    REPORT_FAULT = "report_fault"
    """Something the customer has is broken or misbehaving."""
    PRODUCT_QUESTION = "product_question"
    """How-to, specifications, compatibility: nothing is broken, nothing is being bought."""
    CHECK_WARRANTY = "check_warranty"
    ORDER_STATUS = "order_status"
    RETURN_REFUND = "return_refund"
    PURCHASE_INQUIRY = "purchase_inquiry"
    """Wants to buy, asks a price or stock, asks for a recommendation."""
    REQUEST_HUMAN = "request_human"
    COMPLAINT = "complaint"
    """Angry about the service (slow replies, rude staff, broken promises)."""
    UNSUBSCRIBE = "unsubscribe"
    OUT_OF_SCOPE = "out_of_scope"


class Entity(StrEnum):
    """Every entity the NLU service can return (names match ``nlu/rasa/domain.yml``)."""

    PRODUCT_CATEGORY = "product_category"
    """Canonical category key (one of :data:`CATEGORY_KEYS`) after synonym mapping."""
    PRODUCT_MODEL = "product_model"
    ORDER_NUMBER = "order_number"
    SERIAL_NUMBER = "serial_number"
    SYMPTOM = "symptom"


INTENTS: Final[tuple[str, ...]] = tuple(i.value for i in Intent)
"""All intent names, in contract order."""

ENTITIES: Final[tuple[str, ...]] = tuple(e.value for e in Entity)
"""All entity names, in contract order."""

FALLBACK_INTENT: Final[str] = Intent.OUT_OF_SCOPE.value
"""Intent to assume when the NLU service is unavailable or unsure."""
