"""Rendering CRM DTOs as customer-facing text (every word from the locale files)."""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal

from bot.deps import Texts
from crm_core.warranties.schemas import WarrantyState, WarrantyStatus

PASSAGE_MAX_CHARS = 1500


def fmt_date(t: Texts, value: date | datetime | None) -> str:
    """A date in the customer's language ("2026-06-15" / "2026年6月15日"); "—" when unknown."""
    if value is None:
        return t("fmt.unknown_date")
    day = value.date() if isinstance(value, datetime) else value
    return t("fmt.date", y=day.year, m=day.month, d=day.day)


def fmt_money(t: Texts, amount: Decimal, currency: str) -> str:
    return t("fmt.money", amount=f"{amount:,.2f}", currency=currency)


def category_name(t: Texts, category: str | None) -> str:
    """The display name of a canonical category key (gpu → "Graphics card" / "显卡")."""
    if not category:
        return ""
    try:
        return t(f"category.{category}")
    except KeyError:
        return category


def device_label(lang: str, name_en: str, name_zh: str, serial: str | None) -> str:
    """A device as the customer recognises it: product name and the serial's tail."""
    name = name_zh if lang == "zh" else name_en
    return f"{name} (…{serial[-4:]})" if serial else name


def warranty_status_text(t: Texts, w: WarrantyStatus) -> str:
    """One line about a unit's warranty: active/expiring/expired/void with the dates."""
    end = fmt_date(t, w.ends_on)
    if w.status == WarrantyState.ACTIVE:
        return t("warranty.status.active", end=end)
    if w.status == WarrantyState.EXPIRING:
        return t("warranty.status.expiring", end=end, days=w.days_left)
    if w.status == WarrantyState.EXPIRED:
        return t("warranty.status.expired", end=end)
    if w.void_reason:
        return t("warranty.status.void", reason=w.void_reason)
    return t("warranty.status.not_covered", order=w.order_number)


def warranty_line(t: Texts, lang: str, w: WarrantyStatus) -> str:
    """ "• name (SN…) — status" for lists."""
    name = w.product_name_zh if lang == "zh" else w.product_name_en
    extension = t("warranty.includes_extension", months=w.extension_months)
    return t(
        "warranty.line",
        name=name,
        serial=w.serial_number or "—",
        status=warranty_status_text(t, w),
        extension=extension if w.extension_months else "",
    )


_MARKDOWN = re.compile(r"(\*\*|__|`)")
_HEADING = re.compile(r"^#{1,6}\s*", re.MULTILINE)


def plain_passage(text: str, limit: int = PASSAGE_MAX_CHARS) -> str:
    """A knowledge-base passage as plain text (no Markdown markers), cut at a line break."""
    clean = _HEADING.sub("", _MARKDOWN.sub("", text)).strip()
    if len(clean) <= limit:
        return clean
    cut = clean[:limit]
    newline = cut.rfind("\n")
    return (cut[:newline] if newline > limit // 2 else cut).rstrip() + "\n…"
