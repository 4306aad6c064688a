"""One outbound rate limit for everything the bot sends to Telegram.

Telegram's limit (about 30 messages/s per bot, about 1 message/s per chat) covers the bot's
replies, agents' relayed messages and campaign pushes alike, so they share one token bucket:
in Redis for several processes (an atomic Lua script; the time is the Redis server's, so
every process agrees on it), in-process on the embedded default. Both run the same
algorithm:

- Replies and agents' messages (the bot session's request middleware below) take a token
  and never wait: when the bucket is empty they *borrow* (the bucket goes into debt, at most
  `max_debt_s` seconds' worth). A campaign never makes a customer wait for an answer.
- Pushes (the delivery sender) take a token only while the bucket holds more than
  `reply_reserve` tokens and the chat has had no message for `per_chat_interval_s`; else they
  wait for the time the script says. So pushes get what replies leave, replies always find
  tokens in the reserve, and a debt replies ran up is repaid by pushes waiting.
- A 429 on a push pauses every sender sharing the bucket (`pause_pushes`).

`rate_per_s: 0` lifts the global limit and `per_chat_interval_s: 0` the per-chat one (the
benchmark's "engine ceiling" run).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiogram import Bot
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType

log = logging.getLogger("bot.ratelimit")

# Bot API methods that put a message into a chat (what Telegram's flood limits count).
SENDING_METHODS = frozenset(
    {
        "sendMessage",
        "sendPhoto",
        "sendDocument",
        "sendVideo",
        "sendAudio",
        "sendVoice",
        "sendAnimation",
        "sendSticker",
        "sendMediaGroup",
        "sendLocation",
        "sendVenue",
        "sendContact",
        "sendPoll",
        "sendDice",
        "sendInvoice",
        "copyMessage",
        "copyMessages",
        "forwardMessage",
        "forwardMessages",
        "editMessageText",
        "editMessageCaption",
    }
)


@dataclass(frozen=True)
class RateLimitConfig:
    """The limits (see the module docstring)."""

    rate_per_s: float = 30.0
    burst: float = 5.0
    reply_reserve: float = 3.0
    per_chat_interval_s: float = 1.0
    max_debt_s: float = 60.0

    def __post_init__(self) -> None:
        if self.rate_per_s < 0 or self.per_chat_interval_s < 0:
            raise ValueError("rate limits cannot be negative (0 lifts a limit)")
        if self.rate_per_s and self.burst < self.reply_reserve + 1:
            raise ValueError(
                f"burst ({self.burst}) must exceed reply_reserve ({self.reply_reserve}) by at "
                "least 1, or pushes could never take a token"
            )

    @property
    def lifted(self) -> bool:
        return not self.rate_per_s and not self.per_chat_interval_s


class BucketStore(Protocol):
    """Where the bucket lives. `take` returns 0.0 when the token was taken, else the seconds
    to wait before asking again (pushes only: replies always get 0.0)."""

    async def take(self, priority: bool, chat: str | None, config: RateLimitConfig) -> float: ...

    async def pause(self, seconds: float) -> None: ...


class MemoryBucketStore:
    """The bucket in this process (embedded default: one process sends everything)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.tokens: float | None = None
        self.stamp = 0.0
        self.paused_until = 0.0
        self.chat_free_at: dict[str, float] = {}

    async def take(self, priority: bool, chat: str | None, config: RateLimitConfig) -> float:
        now = self.clock()
        rate = config.rate_per_s
        if rate:
            if self.tokens is None:
                self.tokens = config.burst
            else:
                self.tokens = min(config.burst, self.tokens + (now - self.stamp) * rate)
            self.stamp = now
        if priority:
            if rate:
                self.tokens = max((self.tokens or 0.0) - 1.0, -config.max_debt_s * rate)
            self._use_chat(chat, now, config)
            return 0.0
        if now < self.paused_until:
            return self.paused_until - now
        if chat is not None and config.per_chat_interval_s:
            free_at = self.chat_free_at.get(chat, 0.0)
            if free_at > now:
                return free_at - now
        if rate:
            need = config.reply_reserve + 1.0
            tokens = self.tokens or 0.0
            if tokens < need:
                return (need - tokens) / rate
            self.tokens = tokens - 1.0
        self._use_chat(chat, now, config)
        return 0.0

    def _use_chat(self, chat: str | None, now: float, config: RateLimitConfig) -> None:
        if chat is None or not config.per_chat_interval_s:
            return
        self.chat_free_at[chat] = now + config.per_chat_interval_s
        if len(self.chat_free_at) > 50_000:  # forget chats whose interval is over
            self.chat_free_at = {c: t for c, t in self.chat_free_at.items() if t > now}

    async def pause(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, self.clock() + seconds)


# KEYS: bucket hash, pause key, chat key (or ""). ARGV: priority (1/0), rate, burst,
# reserve, chat interval (s), max debt (tokens). Returns the wait in microseconds (0 = taken).
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local priority = ARGV[1] == '1'
local rate = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local reserve = tonumber(ARGV[4])
local interval = tonumber(ARGV[5])
local max_debt = tonumber(ARGV[6])
local tokens = burst
if rate > 0 then
  local state = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
  if state[1] then
    tokens = math.min(burst, tonumber(state[1]) + (now - tonumber(state[2])) * rate)
  end
end
local function use_chat()
  if KEYS[3] ~= '' and interval > 0 then
    redis.call('SET', KEYS[3], '1', 'PX', math.max(1, math.floor(interval * 1000)))
  end
end
local function store(value)
  if rate > 0 then
    redis.call('HSET', KEYS[1], 'tokens', tostring(value), 'stamp', tostring(now))
    redis.call('PEXPIRE', KEYS[1], 3600000)
  end
