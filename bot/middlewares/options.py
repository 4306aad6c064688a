"""Tunables of the bot runtime (throttling, de-duplication, retries, shutdown).

They are read from the `bot` settings section when it defines them (e.g.
`HWCRM_BOT__THROTTLE_MESSAGES`), and fall back to the defaults below otherwise, so the runtime
works with any version of `BotSection`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class RuntimeOptions:
    """How the bot runtime behaves; every field has a production-sensible default."""

    throttle_messages: int = 12
    """Anti-flood: at most this many messages/button presses per user ..."""
    throttle_window_s: float = 10.0
    """... per window of this many seconds; the excess gets one notice and is not processed."""
    dedup_size: int = 50_000
    """Memory de-duplication: how many recent update ids are remembered (LRU)."""
    dedup_ttl_s: int = 86_400
    """Redis de-duplication: how long an update id is remembered (Telegram keeps 24 h)."""
    retry_max_attempts: int = 3
    """429 Too Many Requests: attempts per Bot API call (the first one included)."""
    retry_max_wait_s: float = 60.0
    """429: a `retry_after` longer than this is not waited for; the error is raised."""
    drain_timeout_s: float = 30.0
    """Graceful shutdown: how long in-flight updates may take to finish."""
    webhook_path: str = "/telegram/webhook"
    """Webhook mode: the local path when `bot.webhook_url` has none."""
    redis_prefix: str = "hwcrm:bot"
    """Prefix of every Redis key the bot writes (FSM, dedup, locks, throttling)."""
    chat_lock_ttl_s: float = 120.0
    """Redis per-chat lock: expiry, so that a crashed worker never blocks a chat for long."""
    concurrency_limit: int = 100
    """Polling mode: at most this many updates are handled at the same time."""
    group_hint_interval_s: float = 3_600.0
    """Groups the bot was added to get at most one "message me privately" hint per interval."""

    @classmethod
    def from_settings(cls, bot_section: Any, **overrides: Any) -> RuntimeOptions:
        """Defaults, overridden by the same-named keys of `bot_section`, then by `overrides`."""
        values: dict[str, Any] = {}
        for item in fields(cls):
            value = getattr(bot_section, item.name, None)
            if value is not None:
                values[item.name] = value
        return replace(cls(**values), **overrides)
