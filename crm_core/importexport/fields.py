"""Parsers for single values of an import row. Each raises `FieldError` with a readable reason.

Values come from CSV (always strings) or JSON Lines (strings, numbers, booleans, lists,
objects); every parser accepts both.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, time, tzinfo
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers

from crm_core.customers.contact import normalize_phone
from crm_core.ids import is_serial_number


class FieldError(ValueError):
    """A value cannot be used; the message says why (it ends up in the per-row report)."""


def text(value: Any) -> str:
    """The value as trimmed text ('' for null/absent); lists and objects are refused."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return str(value)
    raise FieldError(f"expected a single value, got {type(value).__name__}")


def bounded_text(value: Any, max_len: int) -> str:
    result = text(value)
    if len(result) > max_len:
        raise FieldError(f"longer than {max_len} characters")
    return result


_INT_RE = re.compile(r"[+-]?\d+")
_SERIAL_SPLIT = re.compile(r"[;|,\s]+")
_TRUE = {"true", "1", "yes", "y", "是", "t"}
_FALSE = {"false", "0", "no", "n", "否", "f"}


# A mainland mobile number as digits, optionally with +86 / 0086. Numbers starting 11x/12x/179
# are left to the full parser: CN's national_prefix_for_parsing (1(?:[12]\d|79)\d\d) may strip
# a carrier-selection prefix from them.
_CN_MOBILE_RE = re.compile(r"(?:\+86|0086)?(1[3-9]\d{9})")


def phone(value: Any, region: str = "CN") -> str:
    """E.164 form of a phone number: the same result, and the same error, as
    `crm_core.customers.contact.normalize_phone`, which it calls for everything but the most
    common input. For a bare mainland mobile number it skips `phonenumbers.parse` (the costly
    part, ~50 µs) and lets the library's own `is_valid_number` decide."""
    raw = text(value)
    match = _CN_MOBILE_RE.fullmatch(raw)
    if match and (region == "CN" or not raw[0].isdigit() or raw.startswith("0086")):
        national = match.group(1)
        if not national.startswith("179"):
            number = phonenumbers.PhoneNumber(country_code=86, national_number=int(national))
            if phonenumbers.is_valid_number(number):
                return "+86" + national
    return normalize_phone(raw, region)


def boolean(value: Any) -> bool:
    """true/false/1/0/yes/no/是/否 (any case)."""
    if isinstance(value, bool):
        return value
    word = text(value).lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise FieldError("expected true/false, 1/0, yes/no or 是/否")


def integer(value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int:
    if isinstance(value, bool):
        raise FieldError("expected a whole number")
    if isinstance(value, int):
        number = value
    else:
        raw = text(value)
        if isinstance(value, float) and value.is_integer():
            raw = str(int(value))
        if not _INT_RE.fullmatch(raw):
            raise FieldError("expected a whole number")
        number = int(raw)
    if minimum is not None and number < minimum:
        raise FieldError("must be positive" if minimum == 1 else f"must be at least {minimum}")
    if maximum is not None and number > maximum:
        raise FieldError(f"must be at most {maximum}")
    return number


_DECIMAL_RE = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")


def money(value: Any, *, max_digits: int = 12) -> Decimal:
    """A non-negative amount with at most two decimal places (`1299`, `1299.5`, `1299.00`)."""
    if isinstance(value, bool):
        raise FieldError("expected an amount like 1299.00")
    raw = text(value)
    if not _DECIMAL_RE.fullmatch(raw):
        raise FieldError("expected an amount like 1299.00")
    try:
        amount = Decimal(raw)
    except InvalidOperation:  # pragma: no cover - the regex already guarantees a number
        raise FieldError("expected an amount like 1299.00") from None
    if amount < 0:
        raise FieldError("must not be negative")
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2 and amount != amount.quantize(Decimal("0.01")):
        raise FieldError("more than two decimal places")
    amount = amount.quantize(Decimal("0.01"))
    if len(amount.as_tuple().digits) > max_digits:
        raise FieldError("amount too large")
    return amount


_ISO_DATE_START = re.compile(r"^\d{4}-\d{2}-\d{2}")


def moment(value: Any, zone: tzinfo) -> datetime:
    """An ISO 8601 date or date-time, as UTC. Without an offset it is read in `zone`;
    a bare date means midnight in `zone`. Impossible dates (2025-02-30) are refused."""
    raw = text(value)
    if not _ISO_DATE_START.match(raw):
        raise FieldError("expected an ISO 8601 date (2026-05-01) or date-time (2026-05-01T10:30)")
    if len(raw) == 10:
        try:
            day = date.fromisoformat(raw)
        except ValueError as exc:
            raise FieldError(f"impossible date: {exc}") from None
        return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
    try:
        parsed = datetime.fromisoformat(raw.replace("z", "Z"))
    except ValueError as exc:
        reason = str(exc)
        if "out of range" in reason or "must be in" in reason:
            raise FieldError(f"impossible date: {reason}") from None
        raise FieldError(
            "expected an ISO 8601 date (2026-05-01) or date-time (2026-05-01T10:30)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(UTC)


def iso(moment_: datetime) -> str:
    """How exports write a moment: ISO 8601 in UTC with an explicit offset."""
    return moment_.astimezone(UTC).isoformat()


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    """An IANA time zone (`Asia/Shanghai`); FieldError when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise FieldError(
            f"unknown time zone {name!r} (use an IANA name like Asia/Shanghai)"
        ) from None


_LIST_SPLIT = re.compile(r"[;|]")


def string_list(value: Any, *, separators: re.Pattern[str] = _LIST_SPLIT) -> list[str]:
    """`a;b|c` or a JSON list → ['a', 'b', 'c'] (trimmed, empties and repeats dropped)."""
    if isinstance(value, list):
        items = [text(item) for item in value]
    else:
        items = [part.strip() for part in separators.split(text(value))]
    seen: dict[str, None] = {}
    for item in items:
        if item:
            seen.setdefault(item, None)
    return list(seen)


def serials(value: Any) -> list[str]:
    """Serial numbers separated by `;` (or a JSON list), each `SN` + 10 letters/digits."""
    result: list[str] = []
    raw_items = value if isinstance(value, list) else _SERIAL_SPLIT.split(text(value))
    for raw in raw_items:
        item = text(raw).upper()
        if not item:
            continue
        if not is_serial_number(item):
            raise FieldError(
                f"invalid serial number {text(raw)!r} (expected SN + 10 letters/digits)"
            )
        if item in result:
            raise FieldError(f"serial number {item} listed twice")
        result.append(item)
    return result


def json_object(value: Any) -> dict[str, Any]:
    """A JSON object, given as an object (JSON Lines) or as a string holding one (CSV)."""
    if isinstance(value, dict):
        return value
    raw = text(value)
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise FieldError(f"not valid JSON: {exc.msg} at character {exc.pos}") from None
    if not isinstance(parsed, dict):
        raise FieldError('expected a JSON object like {"vram_gb": 12}')
    return parsed


def choice(value: Any, allowed: dict[str, str], what: str) -> str:
    """Map a word onto one of the allowed canonical values (synonyms allowed, any case)."""
    word = text(value).lower()
    if word in allowed:
        return allowed[word]
    canon = sorted(set(allowed.values()))
    raise FieldError(f"unknown {what} {text(value)!r}; expected one of {', '.join(canon)}")