end
if priority then
  store(math.max(tokens - 1, -max_debt))
  use_chat()
  return 0
end
local paused = redis.call('PTTL', KEYS[2])
if paused > 0 then
  return paused * 1000
end
if KEYS[3] ~= '' and interval > 0 then
  local busy = redis.call('PTTL', KEYS[3])
  if busy > 0 then
    return busy * 1000
  end
end
if rate > 0 then
  local need = reserve + 1
  if tokens < need then
    store(tokens)
    return math.max(1, math.ceil((need - tokens) / rate * 1000000))
  end
  store(tokens - 1)
end
use_chat()
return 0
"""


class RedisBucketStore:
    """The bucket in Redis, shared by every process (bot workers, senders)."""

    def __init__(self, redis: Any, prefix: str = "hwcrm:rl") -> None:
        self.redis = redis
        self.prefix = prefix
        self._script = redis.register_script(_TAKE)

    async def take(self, priority: bool, chat: str | None, config: RateLimitConfig) -> float:
        keys = [
            f"{self.prefix}:bucket",
            f"{self.prefix}:pause",
            f"{self.prefix}:chat:{chat}" if chat is not None else "",
        ]
        args = [
            "1" if priority else "0",
            repr(float(config.rate_per_s)),
            repr(float(config.burst)),
            repr(float(config.reply_reserve)),
            repr(float(config.per_chat_interval_s)),
            repr(float(config.max_debt_s * config.rate_per_s)),
        ]
        waited = await self._script(keys=keys, args=args)
        return int(waited) / 1_000_000

    async def pause(self, seconds: float) -> None:
        millis = max(1, int(seconds * 1000))
        # never shorten a longer pause another sender set
        current = await self.redis.pttl(f"{self.prefix}:pause")
        if current is None or int(current) < millis:
            await self.redis.set(f"{self.prefix}:pause", "1", px=millis)


class RateLimiter:
    """The limiter every outbound path uses (see the module docstring)."""

    def __init__(
        self,
        store: BucketStore,
        config: RateLimitConfig | None = None,
        *,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        error_backoff_s: float = 0.5,
    ) -> None:
        self.store = store
        self.config = config or RateLimitConfig()
        self.sleep = sleep
        self.error_backoff_s = error_backoff_s
        self.replies = 0
        self.pushes = 0
        self.push_waits = 0

    async def note_reply(self, chat_id: int | str | None) -> None:
        """A reply or agent message is about to go out: take (or borrow) a token. Never
        waits; when the store is unreachable the reply still goes (logged)."""
        self.replies += 1
        if self.config.lifted:
            return
        try:
            await self.store.take(True, _chat_key(chat_id), self.config)
        except Exception:
            log.warning("rate-limit store unreachable: a reply went out uncounted", exc_info=True)

    async def acquire_push(self, chat_id: int | str, max_wait_s: float | None = None) -> bool:
        """Wait until a push to `chat_id` may go out, then take its token (True). With
        `max_wait_s`, give up (False, no token taken) rather than wait longer than that in
        all. A store that is unreachable means waiting: a push never goes without a token."""
        if self.config.lifted:
            self.pushes += 1
            return True
        chat = _chat_key(chat_id)
        waited = 0.0
        while True:
            try:
                wait = await self.store.take(False, chat, self.config)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("rate-limit store unreachable: push waits", exc_info=True)
                wait = self.error_backoff_s
            if wait <= 0:
                self.pushes += 1
                return True
            if max_wait_s is not None and waited + wait > max_wait_s:
                return False
            self.push_waits += 1
            waited += wait
            await self.sleep(wait)

    async def pause_pushes(self, seconds: float) -> None:
        """Telegram said 429: every sender sharing this bucket stops for `seconds`."""
        try:
            await self.store.pause(seconds)
        except Exception:
            log.warning("rate-limit store unreachable: could not share the pause", exc_info=True)


def _chat_key(chat_id: int | str | None) -> str | None:
    return None if chat_id is None else str(chat_id)


class RateLimitMiddleware(BaseRequestMiddleware):
    """Bot session request middleware: every reply / agent message takes its token (with
    priority) before it goes to Telegram. Pushes do not pass here: the sender takes theirs."""

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        if method.__api_method__ in SENDING_METHODS:
            await self.limiter.note_reply(getattr(method, "chat_id", None))
        return await make_request(bot, method)


def build_limiter(
    rate_per_s: float,
    burst: float,
    reply_reserve: float,
    per_chat_interval_s: float,
    *,
    redis: Any | None = None,
    prefix: str = "hwcrm:rl",
) -> RateLimiter:
    """A limiter in Redis when a client is given (production), else in-process."""
    config = RateLimitConfig(
        rate_per_s=rate_per_s,
        burst=burst,
        reply_reserve=reply_reserve,
        per_chat_interval_s=per_chat_interval_s,
    )
    store: BucketStore = (
        RedisBucketStore(redis, prefix) if redis is not None else MemoryBucketStore()
    )
    return RateLimiter(store, config)


def limiter_from_settings(settings: Any, redis: Any | None = None) -> RateLimiter:
    """The outbound limiter: in Redis with `rate_limit.backend: redis` (or `auto` and
    `bot.fsm_storage: redis`), else in-process."""
    section = settings.scheduler.rate_limit
    use_redis = section.backend == "redis" or (
        section.backend == "auto" and settings.bot.fsm_storage == "redis"
    )
    client = None
    if use_redis:
        if redis is None:
            from redis.asyncio import Redis

            redis = Redis.from_url(settings.bot.redis_url)
        client = redis
    return build_limiter(
        section.per_second,
        section.burst,
        section.reply_reserve,
        section.per_chat_interval_s,
        redis=client,
        prefix=section.redis_prefix,
    )
