"""A fake Telegram Bot API *HTTP server* on loopback, for black-box tests and benchmarks.

The real bot (a separate process, `HWCRM_BOT__API_BASE_URL=http://127.0.0.1:<port>`) talks
to it over HTTP exactly as it would to api.telegram.org:

- `POST /bot<token>/<method>` (form-encoded, multipart or JSON bodies; a wrong token gets
  401): getMe, getUpdates (a long-poll queue with Telegram's offset semantics),
  setWebhook / deleteWebhook / getWebhookInfo, sendMessage, sendPhoto, sendDocument,
  copyMessage, forwardMessage, editMessageText, answerCallbackQuery, createForumTopic,
  pinChatMessage, setMyCommands, sendChatAction, and any other method (answered `true`).
- Every call is recorded (`calls`, with the monotonic time it arrived); tests wait for them
  with `wait_for(...)`.
- Texts and captions with `parse_mode=HTML` are parsed like Telegram does
  (`bot.telegram_html`): unsupported or unclosed tags get Telegram's 400 "Bad Request: can't
  parse entities: ...", too long a text (after parsing) "Bad Request: message is too long";
  `RecordedCall.text` is the visible text, `.entities` its entities, `.html` what was sent.
- `fail_next(method, 429, retry_after=1)` / `fail_next(method, 403)` make the next call of a
  method fail like Telegram does.
- `push_update(...)` queues an update for getUpdates; `post_to_webhook(...)` POSTs one to the
  URL the bot registered with setWebhook, with the secret header it registered (or another).

    async with FakeBotAPIServer(token) as api:
        base_url = api.base_url
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from bot.telegram_html import ParsedMessage, TelegramHtmlError, parse_html

BOT_ID = 4242
BOT_USER = {
    "id": BOT_ID,
    "is_bot": True,
    "first_name": "NorthBridge Support",
    "username": "northbridge_bot",
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}


class _Registered:
    """Sentinel: the webhook secret the bot registered with setWebhook."""


REGISTERED = _Registered()


@dataclass
class RecordedCall:
    """One Bot API call the bot made."""

    method: str
    params: dict[str, Any]
    at: float  # time.monotonic() when it arrived
    result: Any = None
    parsed: ParsedMessage | None = None

    @property
    def chat_id(self) -> int | None:
        value = self.params.get("chat_id")
        try:
            return int(value) if value is not None else None
        except (TypeError, ValueError):
            return None

    @property
    def html(self) -> str:
        """The text or caption exactly as sent."""
        return str(self.params.get("text") or self.params.get("caption") or "")

    @property
    def text(self) -> str:
        """What the person sees (HTML parsed)."""
        return self.parsed.text if self.parsed is not None else self.html

    @property
    def entities(self) -> list[dict[str, Any]]:
        return self.parsed.entities if self.parsed is not None else []


def parse_call(method: str, params: dict[str, Any]) -> ParsedMessage | None:
    """Telegram's entity parsing and length checks of a call's text or caption; raises
    `TelegramHtmlError` (or ValueError with Telegram's description) when Telegram refuses."""
    key = "text" if "text" in params else "caption" if "caption" in params else None
    if key is None or method == "answerCallbackQuery" or not method.startswith(("send", "edit")):
        return None
    raw = str(params[key])
    if str(params.get("parse_mode") or "").upper() == "HTML":
        parsed = parse_html(raw)
    else:
        parsed = ParsedMessage(raw.strip())
    if key == "text" and not parsed.text:
        raise ValueError("Bad Request: message text is empty")
    if parsed.length > (4096 if key == "text" else 1024):
        raise ValueError(
            "Bad Request: message is too long"
            if key == "text"
            else "Bad Request: message caption is too long"
        )
    return parsed


@dataclass
class _Failure:
    status: int
    description: str
    retry_after: int | None = None


@dataclass
class FakeBotAPIServer:
    """The fake Bot API (see the module docstring)."""

    token: str
    host: str = "127.0.0.1"
    port: int = 0
    calls: list[RecordedCall] = field(default_factory=list)
    webhook_url: str = ""
    webhook_secret: str | None = None
    _updates: list[dict[str, Any]] = field(default_factory=list)
    _failures: dict[str, list[_Failure]] = field(default_factory=dict)
    _update_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(100_001))
    _message_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _topic_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(700))
    _changed: asyncio.Condition | None = None
    _runner: web.AppRunner | None = None
    _http: aiohttp.ClientSession | None = None
    _closing: bool = False
    listeners: list[Callable[[RecordedCall], None]] = field(default_factory=list)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> str:
        self._changed = asyncio.Condition()
        app = web.Application(client_max_size=50 * 1024 * 1024)
        app.router.add_route("POST", "/bot{token}/{method}", self._handle)
        app.router.add_route("GET", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server: Any = site._server
        assert server is not None
        self.port = int(server.sockets[0].getsockname()[1])
        return self.base_url

    async def stop(self) -> None:
        self._closing = True  # long polls return at once
        if self._changed is not None:
            await self._notify()
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeBotAPIServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- test controls ---------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        status: int,
        description: str | None = None,
        *,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """The next `times` calls of `method` fail with `status` (429 needs `retry_after`)."""
        default = {
            429: f"Too Many Requests: retry after {retry_after}",
            403: "Forbidden: bot was blocked by the user",
            400: "Bad Request",
        }.get(status, "Error")
        for _ in range(times):
            self._failures.setdefault(method, []).append(
                _Failure(status, description or default, retry_after)
            )

    def new_update_id(self) -> int:
        return next(self._update_ids)

    async def push_update(self, update: dict[str, Any]) -> int:
        """Queue an update for getUpdates (an `update_id` is assigned when missing)."""
        update = dict(update)
        update.setdefault("update_id", self.new_update_id())
        self._updates.append(update)
        await self._notify()
        return int(update["update_id"])

    async def post_to_webhook(
        self,
        update: dict[str, Any],
        secret: str | _Registered | None = REGISTERED,
        *,
        url: str | None = None,
    ) -> int:
        """POST an update to the registered webhook; returns the HTTP status. `secret`
        defaults to the one the bot registered; None sends no header."""
        target = url or self.webhook_url
        if not target:
            raise RuntimeError("the bot has not called setWebhook yet")
        if isinstance(secret, _Registered):
            secret = self.webhook_secret
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
        update = dict(update)
        update.setdefault("update_id", self.new_update_id())
        if self._http is None:
            self._http = aiohttp.ClientSession()
        async with self._http.post(target, json=update, headers=headers) as response:
            await response.read()
            return response.status

    def calls_to(self, chat_id: int, methods: tuple[str, ...] | None = None) -> list[RecordedCall]:
        return [
            c
            for c in self.calls
            if c.chat_id == chat_id and (methods is None or c.method in methods)
        ]

    async def wait_for(
        self, predicate: Callable[[RecordedCall], bool], timeout: float = 10.0
    ) -> RecordedCall:
        """The first recorded call matching `predicate` (waiting for it to arrive)."""
        assert self._changed is not None
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for call in self.calls[seen:]:
                if predicate(call):
                    return call
            seen = len(self.calls)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                methods = [c.method for c in self.calls][-20:]
                raise TimeoutError(f"no matching Bot API call within {timeout}s; last: {methods}")
            async with self._changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), remaining)

    async def wait_for_method(self, method: str, timeout: float = 10.0) -> RecordedCall:
        return await self.wait_for(lambda c: c.method == method, timeout)

    # -- the API ---------------------------------------------------------------------------

    async def _notify(self) -> None:
        assert self._changed is not None
        async with self._changed:
            self._changed.notify_all()

    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        method = request.match_info["method"]
        params = await _params(request)
        failures = self._failures.get(method)
        if failures:
            failure = failures.pop(0)
            self.calls.append(RecordedCall(method, params, time.monotonic(), failure))
            await self._notify()
            extra = {"retry_after": failure.retry_after} if failure.retry_after else None
            return _error(failure.status, failure.description, extra)
        try:
            parsed = parse_call(method, params)
        except TelegramHtmlError as exc:
            self.calls.append(RecordedCall(method, params, time.monotonic(), exc.description))
            await self._notify()
            return _error(400, exc.description)
        except ValueError as exc:
            self.calls.append(RecordedCall(method, params, time.monotonic(), str(exc)))
            await self._notify()
            return _error(400, str(exc))
        call = RecordedCall(method, params, time.monotonic(), parsed=parsed)
        self.calls.append(call)
        if method == "getUpdates":  # recorded on arrival (the bot is polling), answered later
            await self._notify()
            call.result = await self._get_updates(params)
        else:
            call.result = self._result_for(method, params, parsed)
            for listener in self.listeners:
                listener(call)
            await self._notify()
        return web.json_response({"ok": True, "result": call.result})

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        assert self._changed is not None
        offset = int(params.get("offset") or 0)
        timeout = float(params.get("timeout") or 0)
        limit = int(params.get("limit") or 100)
        if offset:  # confirmed: everything below offset is gone for good
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        deadline = time.monotonic() + timeout
        while not self._updates and not self._closing:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            async with self._changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), min(remaining, 1.0))
        return self._updates[:limit]

    def _result_for(
        self, method: str, params: dict[str, Any], parsed: ParsedMessage | None = None
    ) -> Any:
        chat_id = params.get("chat_id", 0)
        if method == "getMe":
            return BOT_USER
        if method == "setWebhook":
            self.webhook_url = str(params.get("url") or "")
            self.webhook_secret = params.get("secret_token") or None
            return True
        if method == "deleteWebhook":
            self.webhook_url, self.webhook_secret = "", None
            return True
        if method == "getWebhookInfo":
            return {"url": self.webhook_url, "has_custom_certificate": False,
                    "pending_update_count": len(self._updates)}  # fmt: skip
        if method == "createForumTopic":
            return {"message_thread_id": next(self._topic_ids), "name": params.get("name", ""),
                    "icon_color": 7322096}  # fmt: skip
        if method == "copyMessage":
            return {"message_id": next(self._message_ids)}
        if method.startswith("send") and method not in ("sendChatAction", "sendMediaGroup"):
            return self._message(chat_id, params, parsed)
        if method.startswith("edit") or method == "forwardMessage":
            return self._message(chat_id, params, parsed)
        return True

    def _message(
        self, chat_id: Any, params: dict[str, Any], parsed: ParsedMessage | None = None
    ) -> dict[str, Any]:
        try:
            chat = int(chat_id)
        except (TypeError, ValueError):
            chat = 0
        message: dict[str, Any] = {
            "message_id": int(params.get("message_id") or 0) or next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": chat, "type": "private" if chat > 0 else "supergroup"},
            "from": BOT_USER,
        }
        if params.get("text") is not None:
            message["text"] = parsed.text if parsed is not None else params["text"]
            if parsed is not None and parsed.entities:
                message["entities"] = parsed.entities
        if params.get("caption") is not None:
            message["caption"] = parsed.text if parsed is not None else params["caption"]
            if parsed is not None and parsed.entities:
                message["caption_entities"] = parsed.entities
        if params.get("message_thread_id") is not None:
            message["message_thread_id"] = int(params["message_thread_id"])
        if (
            isinstance(params.get("reply_markup"), dict)
            and "inline_keyboard" in params["reply_markup"]
        ):
            message["reply_markup"] = params["reply_markup"]
        return message


