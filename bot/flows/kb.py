"""Asking the knowledge base from a handler: off the event loop, never inventing an answer.

`ask_kb` returns the KB's `Answer` only when it is confident; anything else (no confident
passage, no index yet, a KB failure) is None, and the caller says honestly that it has no
reliable answer and offers a person.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from aiogram.types import InlineKeyboardButton

from bot.flows.render import kb_answer_html

if TYPE_CHECKING:
    from bot.flows.context import Flow
    from knowledge_base.answer import Answer

log = logging.getLogger("bot.flows.kb")


async def ask_kb(flow: Flow, query: str, category: str | None = None) -> Answer | None:
    """The confident knowledge-base answer to `query` (filtered by `category`), or None."""
    if not query.strip():
        return None
    try:
        answer = await asyncio.to_thread(flow.deps.kb.answer, query, flow.lang, category)
    except Exception:  # no index yet, a broken index: say we do not know, never guess
        log.exception("knowledge base unavailable")
        return None
    if not answer.confident or not answer.passage:
        return None
    if answer.article_id:
        flow.kb_hits.append(answer.article_id)
    return answer


def answer_text(flow: Flow, answer: Answer) -> str:
    """The answer as Telegram HTML: the article's solution steps, compact, with the link to
    the whole article (see `bot.flows.render.kb_answer_html`)."""
    return kb_answer_html(flow.t, answer)


def source_button(flow: Flow, answer: Answer) -> InlineKeyboardButton | None:
    """A URL button to the source article, when it has a URL."""
    if not answer.url:
        return None
    return InlineKeyboardButton(text=flow.t("kb.open_article"), url=answer.url)
