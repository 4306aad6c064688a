"""Rendering CRM DTOs and knowledge-base answers as customer-facing Telegram HTML (every word
from the locale files; Markdown through `bot.rendering`)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from bot.deps import Texts
from bot.rendering import MESSAGE_LIMIT, fit_blocks, join_blocks, markdown_blocks
from crm_core.warranties.schemas import WarrantyState, WarrantyStatus

if TYPE_CHECKING:
    from knowledge_base.answer import Answer

# A knowledge-base answer stays compact (about two phone screens); the rest is one tap away.
ANSWER_MAX_CHARS = 1500


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


def kb_answer_html(t: Texts, answer: Answer, budget: int = ANSWER_MAX_CHARS) -> str:
    """A knowledge-base answer for Telegram: the article's title, its solution (what to do,
    not the matched symptom paragraph) rendered from Markdown, and the link to the whole
    article — "read more" when the solution did not fit `budget` visible characters (cut
    between blocks, never mid-word)."""
    blocks = markdown_blocks(answer.display_markdown)
    kept, cut = fit_blocks(blocks, budget)
    title = answer.title or ""
    if answer.url:
        source = t("kb.read_more" if cut else "kb.source", title=title, url=answer.url)
    else:
        source = t("kb.source_plain", title=title)
    return t("kb.answer", title=title, passage=join_blocks(kept), source=source)


def article_html(
    t: Texts, title: str, markdown: str, url: str | None, limit: int = MESSAGE_LIMIT
) -> str:
    """A whole article as one Telegram message: cut between blocks with a "read more" link
    to `url` when it is longer than Telegram allows."""
    blocks = markdown_blocks(markdown)
    reserve = 200 + len(title)  # title, link line and the blank lines between them
    kept, cut = fit_blocks(blocks, limit - reserve)
    if url:
        source = t("kb.read_more" if cut else "kb.source", title=title, url=url)
    else:
        source = t("kb.source_plain", title=title)
    return t("kb.answer", title=title, passage=join_blocks(kept), source=source)
