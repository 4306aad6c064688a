"""The bot's routers, in the order the dispatcher tries them.

Staff-group handling comes first (it only takes updates from the staff supergroup), then
commands and buttons of the customer flows, and the NLU free-text router last.
"""

from __future__ import annotations

from aiogram import Router


def all_routers() -> list[Router]:
    from bot.routers import (
        campaigns,
        faults,
        feedback,
        free_text,
        orders,
        privacy,
        products,
        sales,
        staff,
        start,
        warranty,
    )

    return [
        staff.router,
        start.router,
        privacy.router,
        campaigns.router,
        feedback.router,
        faults.router,
        warranty.router,
        orders.router,
        products.router,
        sales.router,
        free_text.router,
    ]
