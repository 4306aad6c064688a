"""Small replies several flows share: the main menu, "I did not understand", errors."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.flows.human import LOW_CONFIDENCE, human_button
from bot.keyboards import main_menu, menu_button, rows

if TYPE_CHECKING:
    from bot.flows.context import Flow


def offers_link(flow: Flow) -> bool:
    """Whether to offer account linking: the chat belongs to a bot-created prospect."""
    return flow.customer.is_prospect


async def send_menu(flow: Flow, key: str = "menu.prompt") -> None:
    """The main menu under a short prompt."""
    await flow.say(flow.t(key), main_menu(flow.t, offer_link=offers_link(flow)))


async def not_sure(flow: Flow, key: str = "nlu.not_sure") -> None:
    """Honest "I do not have a reliable answer": no guess, a person and the menu offered."""
    await flow.say(
        flow.t(key),
        rows(
            [
                human_button(flow, LOW_CONFIDENCE),
                menu_button(flow.t, "fault"),
                menu_button(flow.t, "orders"),
            ]
        ),
    )


async def needs_purchases(flow: Flow, key: str) -> None:
    """Nothing bought on this record: say so, and offer linking when it is a prospect."""
    hint = flow.t("link.hint") if offers_link(flow) else ""
    await flow.say(flow.t(key, hint=hint), main_menu(flow.t, offer_link=offers_link(flow)))
