"""Service-policy numbers the bot quotes that the CRM settings do not hold (yet).

Paid repair out of warranty: a diagnosis fee of 99 CNY / 15 USD, waived when the customer
accepts the repair quote; the quote comes within 3 business days of receiving the product.
Source: the policy facts in knowledge_base/articles/README.md and the `paid-repair` article
(the same numbers as `crm_core.tickets.service.RmaRefused`'s message). Move them into
`CrmSection` when the policy becomes configurable.
"""

from __future__ import annotations

from decimal import Decimal

DIAGNOSIS_FEE: tuple[tuple[Decimal, str], ...] = ((Decimal("99"), "CNY"), (Decimal("15"), "USD"))
QUOTE_BUSINESS_DAYS = 3
REFUND_BUSINESS_DAYS = 7


def diagnosis_fee_note() -> str:
    """The fee as agents see it on the ticket (English, like every CRM record note)."""
    fee = " / ".join(f"{amount} {currency}" for amount, currency in DIAGNOSIS_FEE)
    return (
        f"Customer accepted the paid-repair terms in Telegram: diagnosis fee {fee}, "
        f"waived if the repair quote is accepted; quote within {QUOTE_BUSINESS_DAYS} "
        "business days of receipt."
    )
