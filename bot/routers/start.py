"""/start, /help, /language, the main menu, "talk to a person", and account linking.

Linking: the customer shares their own contact with the reply-keyboard button (Telegram
vouches the number; someone else's contact is refused by the CRM), or types an order number
and the last 4 digits of the phone on that order's record. Wrong order/digit tries are
limited per Telegram user (`bot.flows.limits`), because the CRM service does not count them.

`set_commands(bot, translator)` publishes the command menu in zh and en (the runtime calls it
at startup).
"""

from __future__ import annotations

import re

from aiogram import Bot, F
from aiogram.filters import Command, CommandStart, StateFilter
from aiogram.types import BotCommand, BotCommandScopeAllPrivateChats, CallbackQuery, Message

from bot.callbacks import HumanCb, LangCb, MenuCb
from bot.deps import BotDeps
from bot.flows.context import PLAIN_TEXT, Flow, customer_router
from bot.flows.human import REASONS, REQUEST_HUMAN, hand_to_human
from bot.flows.limits import AttemptLimiter
from bot.flows.render import fmt_date
from bot.flows.replies import offers_link, send_menu
from bot.flows.states import LinkStates
from bot.i18n import LANGUAGES, Translator
from bot.keyboards import language_keyboard, link_keyboard, main_menu, remove_keyboard
from crm_core.customers.schemas import CustomerUpdate, LinkResult
from crm_core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from crm_core.ids import normalize_order_number

router = customer_router("start")

# The command menu, in the order Telegram shows it (descriptions: `command.<name>`).
COMMANDS = (
    "start",
    "help",
    "fault",
    "warranty",
    "orders",
    "product",
    "buy",
    "human",
    "language",
    "privacy",
    "stop",
)


async def set_commands(bot: Bot, translator: Translator) -> None:
    """Publish the command menu for private chats: one list per language, en as default."""
    scope = BotCommandScopeAllPrivateChats()
    for lang in (None, *LANGUAGES):
        texts_lang = lang or "en"
        commands = [
            BotCommand(command=name, description=translator.t(f"command.{name}", texts_lang))
            for name in COMMANDS
        ]
        await bot.set_my_commands(commands, scope=scope, language_code=lang)


# -- /start, /help, menu ----------------------------------------------------------------------


@router.message(CommandStart())
async def on_start(message: Message, flow: Flow) -> None:
    """Greeting, what the bot does, linking for people we do not know yet, the menu."""
    await flow.state.set_state(None)
    if offers_link(flow):
        await flow.say(flow.t("start.hello_new"), link_keyboard(flow.t))
    else:
        await flow.say(flow.t("start.hello_known", name=flow.customer.name))
    await send_menu(flow, "start.menu_prompt")


@router.message(Command("help"))
async def on_help(message: Message, flow: Flow) -> None:
    await flow.say(flow.t("help.text"), main_menu(flow.t, offer_link=offers_link(flow)))


@router.message(Command("cancel"))
async def on_cancel(message: Message, flow: Flow) -> None:
    """Leave whatever flow is in progress."""
    await flow.state.set_state(None)
    await flow.say(flow.t("start.cancelled"), remove_keyboard())
    await send_menu(flow)


@router.callback_query(MenuCb.filter())
async def on_menu(query: CallbackQuery, callback_data: MenuCb, flow: Flow) -> None:
    """A main-menu button: start that flow."""
    await open_menu_action(flow, callback_data.action)


async def open_menu_action(flow: Flow, action: str) -> None:
    """Start the flow behind a menu action (also used by commands)."""
    from bot.routers import faults, orders, privacy, products, sales, warranty

    await flow.state.set_state(None)
    if action == "fault":
        await faults.start_fault(flow)
    elif action == "warranty":
        await warranty.show_warranty(flow)
    elif action == "orders":
        await orders.show_orders(flow)
    elif action == "returns":
        await orders.show_orders(flow, for_return=True)
    elif action == "product":
        await products.ask_question(flow)
    elif action == "buy":
        await sales.start_inquiry(flow)
    elif action == "human":
        await hand_to_human(flow, REQUEST_HUMAN)
    elif action == "link":
        await start_linking(flow)
    elif action == "language":
        await ask_language(flow)
    elif action == "privacy":
        await privacy.show_privacy(flow)
    else:
        await send_menu(flow)


@router.message(Command("fault", "warranty", "orders", "product", "buy", "human", "link"))
async def on_flow_command(message: Message, flow: Flow) -> None:
    command = (message.text or "/").split()[0].lstrip("/").split("@")[0].lower()
    await open_menu_action(flow, command)


# -- a person ----------------------------------------------------------------------------------


@router.callback_query(HumanCb.filter())
async def on_human(query: CallbackQuery, callback_data: HumanCb, flow: Flow) -> None:
    """ "Talk to a person": the ticket in the button only helps routing, and only if it is
    really the customer's (a forged one is ignored, nothing is revealed)."""
    reason = callback_data.reason if callback_data.reason in REASONS else REQUEST_HUMAN
    category = None
    if callback_data.ticket:
        try:
            ticket = await flow.crm.tickets.get_for_customer(callback_data.ticket, flow.customer.id)
            category = ticket.category
        except NotFound:
            category = None
    await flow.state.set_state(None)
    await hand_to_human(flow, reason, category=category)


