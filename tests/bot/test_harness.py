"""The scenario harness itself: demo data is there and each test starts from it."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.db import unit_of_work
from crm_core.models import Customer


async def test_demo_identities_are_seeded_and_changes_roll_back(
    demo_sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with unit_of_work(demo_sessions) as session:
        ids = set((await session.scalars(select(Customer.telegram_user_id))).all())
        assert {1001, 1002, 1003} <= ids
        session.add(Customer(name="Temp", telegram_user_id=777_000_001))
    async with unit_of_work(demo_sessions) as session:
        count = await session.scalar(
            select(func.count()).where(Customer.telegram_user_id == 777_000_001)
        )
        assert count == 1  # committed within the test ...


async def test_each_test_starts_from_the_seed(
    demo_sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with unit_of_work(demo_sessions) as session:
        count = await session.scalar(
            select(func.count()).where(Customer.telegram_user_id == 777_000_001)
        )
        assert count == 0  # ... and gone in the next one
