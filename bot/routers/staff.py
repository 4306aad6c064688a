"""Router: the staff supergroup (agents in customer topics) and the customer's cancel button.

Every message in the staff group is taken here (nothing from the staff group reaches the
customer flows). `StaffTopicGate` lets through only agents writing in a customer's topic and
injects `agent` (StaffDTO) and `topic` (bot.handoff.TopicContext); each handler below calls
one function of `bot.handoff`.
"""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject, Filter
from aiogram.types import CallbackQuery, Message

from bot import handoff
from bot.deps import BotDeps, Texts
from bot.handoff import TopicContext
from bot.middlewares.handoff import StaffTopicGate
from crm_core.services import CrmServices
from crm_core.staff.schemas import StaffDTO


class InStaffChat(Filter):
    """True for messages in the configured staff supergroup (`bot.staff_chat_id`)."""

    async def __call__(self, message: Message, deps: BotDeps) -> bool:
        staff_chat = deps.settings.bot.staff_chat_id
        return bool(staff_chat) and message.chat.id == staff_chat


group = Router(name="staff-group")
group.message.filter(InStaffChat())
group.edited_message.filter(InStaffChat())
group.message.middleware(StaffTopicGate())

customer_side = Router(name="handoff-customer")

router = Router(name="staff")
router.include_routers(group, customer_side)


@group.message(Command("claim"))
async def claim(
    message: Message,
    bot: Bot,
    deps: BotDeps,
    crm: CrmServices,
    agent: StaffDTO,
    topic: TopicContext,
) -> None:
    await handoff.claim(bot, deps, crm, agent, topic)


@group.message(Command("close"))
async def close(
    message: Message,
    bot: Bot,
    deps: BotDeps,
    crm: CrmServices,
    agent: StaffDTO,
    topic: TopicContext,
) -> None:
    await handoff.close(bot, deps, crm, agent, topic)


@group.message(Command("bot"))
async def back_to_bot(
    message: Message,
    bot: Bot,
    deps: BotDeps,
    crm: CrmServices,
    agent: StaffDTO,
    topic: TopicContext,
) -> None:
    await handoff.release_to_bot(bot, deps, crm, agent, topic)


@group.message(Command("note"))
async def note(
    message: Message,
    command: CommandObject,
    bot: Bot,
    deps: BotDeps,
    crm: CrmServices,
    agent: StaffDTO,
    topic: TopicContext,
) -> None:
    await handoff.add_note(bot, deps, crm, agent, topic, command.args or "")


@group.message(Command("ticket"))
async def ticket(
    message: Message,
    command: CommandObject,
    bot: Bot,
    deps: BotDeps,
    crm: CrmServices,
    agent: StaffDTO,
    topic: TopicContext,
) -> None:
    await handoff.change_ticket(bot, deps, crm, agent, topic, command.args or "")


@group.message(Command("canned"))
async def canned(
    message: Message,
    command: CommandObject,
    bot: Bot,
    deps: BotDeps,
    crm: CrmServices,
    agent: StaffDTO,
    topic: TopicContext,
) -> None:
    await handoff.send_canned(bot, deps, crm, agent, topic, command.args or "")


@group.message(Command("transfer"))
async def transfer(
    message: Message,
    command: CommandObject,
    bot: Bot,
    deps: BotDeps,
    crm: CrmServices,
    agent: StaffDTO,
    topic: TopicContext,
) -> None:
    await handoff.transfer(bot, deps, crm, agent, topic, command.args or "")


@group.message(Command("card"))
async def card(
    message: Message, bot: Bot, deps: BotDeps, crm: CrmServices, topic: TopicContext
) -> None:
    await handoff.repost_card(bot, deps, crm, topic)


@group.message(F.text.startswith("/"))
async def unknown_command(message: Message, bot: Bot, deps: BotDeps, topic: TopicContext) -> None:
    await handoff.topic_help(bot, deps, topic)


@group.message()
async def agent_message(
    message: Message,
    bot: Bot,
    deps: BotDeps,
    crm: CrmServices,
    agent: StaffDTO,
    topic: TopicContext,
) -> None:
    """Anything else an agent writes in a customer topic goes to the customer."""
    await handoff.relay_agent_message(bot, deps, crm, agent, topic, message)


@group.edited_message()
async def ignore_edits(message: Message) -> None:
    """Edits in the staff group are not relayed (the customer keeps what was sent)."""


@customer_side.callback_query(F.data == handoff.CANCEL_CALLBACK)
async def stale_cancel(query: CallbackQuery, bot: Bot, t: Texts) -> None:
    """The cancel button of a request that is no longer queued (the middleware handles live
    ones)."""
    await bot.answer_callback_query(query.id, text=t("handoff.cancel_stale"))