# -- language ----------------------------------------------------------------------------------


@router.message(Command("language"))
async def on_language(message: Message, flow: Flow) -> None:
    await ask_language(flow)


async def ask_language(flow: Flow) -> None:
    await flow.say(flow.t("language.prompt"), language_keyboard(flow.t))


@router.callback_query(LangCb.filter())
async def on_language_chosen(query: CallbackQuery, callback_data: LangCb, flow: Flow) -> None:
    """Save the language on the customer's record; answer in it from now on."""
    code = callback_data.code if callback_data.code in LANGUAGES else flow.lang
    customer = await flow.crm.customers.update_customer(
        flow.customer.id, CustomerUpdate(language=code), actor=f"customer:{flow.customer.id}"
    )
    flow = flow.with_customer(customer).in_language(code)
    await flow.say(flow.t("language.saved"))
    await send_menu(flow)


# -- account linking ---------------------------------------------------------------------------


def _link_limiter(flow: Flow) -> AttemptLimiter:
    return AttemptLimiter(flow.state, flow.deps.clock, name="link")


async def start_linking(flow: Flow) -> None:
    """Ask for the order number (or the contact, with the reply-keyboard button)."""
    if not offers_link(flow):
        await flow.say(flow.t("link.already", name=flow.customer.name), remove_keyboard())
        return
    await flow.state.set_state(LinkStates.order_number)
    await flow.say(flow.t("link.ask_order"), link_keyboard(flow.t))


def is_link_by_order_button(message: Message, deps: BotDeps) -> bool:
    """The reply-keyboard button "link with an order number", in any language."""
    labels = {deps.translator.t("link.by_order_button", lang) for lang in LANGUAGES}
    return message.text in labels


@router.message(is_link_by_order_button)
async def on_link_button(message: Message, flow: Flow) -> None:
    await start_linking(flow)


@router.message(F.contact)
async def on_contact(message: Message, flow: Flow) -> None:
    """A shared contact: linked only when it is the sender's own (the CRM checks it)."""
    assert message.contact is not None
    try:
        result = await flow.crm.customers.link_telegram_by_contact(
            flow.user_id, message.contact.phone_number, message.contact.user_id
        )
    except PermissionDenied:
        await flow.say(flow.t("link.not_your_contact"), link_keyboard(flow.t))
        return
    except NotFound:
        await flow.say(flow.t("link.contact_unknown"), link_keyboard(flow.t))
        return
    except Conflict:
        await flow.say(flow.t("link.conflict"), remove_keyboard())
        return
    await _linked(flow, result)


@router.message(StateFilter(LinkStates.order_number), PLAIN_TEXT)
async def on_link_order(message: Message, flow: Flow) -> None:
    if await _refuse_if_blocked(flow):
        return
    number = normalize_order_number(message.text or "")
    if number is None:
        await flow.say(flow.t("link.bad_order"))
        return
    await flow.state.update_data(link_order=number)
    await flow.state.set_state(LinkStates.phone_digits)
    await flow.say(flow.t("link.ask_digits", order=number), remove_keyboard())


@router.message(StateFilter(LinkStates.phone_digits), PLAIN_TEXT)
async def on_link_digits(message: Message, flow: Flow) -> None:
    digits = re.sub(r"\s", "", message.text or "")
    if not re.fullmatch(r"\d{4}", digits):
        await flow.say(flow.t("link.bad_digits"))
        return
    if await _refuse_if_blocked(flow):
        return
    number = str((await flow.state.get_data()).get("link_order") or "")
    limiter = _link_limiter(flow)
    try:
        result = await flow.crm.customers.link_telegram_by_order(flow.user_id, number, digits)
    except (NotFound, ValidationFailed):
        left = await limiter.record_failure()
        await flow.state.set_state(LinkStates.order_number)
        if left == 0:
            await _refuse_if_blocked(flow)
        else:
            await flow.say(flow.t("link.no_match", left=left), link_keyboard(flow.t))
        return
    except Conflict:
        await flow.state.set_state(None)
        await flow.say(flow.t("link.conflict"), remove_keyboard())
        return
    await limiter.reset()
    await _linked(flow, result)


async def _refuse_if_blocked(flow: Flow) -> bool:
    until = await _link_limiter(flow).blocked_until()
    if until is None:
        return False
    await flow.state.set_state(None)
    await flow.say(
        flow.t("link.too_many", time=f"{until:%H:%M}", date=fmt_date(flow.t, until)),
        link_keyboard(flow.t),
    )
    return True


async def _linked(flow: Flow, result: LinkResult) -> None:
    await flow.state.set_state(None)
    customer = result.customer
    if customer.language != flow.lang:
        # Keep talking the language the person uses here (Telegram's, or their /language
        # choice) rather than switching to whatever the record said.
        customer = await flow.crm.customers.update_customer(
            customer.id, CustomerUpdate(language=flow.lang), actor=f"customer:{customer.id}"
        )
    linked = flow.with_customer(customer)
    key = "link.already_linked" if result.already_linked else "link.done"
    await linked.say(linked.t(key, name=customer.name), remove_keyboard())
    await send_menu(linked)
