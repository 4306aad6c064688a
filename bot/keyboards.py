"""Keyboards of the customer flows (labels from the locale files, data from bot/callbacks.py)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from aiogram.types import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
)

from bot.callbacks import (
    CategoryCb,
    FaultCb,
    LangCb,
    MenuCb,
    PrivacyCb,
    RateCb,
    RateCommentCb,
)
from bot.deps import Texts
from bot.i18n import LANGUAGES

MENU_ACTIONS = ("fault", "warranty", "orders", "returns", "product", "buy", "human")


def rows(buttons: Iterable[InlineKeyboardButton | None], per_row: int = 1) -> InlineKeyboardMarkup:
    """An inline keyboard of `buttons` (None skipped), `per_row` to a row."""
    kept = [b for b in buttons if b is not None]
    return InlineKeyboardMarkup(
        inline_keyboard=[kept[i : i + per_row] for i in range(0, len(kept), per_row)]
    )


def stack(*parts: Sequence[InlineKeyboardButton | None]) -> InlineKeyboardMarkup:
    """An inline keyboard with one row per part (None buttons and empty rows skipped)."""
    lines = [[b for b in part if b is not None] for part in parts]
    return InlineKeyboardMarkup(inline_keyboard=[line for line in lines if line])


def button(text: str, data: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=data)


def menu_button(t: Texts, action: str) -> InlineKeyboardButton:
    return button(t(f"menu.{action}"), MenuCb(action=action).pack())


def main_menu(t: Texts, *, offer_link: bool = False) -> InlineKeyboardMarkup:
    """The main menu: what the bot can do, two buttons a row."""
    actions = [*MENU_ACTIONS, "link"] if offer_link else list(MENU_ACTIONS)
    return rows((menu_button(t, a) for a in actions), per_row=2)


def link_keyboard(t: Texts) -> ReplyKeyboardMarkup:
    """Reply keyboard: share my own contact (Telegram vouches the number) or use an order."""
    return ReplyKeyboardMarkup(
        keyboard=[
            [KeyboardButton(text=t("link.share_contact_button"), request_contact=True)],
            [KeyboardButton(text=t("link.by_order_button"))],
        ],
        resize_keyboard=True,
        one_time_keyboard=True,
    )


def remove_keyboard() -> ReplyKeyboardRemove:
    return ReplyKeyboardRemove()


def language_keyboard(t: Texts) -> InlineKeyboardMarkup:
    return rows(
        (button(t(f"language.name.{code}"), LangCb(code=code).pack()) for code in LANGUAGES), 2
    )


def solved_keyboard(
    t: Texts, extra: Sequence[InlineKeyboardButton | None] = ()
) -> InlineKeyboardMarkup:
    return stack(
        [
            button(t("fault.solved_button"), FaultCb(action="solved").pack()),
            button(t("fault.unsolved_button"), FaultCb(action="unsolved").pack()),
        ],
        list(extra),
    )


def categories_keyboard(t: Texts, categories: Sequence[str]) -> InlineKeyboardMarkup:
    return rows((button(t(f"category.{c}"), CategoryCb(category=c).pack()) for c in categories), 3)


def privacy_keyboard(t: Texts) -> InlineKeyboardMarkup:
    return rows(
        [
            button(t("privacy.export_button"), PrivacyCb(action="export").pack()),
            button(t("privacy.delete_button"), PrivacyCb(action="delete").pack()),
        ]
    )


def confirm_keyboard(
    t: Texts, yes_label: str, yes: PrivacyCb, *, cancel: str = "privacy.cancel_button"
) -> InlineKeyboardMarkup:
    return rows(
        [button(yes_label, yes.pack()), button(t(cancel), PrivacyCb(action="cancel").pack())]
    )


def rating_keyboard(ticket: str = "", conversation_id: int = 0) -> InlineKeyboardMarkup:
    """1-5 as one row of buttons (digits and stars need no translation)."""
    return rows(
        (
            button(f"{score}⭐", RateCb(score=score, ticket=ticket, conv=conversation_id).pack())
            for score in range(1, 6)
        ),
        per_row=5,
    )


def skip_comment_keyboard(t: Texts) -> InlineKeyboardMarkup:
    return rows([button(t("feedback.no_comment_button"), RateCommentCb(action="skip").pack())])
