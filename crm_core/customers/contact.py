"""Normalisation of phone numbers (E.164) and e-mail addresses, shared by services and imports."""

from __future__ import annotations

import re

import phonenumbers

from crm_core.errors import ValidationFailed

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalize_phone(raw: str, default_region: str = "CN") -> str:
    """Return `raw` as E.164 (`+8613812345678`); ValidationFailed when it is not a valid number.

    Numbers without a country code are read in `default_region` (mainland China by default,
    as most of our customers are there).
    """
    text = raw.strip()
    if not text:
        raise ValidationFailed("empty phone number")
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        parsed = phonenumbers.parse(text, None if text.startswith("+") else default_region)
    except phonenumbers.NumberParseException as exc:
        raise ValidationFailed(f"cannot read phone number {raw!r}: {exc}") from None
    if not phonenumbers.is_valid_number(parsed):
        raise ValidationFailed(f"not a valid phone number: {raw!r}")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(raw: str) -> str:
    """Lower-case and trim an e-mail address; ValidationFailed when it is not one."""
    email = raw.strip().lower()
    if not _EMAIL_RE.match(email) or len(email) > 254:
        raise ValidationFailed(f"not a valid e-mail address: {raw!r}")
    return email
