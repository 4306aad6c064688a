"""Customers and queued delivery rows in bulk (tests and benchmarks/campaign_delivery.py)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.campaigns.models import Campaign, CampaignDelivery
from crm_core.campaigns.repository import insert_deliveries
from crm_core.customers.models import Customer

FIRST_CHAT = 5_000_000


async def seed_campaign(
    sessions: async_sessionmaker[AsyncSession],
    recipients: int,
    *,
    due_at: datetime,
    name: str = "bench",
    kind: str = "marketing",
    first_chat: int = FIRST_CHAT,
    batch: int = 5000,
    on_progress: Any = None,
) -> int:
    """`recipients` consenting customers (Telegram ids first_chat, first_chat+1, ...) in UTC
    (quiet hours apply in the customer's zone) and one queued push each; the campaign id."""
    now = datetime.now(UTC)
    async with sessions() as session:
        campaign = Campaign(name=name, kind=kind, state="running", timezone="UTC", variants=[])
        session.add(campaign)
        await session.flush()
        campaign_id = int(campaign.id)
        await session.commit()
    for start in range(0, recipients, batch):
        count = min(batch, recipients - start)
        chats = list(range(first_chat + start, first_chat + start + count))
        async with sessions() as session:
            await session.execute(
                insert(Customer),
                [
                    {
                        "name": f"Customer {chat}",
                        "telegram_user_id": chat,
                        "language": "en",
                        "timezone": "UTC",
                        "tags": [],
                        "marketing_consent": True,
                        "lifecycle_stage": "active",
                        "created_at": now,
                        "updated_at": now,
                    }
                    for chat in chats
                ],
            )
            ids = dict(
                (
                    await session.execute(
                        select(Customer.telegram_user_id, Customer.id).where(
                            Customer.telegram_user_id.in_(chats)
                        )
                    )
                ).all()
            )
            await insert_deliveries(
                session,
                [
                    {
                        "occurrence_key": f"campaign:{campaign_id}:bench",
                        "campaign_id": campaign_id,
                        "customer_id": ids[chat],
                        "chat_id": chat,
                        "kind": kind,
                        "language": "en",
                        "state": "queued",
                        "due_at": due_at,
                        "attempts": 0,
                        "text": f"<b>New PSU deals</b> for customer {chat}",
                        "buttons": [[{"text": "Unsubscribe", "callback_data": "cmp:u:{d}"}]],
                        "product_ids": [],
                        "created_at": now,
                        "updated_at": now,
                    }
                    for chat in chats
                ],
            )
            await session.commit()
        if on_progress is not None:
            on_progress(start + count)
    return campaign_id


async def delivery_states(sessions: async_sessionmaker[AsyncSession]) -> Counter[str]:
    async with sessions() as session:
        rows = await session.execute(
            select(CampaignDelivery.state, func.count()).group_by(CampaignDelivery.state)
        )
        return Counter({state: int(n) for state, n in rows})


async def sent_chats(sessions: async_sessionmaker[AsyncSession]) -> dict[str, set[int]]:
    """Chat ids by state (to compare with what the fake Bot API server received)."""
    async with sessions() as session:
        rows = await session.execute(select(CampaignDelivery.state, CampaignDelivery.chat_id))
        out: dict[str, set[int]] = {}
        for state, chat in rows:
            out.setdefault(state, set()).add(int(chat))
        return out


def past(minutes: int = 1) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=minutes)