async def _params(request: web.Request) -> dict[str, Any]:
    """The call's parameters; JSON-encoded values (reply_markup, ...) are decoded."""
    if request.method == "GET":
        raw: dict[str, Any] = dict(request.query)
    elif request.content_type == "application/json":
        raw = await request.json()
    else:
        form = await request.post()
        raw = {}
        for key, value in form.items():
            if isinstance(value, web.FileField):
                raw[key] = {"filename": value.filename, "size": len(value.file.read())}
            else:
                raw[key] = value
    params: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, str) and value[:1] in "[{":
            try:
                params[key] = json.loads(value)
                continue
            except ValueError:
                pass
        params[key] = value
    return params


def _error(status: int, description: str, parameters: dict[str, Any] | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=status)


# -- update builders (JSON, as Telegram sends them) -----------------------------------------

_message_seq = itertools.count(1)


def user_json(user_id: int, lang: str = "en", name: str = "Customer") -> dict[str, Any]:
    return {"id": user_id, "is_bot": False, "first_name": name, "language_code": lang}


def message_update(
    user_id: int,
    text: str,
    *,
    lang: str = "en",
    name: str = "Customer",
    chat: dict[str, Any] | None = None,
    update_id: int | None = None,
) -> dict[str, Any]:
    """A Telegram update with a text message (private chat unless `chat` is given)."""
    update: dict[str, Any] = {
        "message": {
            "message_id": next(_message_seq),
            "date": int(time.time()),
            "chat": chat or {"id": user_id, "type": "private", "first_name": name},
            "from": user_json(user_id, lang, name),
            "text": text,
        }
    }
    if text.startswith("/"):
        command = text.split()[0]
        update["message"]["entities"] = [
            {"type": "bot_command", "offset": 0, "length": len(command)}
        ]
    if update_id is not None:
        update["update_id"] = update_id
    return update
