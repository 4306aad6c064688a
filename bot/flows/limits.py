"""A failed-attempt limiter kept in the FSM storage (memory embedded, Redis in production).

Account linking by order number + the last 4 phone digits can be guessed; the CRM service
answers every wrong try the same way but does not count them. The bot does: at most
`limit` failures per `window` per Telegram user, remembered under the user's own storage key
(a separate "destiny", so that /start or a cleared flow state does not reset it) and shared
by every bot worker when the storage is Redis.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from aiogram.fsm.context import FSMContext
from aiogram.fsm.storage.base import StorageKey

from crm_core.clock import Clock

LINK_MAX_FAILURES = 5
LINK_WINDOW = timedelta(hours=1)


class AttemptLimiter:
    """Counts failures in a sliding window; `blocked_until` says when trying is allowed again."""

    def __init__(
        self,
        state: FSMContext,
        clock: Clock,
        *,
        name: str,
        limit: int = LINK_MAX_FAILURES,
        window: timedelta = LINK_WINDOW,
    ) -> None:
        key = state.key
        self._storage = state.storage
        self._key = StorageKey(
            bot_id=key.bot_id, chat_id=key.user_id, user_id=key.user_id, destiny=f"limit:{name}"
        )
        self._clock = clock
        self.limit = limit
        self.window = window

    async def _recent(self) -> list[datetime]:
        data = await self._storage.get_data(self._key)
        since = self._clock.now() - self.window
        times = [datetime.fromisoformat(value) for value in data.get("failures", [])]
        return [at for at in times if at > since]

    async def blocked_until(self) -> datetime | None:
        """When the next attempt is allowed, or None when it is allowed now."""
        recent = await self._recent()
        if len(recent) < self.limit:
            return None
        return sorted(recent)[-self.limit] + self.window

    async def record_failure(self) -> int:
        """Count a failure; returns how many attempts are left in the window."""
        recent = [*await self._recent(), self._clock.now()]
        await self._storage.set_data(
            self._key, {"failures": [at.isoformat() for at in recent[-self.limit :]]}
        )
        return max(0, self.limit - len(recent))

    async def reset(self) -> None:
        """Forget the failures (after a successful attempt)."""
        await self._storage.set_data(self._key, {})
