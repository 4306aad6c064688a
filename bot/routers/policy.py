"""Policy questions: the shop's terms answered from the policy articles, the account action
beside the answer.

"What is your return policy", "发货要几天", "what does an out-of-warranty repair cost" are
questions, not requests about one of the customer's orders: the reply is the knowledge-base
answer (with its source) and, first, the CRM's own numbers for that policy (the settings'
return and dead-on-arrival windows, the repair fee) so the reply never contradicts what the
CRM enforces. Beside the answer, as buttons, the account action the customer can take — start
a return, see the orders, check the warranty — only when they have something to act on, and
"link my account" when the chat is not linked yet.

The NLU tells a general question (`policy_question`) from an account request
(`return_refund`, `order_status`, `check_warranty`; see `nlu/contract.py`); an account
request from someone with nothing to act on is answered here too.
"""

from __future__ import annotations

from aiogram.types import InlineKeyboardButton

from bot.flows.context import Flow
from bot.flows.human import LOW_CONFIDENCE, human_button
from bot.flows.kb import answer_text, ask_kb, source_button
from bot.flows.policy import DIAGNOSIS_FEE, QUOTE_BUSINESS_DAYS, REFUND_BUSINESS_DAYS
from bot.flows.render import fmt_money
from bot.flows.replies import offers_link
from bot.keyboards import menu_button, stack

# Policy article (slug) → the account actions that go with it (main-menu actions).
RETURN_TOPICS = frozenset({"returns-refunds", "doa-policy"})
ORDER_TOPICS = frozenset({"shipping-delivery", "invoices"})
WARRANTY_TOPICS = frozenset(
    {
        "warranty-policy",
        "warranty-check",
        "extended-warranty",
        "paid-repair",
        "rma-procedure",
        "rma-shipping-packaging",
        "monitor-dead-pixels-policy",
    }
)
# What to offer when the answer's article is not known: by the intent asked.
INTENT_TOPICS = {
    "return_refund": "returns-refunds",
    "order_status": "shipping-delivery",
    "check_warranty": "warranty-policy",
}


def _slug(article_id: str | None) -> str:
    """`returns-refunds.zh` → `returns-refunds`."""
    if not article_id:
        return ""
    head, _, tail = article_id.rpartition(".")
    return head if tail in ("zh", "en") and head else article_id


async def answer_policy(flow: Flow, text: str, *, asked: str | None = None) -> None:
    """The policy answer to `text` (the CRM's numbers, the article) with the account actions
    beside it; `asked` is the account intent this came from, if any."""
    await flow.state.set_state(None)
    answer = await ask_kb(flow, text)
    topic = _slug(answer.article_id) if answer is not None else INTENT_TOPICS.get(asked or "", "")
    actions = await account_actions(flow, topic)
    if answer is None:
        await flow.say(
            flow.t("policy.no_answer"),
            stack(*[[b] for b in actions], [human_button(flow, LOW_CONFIDENCE)]),
        )
        return
    parts = [facts] if (facts := policy_facts(flow, topic)) else []
    parts.append(answer_text(flow, answer))
    markup = stack([source_button(flow, answer)], *[[b] for b in actions])
    await flow.say("\n\n".join(parts), markup)


def policy_facts(flow: Flow, topic: str) -> str:
    """The CRM's own numbers for a policy (settings win over any article's wording)."""
    crm = flow.crm.settings
    if topic == "returns-refunds":
        return flow.t(
            "policy.facts.returns",
            days=crm.return_window_days,
            refund_days=REFUND_BUSINESS_DAYS,
            doa_days=crm.doa_window_days,
        )
    if topic == "doa-policy":
        return flow.t("policy.facts.doa", days=crm.doa_window_days)
    if topic == "paid-repair":
        fee = " / ".join(fmt_money(flow.t, amount, currency) for amount, currency in DIAGNOSIS_FEE)
        return flow.t("policy.facts.paid_repair", fee=fee, days=QUOTE_BUSINESS_DAYS)
    return ""


async def account_actions(flow: Flow, topic: str) -> list[InlineKeyboardButton]:
    """Buttons for what the customer can do on their own records about `topic`: only what
    they have something to act on; "link my account" when the chat is not linked."""
    if offers_link(flow):
        return [menu_button(flow.t, "link")]
    actions: list[InlineKeyboardButton] = []
    about_orders = topic in RETURN_TOPICS | ORDER_TOPICS or not topic
    if about_orders and await flow.crm.orders.list_orders(flow.customer.id, limit=1):
        actions.append(menu_button(flow.t, "returns" if topic in RETURN_TOPICS else "orders"))
    about_units = topic in WARRANTY_TOPICS or not topic
    if about_units and await flow.crm.warranties.warranty_for_customer(flow.customer.id):
        actions.append(menu_button(flow.t, "warranty"))
    return actions
