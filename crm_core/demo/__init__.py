"""Demo data: a realistic, deterministic, bilingual CRM data set at any scale.

    hwcrm demo seed [--seed 42] [--customers 2000] [--orders N] [--today YYYY-MM-DD] [--reset]

* ~180 products in all 16 categories (zh/en names, CNY prices, policy warranty lengths, specs
  that make the compatibility rules meaningful) and the default compatibility rules;
* customers with Chinese (Faker zh_CN) and English (en_US/en_GB) names, valid E.164 phones
  (+86 mobiles, +1, +44), unique e-mails, language, time zone, consumer/pro/enterprise with
  companies, ~60% marketing consent with consent events, ~35% with a Telegram id;
* 2.5 orders per customer over the three years before `--today`, with channels, statuses,
  delivery dates (some missing), items with unique serials, warranties in every state
  (active, expiring, expired, void, extended), returns, tickets in every state with a history
  the ticket state machine allows, satisfaction ratings, leads and a few staff users.

Fixed identities for trying the bot (Telegram user ids; see `DEMO_IDENTITIES`):

* 1001 — 张伟 (zh): a GPU under warranty (+12-month extension) and a mouse expiring in 12 days.
* 1002 — James Carter (en): an expired headset with an open repair ticket, a monitor.
* 1003 — 陈静 (zh, enterprise, 深圳星河数据科技有限公司): bulk orders, a void SSD, a closed
  RMA ticket, a quoted lead.

Staff: admin `admin`; agents `wang.fang` (Telegram 9001), `liu.yang` (9002), `emily.turner`
(9003), `zhao.lei` (9004); marketers `sun.li`, `oliver.hughes`. No passwords are set.

Same options → same rows (one `random.Random(seed)`, Faker seeded, dates relative to
`today`); `content_hash` proves it.
"""

from crm_core.demo.generator import DEMO_IDENTITIES, STAFF, DemoIdentity, DemoOptions
from crm_core.demo.writer import (
    DemoSummary,
    ProgressCallback,
    content_hash,
    ensure_empty_or_reset,
    is_empty,
    reset_demo_data,
    reset_tables,
    seed_demo,
)

__all__ = [
    "DEMO_IDENTITIES",
    "STAFF",
    "DemoIdentity",
    "DemoOptions",
    "DemoSummary",
    "ProgressCallback",
    "content_hash",
    "ensure_empty_or_reset",
    "is_empty",
    "reset_demo_data",
    "reset_tables",
    "seed_demo",
]
