"""Identifier formats shared by every part of the product (see DESIGN.md, "Contracts")."""

from __future__ import annotations

import re

ORDER_NUMBER_PATTERN = r"SO-\d{8}"
SERIAL_NUMBER_PATTERN = r"SN[A-Z0-9]{10}"

ORDER_NUMBER_RE = re.compile(rf"^{ORDER_NUMBER_PATTERN}$")
SERIAL_NUMBER_RE = re.compile(rf"^{SERIAL_NUMBER_PATTERN}$")

# Customers type ids in free text: lower case, full-width dashes, spaces. These find them.
ORDER_NUMBER_IN_TEXT_RE = re.compile(r"(?<![A-Za-z0-9])[Ss][Oo]\s*[-－—_]?\s*(\d{8})(?!\d)")
SERIAL_NUMBER_IN_TEXT_RE = re.compile(r"(?<![A-Za-z0-9])[Ss][Nn]([A-Za-z0-9]{10})(?![A-Za-z0-9])")


def normalize_order_number(raw: str) -> str | None:
    """Return the canonical `SO-########` form of an order number typed by a person, or None."""
    match = ORDER_NUMBER_IN_TEXT_RE.search(raw.strip())
    return f"SO-{match.group(1)}" if match else None


def normalize_serial_number(raw: str) -> str | None:
    """Return the canonical `SN` + 10 upper-case alphanumerics form of a serial, or None."""
    match = SERIAL_NUMBER_IN_TEXT_RE.search(raw.strip())
    return f"SN{match.group(1).upper()}" if match else None


def is_order_number(value: str) -> bool:
    return bool(ORDER_NUMBER_RE.match(value))


def is_serial_number(value: str) -> bool:
    return bool(SERIAL_NUMBER_RE.match(value))
