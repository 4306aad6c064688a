"""The NLU contract: the one Python source of truth for intent and entity names.

The Rasa project in ``nlu/rasa/`` (domain, training data, tests) uses exactly these names;
the bot and the CRM import them from here and never import Rasa. Identifier formats and
product categories are defined in :mod:`crm_core` and only re-exported here, so that NLU
code has a single import point.

General questions vs. the customer's own records (issue 8). ``policy_question`` is its own
intent: a question about the shop's terms in general — returns, delivery, dead on arrival,
repair prices, warranty terms, extended warranty, invoices, privacy ("what is your return
policy", "退货政策是什么", "how long is the warranty on SSDs"). ``return_refund``,
``order_status`` and ``check_warranty`` are about one of the customer's own orders or devices
("I want to return my order SO-…", "我要退货", "is my GPU still under warranty"). Both NLU
backends learn the difference from the same examples (``nlu/rasa/data/policy.yml``); an
intent rather than an entity, because the difference is in the whole sentence (possessive,
request vs. question), not in one span. The bot answers a policy question from the policy
articles and offers the account action beside it; an account request from someone with
nothing to act on gets the same policy answer, so a confusion between the two still answers.
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
    """The warranty of the customer's own unit(s) (a serial, an order, "my GPU")."""
    ORDER_STATUS = "order_status"
    """Where one of the customer's own orders is."""
    RETURN_REFUND = "return_refund"
    """Return, refund or exchange of something the customer bought ("I want to return it")."""
    PURCHASE_INQUIRY = "purchase_inquiry"
    """Wants to buy, asks a price or stock, asks for a recommendation."""
    REQUEST_HUMAN = "request_human"
    COMPLAINT = "complaint"
    """Angry about the service (slow replies, rude staff, broken promises)."""
    UNSUBSCRIBE = "unsubscribe"
    OUT_OF_SCOPE = "out_of_scope"
    POLICY_QUESTION = "policy_question"
    """A general question about the shop's terms (returns, delivery, DOA, repair prices,
    warranty terms, invoices, privacy), not about one of the customer's own records."""


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
