"""Deterministic generation of demo rows (pure Python, no database).

`DemoGenerator` turns `DemoOptions` into plain row tuples per table, chunk by chunk, in
foreign-key order: first the static tables (staff, products, rules, companies), then for each
chunk of customers their consent events, orders, items, serials, returns, warranty
extensions and voids, tickets with their event history, satisfaction ratings and leads.

Everything comes from one `random.Random(seed)` (and Faker seeded with the same seed for the
name pools) and from `options.today`: the same options always give the same rows. Ids are
assigned here, so child rows reference their parents without a database round trip; order
numbers, serials and ticket numbers are bijections of those ids (unique without bookkeeping).
"""

from __future__ import annotations

import math
import random
from bisect import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from itertools import accumulate, pairwise
from typing import Any

from crm_core.catalog.compatibility import RULES_BY_NAME, default_rule_rows, evaluate
from crm_core.demo.catalog_data import demo_products
from crm_core.demo.people import (
    NamePools,
    cn_mobile,
    email_for,
    scramble,
    uk_mobile,
    us_phone,
)
from crm_core.demo.texts import (
    LEAD_NOTES,
    RATING_COMMENTS,
    RESOLUTIONS,
    RETURN_REASONS,
    TICKET_TEXTS,
    VOID_REASONS,
)
from crm_core.tickets.state_machine import TRANSITIONS
from crm_core.warranties.service import add_months

DAY = 86_400.0
HOUR = 3_600.0
YEARS_OF_ORDERS = 3
SLA_HOURS = {"urgent": 4, "high": 8, "normal": 24, "low": 72}  # CrmSection defaults
_36_10 = 36**10
_B36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_B36_PAIRS = [a + b for a in _B36 for b in _B36]  # 36² two-character digits

# Columns written per table, in order (nullable columns not listed stay NULL).
COLUMNS: dict[str, tuple[str, ...]] = {
    "staff_users": (
        "id", "name", "role", "login", "telegram_user_id", "password_hash", "languages",
        "active", "created_at",
    ),
    "products": (
        "id", "sku", "name_en", "name_zh", "category", "brand", "price", "currency",
        "warranty_months", "specs", "active", "stock_qty", "created_at", "updated_at",
    ),
    "compatibility_rules": (
        "id", "source_category", "target_category", "rule", "params", "description_en",
        "description_zh", "active",
    ),
    "companies": ("id", "name", "tax_id", "created_at"),
    "customers": (
        "id", "name", "phone", "email", "telegram_user_id", "language", "timezone",
        "customer_type", "company_id", "tags", "marketing_consent", "consent_changed_at",
        "consent_source", "lifecycle_stage", "last_contact_at", "created_at", "updated_at",
    ),
    "consent_events": ("id", "customer_id", "granted", "source", "at"),
    "orders": (
        "id", "order_number", "customer_id", "channel", "status", "placed_at", "delivered_at",
        "currency", "total", "created_at", "updated_at",
    ),
    "order_items": ("id", "order_id", "product_id", "quantity", "unit_price"),
    "order_item_serials": ("id", "order_item_id", "serial_number"),
    "returns": (
        "id", "order_id", "order_item_id", "quantity", "reason", "status", "refund_amount",
        "requested_at", "updated_at",
    ),
    "warranty_extensions": ("id", "serial_number", "months", "purchased_at", "order_number"),
    "warranty_voids": ("id", "serial_number", "reason", "voided_by_staff_id", "voided_at"),
    "tickets": (
        "id", "ticket_number", "customer_id", "serial_number", "product_id", "category", "kind",
        "subject", "symptom", "attachments", "priority", "status", "assignee_staff_id",
        "sla_due_at", "resolution", "created_at", "updated_at", "resolved_at", "closed_at",
    ),
    "ticket_events": ("id", "ticket_id", "from_status", "to_status", "actor", "note", "at"),
    "satisfaction_ratings": (
        "id", "customer_id", "ticket_id", "score", "comment", "created_at",
    ),
    "leads": (
        "id", "customer_id", "prospect_name", "prospect_contact", "products_of_interest",
        "budget", "currency", "stage", "owner_staff_id", "source", "notes", "created_at",
        "updated_at",
    ),
}  # fmt: skip
TABLE_ORDER: tuple[str, ...] = tuple(COLUMNS)
JSON_COLUMNS: dict[str, frozenset[str]] = {
    "products": frozenset({"specs"}),
    "compatibility_rules": frozenset({"params"}),
    "customers": frozenset({"tags"}),
    "tickets": frozenset({"attachments"}),
    "leads": frozenset({"products_of_interest"}),
}

Batch = dict[str, list[tuple[Any, ...]]]

# Relative popularity of categories in orders.
CATEGORY_WEIGHTS = {
    "gpu": 14, "cpu": 8, "motherboard": 8, "ram": 10, "ssd": 12, "hdd": 4, "psu": 8,
    "cooler": 7, "case": 6, "monitor": 8, "laptop": 5, "keyboard": 5, "mouse": 6,
    "headset": 4, "router": 3, "ups": 2,
}  # fmt: skip
EXTENDABLE = frozenset({"gpu", "cpu", "motherboard", "psu", "monitor", "laptop", "ssd"})
B2B_BULK = frozenset({"ssd", "monitor", "keyboard", "mouse", "laptop", "ram", "hdd", "ups"})
TICKET_STATES = ("new", "triaged", "waiting_customer", "in_progress", "rma", "resolved", "closed")
CONSENT_SOURCES = ("signup_form", "telegram_bot", "store_pos", "checkout")


@dataclass(frozen=True)
class DemoOptions:
    """What to generate. `today` is explicit: nothing here reads the wall clock."""

    today: date
    seed: int = 42
    customers: int = 2000
    orders: int | None = None  # default: 2.5 × customers
    chunk_size: int = 10_000  # customers per chunk (rows of all tables follow them)

    @property
    def order_count(self) -> int:
        return self.orders if self.orders is not None else round(2.5 * self.customers)

    @property
    def now(self) -> datetime:
        """The demo's "now": noon UTC of `today`."""
        return datetime.combine(self.today, time(12, 0), UTC)


@dataclass(frozen=True)
class DemoIdentity:
    """A fixed customer for trying the bot (documented in `hwcrm demo identities`)."""

    telegram_user_id: int
    customer_id: int
    name: str
    language: str
    description_en: str
    description_zh: str


DEMO_IDENTITIES: tuple[DemoIdentity, ...] = (
    DemoIdentity(
        1001, 1, "张伟", "zh",
        "zh consumer: a GPU (RTX 4070) under warranty with a +12-month extension, an SSD, and "
        "a mouse whose warranty expires in 12 days; marketing consent given",
        "中文个人客户：一张在保的 RTX 4070 显卡（已购延保 12 个月）、一块固态硬盘，"
        "以及一个 12 天后过保的鼠标；已同意营销",
    ),
    DemoIdentity(
        1002, 2, "James Carter", "en",
        "en consumer (UK): a headset whose warranty expired, an open ticket about it "
        "(in_progress, paid repair), and an OLED monitor under warranty",
        "英文个人客户（英国）：一个已过保的耳机及其未结工单（处理中，付费维修），"
        "以及一台在保的 OLED 显示器",
    ),
    DemoIdentity(
        1003, 3, "陈静", "zh",
        "zh enterprise buyer at 深圳星河数据科技有限公司: bulk SSD and monitor orders (one SSD "
        "warranty void), a shipped workstation order, a closed RMA ticket and a quoted lead",
        "企业客户（深圳星河数据科技有限公司）采购：批量固态硬盘和显示器订单（其中一块硬盘保修已失效）、"
        "一笔已发货的工作站订单、一张已关闭的 RMA 工单和一条已报价的商机",
    ),
)  # fmt: skip

STAFF: tuple[tuple[str, str, str, int | None, str], ...] = (
    # name, role, login, telegram_user_id, languages
    ("管理员 Admin", "admin", "admin", None, "zh,en"),
    ("王芳", "agent", "wang.fang", 9001, "zh,en"),
    ("刘洋", "agent", "liu.yang", 9002, "zh"),
    ("Emily Turner", "agent", "emily.turner", 9003, "en"),
    ("赵磊", "agent", "zhao.lei", 9004, "zh,en"),
    ("孙丽", "marketer", "sun.li", None, "zh,en"),
    ("Oliver Hughes", "marketer", "oliver.hughes", None, "en"),
)


def order_number(order_id: int) -> str:
    """`SO-` + 8 digits, a bijection of the order id (unique, not guessable from volume)."""
    return f"SO-{10_000_000 + scramble(order_id, 90_000_000, 31_337):08d}"


def ticket_number(ticket_id: int) -> str:
    """`TK-` + 8 digits, a bijection of the ticket id."""
    return f"TK-{10_000_000 + scramble(ticket_id, 90_000_000, 4_242_424):08d}"


def serial_number(serial_id: int) -> str:
    """`SN` + 10 upper-case letters/digits, a bijection of the serial id."""
    # A multiplier of the modulus' magnitude, so consecutive serials share no prefix.
    x = scramble(serial_id, _36_10, 987_654_321_987, 1_303_985_770_429_145)
    x, a = divmod(x, 1296)
    x, b = divmod(x, 1296)
    x, c = divmod(x, 1296)
    e, d = divmod(x, 1296)
    return "SN" + _B36_PAIRS[e] + _B36_PAIRS[d] + _B36_PAIRS[c] + _B36_PAIRS[b] + _B36_PAIRS[a]


def _ts(dt: datetime) -> float:
    return dt.timestamp()


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(int(ts), UTC)


def _money(value: float) -> Decimal:
    """Whole yuan amounts (demo prices are integers) as Decimal."""
    return Decimal(round(value))


@dataclass
class _Unit:
    """A delivered unit of a customer: what tickets, extensions and voids pick from."""

    serial: str
    product: int
    start: float
    end: float
    void: bool = False


@dataclass
class _Counters:
    customer: int = 0
    consent: int = 0
    order: int = 0
    item: int = 0
    serial: int = 0
    ret: int = 0
    extension: int = 0
    void: int = 0
    ticket: int = 0
    event: int = 0
    rating: int = 0
    lead: int = 0
    tickets_by_state: dict[str, int] = field(default_factory=dict)


class DemoGenerator:
    """Generates the demo data set for `options` (see the module docstring)."""

    def __init__(self, options: DemoOptions, *, staff_id_base: int = 0) -> None:
        if options.customers < len(DEMO_IDENTITIES):
            raise ValueError(f"--customers must be at least {len(DEMO_IDENTITIES)}")
        if options.order_count < 0:
            raise ValueError("--orders cannot be negative")
        self.options = options
        self.rng = random.Random(options.seed)
        self.now = _ts(options.now)
        self.start = self.now - YEARS_OF_ORDERS * 365 * DAY
        self.staff_id_base = staff_id_base
        self.c = _Counters()
        self.products = demo_products()
        for i, p in enumerate(self.products, start=1):
            p["id"] = i
        self.by_sku = {p["sku"]: p for p in self.products}
        self._price = [0.0] + [float(p["price"]) for p in self.products]
        self._months = [0] + [int(p["warranty_months"]) for p in self.products]
        self._category = [""] + [str(p["category"]) for p in self.products]
        self._sku = [""] + [str(p["sku"]) for p in self.products]
        self._pick_cum = list(
            accumulate(
                CATEGORY_WEIGHTS[p["category"]] / math.sqrt(float(p["price"])) * 30
                for p in self.products
            )
        )
        self._psus_for_gpu = self._compatible_map("psu_for_gpu")
        self._builds = self._make_builds(160)
        n = options.customers
        enterprise = max(3, n // 20)
        n_companies = max(2, enterprise // 4)
        self.n_companies_zh = max(1, round(n_companies * 0.7))
        self.n_companies_en = max(1, n_companies - self.n_companies_zh)
        self.pools = NamePools.build(options.seed, self.n_companies_zh, self.n_companies_en)
        self.agents = [self.staff_id_base + i + 1 for i, s in enumerate(STAFF) if s[1] == "agent"]
        self._order_counts = self._assign_orders()

    # --- static tables -------------------------------------------------------------------

    def static_batch(self) -> Batch:
        """Staff, products, compatibility rules and companies (before any customer)."""
        created = _dt(self.start - 120 * DAY)
        batch: Batch = {t: [] for t in TABLE_ORDER}
        for i, (name, role, login, tg, langs) in enumerate(STAFF, start=1):
            batch["staff_users"].append(
                (self.staff_id_base + i, name, role, login, tg, None, langs, True, created)
            )
        for p in self.products:
            batch["products"].append(
                (
                    p["id"], p["sku"], p["name_en"], p["name_zh"], p["category"], p["brand"],
                    p["price"], p["currency"], p["warranty_months"], p["specs"], True,
                    p["stock_qty"], created, created,
                )
            )  # fmt: skip
        for i, rule in enumerate(default_rule_rows(), start=1):
            batch["compatibility_rules"].append(
                (
                    i, rule["source_category"], rule["target_category"], rule["rule"],
                    rule["params"], rule["description_en"], rule["description_zh"], True,
                )
            )  # fmt: skip
        rng = self.rng
        companies = [("深圳星河数据科技有限公司", "91440300MA5XINGHE1")]
        companies += [(n, self._tax_id("zh")) for n in self.pools.zh_companies]
        companies += [(n, self._tax_id("en")) for n in self.pools.en_companies]
        seen: set[str] = set()
        self.companies_zh: list[int] = []
        self.companies_en: list[int] = []
        for name, tax in companies:
            if name in seen:
                continue
            seen.add(name)
            cid = len(seen)
            batch["companies"].append(
                (cid, name, tax, _dt(self.start - rng.uniform(30, 900) * DAY))
            )
            if cid > 1:
                (self.companies_zh if _is_cjk(name) else self.companies_en).append(cid)
        if not self.companies_en:
            self.companies_en = self.companies_zh
        if not self.companies_zh:
            self.companies_zh = self.companies_en
        return batch

    def _tax_id(self, language: str) -> str:
        rng = self.rng
        if language == "zh":
            return (
                "91"
                + "".join(rng.choice(_B36[:10]) for _ in range(6))
                + "".join(rng.choice(_B36) for _ in range(10))
            )
        return "GB" + "".join(rng.choice(_B36[:10]) for _ in range(9))

    # --- customers and everything that hangs off them ------------------------------------

    def batches(self) -> Iterator[tuple[Batch, int]]:
        """(rows per table, customers done so far): the static tables, then each chunk."""
        yield self.static_batch(), 0
        yield from self._chunks()

    def _chunks(self) -> Iterator[tuple[Batch, int]]:
        n = self.options.customers
        size = max(1, self.options.chunk_size)
        cid = 0
        while cid < n:
            batch: Batch = {t: [] for t in TABLE_ORDER}
            end = min(n, cid + size)
            if cid == 0:
                self._demo_identities(batch)
                cid = len(DEMO_IDENTITIES)
            while cid < end:
                cid += 1
                self._customer(cid, batch)
            if end == n:
                self._prospect_leads(batch)
            yield batch, end

    def _assign_orders(self) -> list[int]:
        """Orders per generated customer: heavy-tailed, summing exactly to the order count."""
        rng = self.rng
        first = len(DEMO_IDENTITIES) + 1
        count = self.options.customers - len(DEMO_IDENTITIES)
        counts = [0] * (self.options.customers + 1)
        remaining = max(0, self.options.order_count - _DEMO_ORDER_COUNT)
        if count <= 0 or remaining == 0:
            return counts
        weights = list(accumulate(rng.paretovariate(2.2) for _ in range(count)))
        total = weights[-1]
        for _ in range(remaining):
            counts[first + bisect(weights, rng.random() * total)] += 1
        return counts

    def _customer(self, cid: int, batch: Batch) -> None:
        rng = self.rng
        r = rng.random
        pools = self.pools
        zh = r() < 0.7
        language = "zh" if zh else "en"
        if zh:
            first = pools.zh_first[int(r() * len(pools.zh_first))]
            last = pools.zh_last[int(r() * len(pools.zh_last))]
            name = last + first
            country = "CN" if r() < 0.94 else ("US" if r() < 0.7 else "GB")
        else:
            first = pools.en_first[int(r() * len(pools.en_first))]
            last = pools.en_last[int(r() * len(pools.en_last))]
            name = f"{first} {last}"
            x = r()
            country = "US" if x < 0.5 else ("GB" if x < 0.85 else "CN")
        timezone = "Asia/Shanghai"
        phone: str | None = None
        if country == "US":
            phone, timezone = us_phone(cid, rng, 17)
        elif country == "GB":
            phone, timezone = uk_mobile(cid, rng, 23), "Europe/London"
        else:
            phone = cn_mobile(cid, rng, 29)
        if r() < 0.08 or phone in RESERVED_PHONES:
            phone = None
        email = email_for(cid, language, first, last, rng, pools) if r() < 0.85 else None
        x = r()
        ctype = "enterprise" if x < 0.05 else ("pro" if x < 0.20 else "consumer")
        company = None
        if ctype == "enterprise":
            ids = self.companies_zh if zh else self.companies_en
            company = ids[int(r() * len(ids))]
        telegram = 5_000_000_000 + scramble(cid, 2_000_000_000, 99_991) if r() < 0.35 else None
        if phone is None and email is None and telegram is None:
            email = email_for(cid, language, first, last, rng, pools)

        n_orders = self._order_counts[cid]
        signup = self.now - r() * (YEARS_OF_ORDERS * 365 + 120) * DAY
        if n_orders:
            signup = min(signup, self.now - 2 * DAY)
        order_window_start = max(signup, self.start)
        placed = sorted(order_window_start + r() * (self.now - order_window_start - HOUR)
                        for _ in range(n_orders))  # fmt: skip
        units: list[_Unit] = []
        spent = 0.0
        bought_gpu = False
        for ts in placed:
            total, has_gpu = self._order(cid, ts, ctype, units, batch)
            spent += total
            bought_gpu = bought_gpu or has_gpu
        created = min(signup, placed[0] - r() * 20 * DAY) if placed else signup
        created = max(created, self.start - 150 * DAY)

        # Marketing consent (with proof) for ~60%.
        consent = False
        consent_at: float | None = None
        consent_source: str | None = None
        if r() < 0.66:
            self.c.consent += 1
            consent_at = created + r() * 2 * HOUR
            consent_source = CONSENT_SOURCES[int(r() * len(CONSENT_SOURCES))]
            batch["consent_events"].append(
                (self.c.consent, cid, True, consent_source, _dt(consent_at))
            )
            consent = True
            if r() < 0.09:
                self.c.consent += 1
                consent_at = consent_at + r() * (self.now - consent_at)
                consent_source = "unsubscribe_link" if r() < 0.6 else "telegram_bot"
                batch["consent_events"].append(
                    (self.c.consent, cid, False, consent_source, _dt(consent_at))
                )
                consent = False

        tags: list[str] = []
        if ctype == "enterprise":
            tags.append("b2b")
        if spent >= 20_000:
            tags.append("vip")
        if bought_gpu and r() < 0.4:
            tags.append("gamer")
        if ctype == "pro" and r() < 0.3:
            tags.append("creator")

        last_contact = self._tickets(cid, language, ctype, units, batch)
        stage = _lifecycle(placed, batch, self.now)
        updated = max(created, consent_at or created, last_contact or created)
        batch["customers"].append(
            (
                cid, name, phone, email, telegram, language, timezone, ctype, company, tags,
                consent, _dt(consent_at) if consent_at else None, consent_source, stage,
                _dt(last_contact) if last_contact else None, _dt(created), _dt(updated),
            )
        )  # fmt: skip
        if r() < 0.02:
            self._lead(cid, None, None, language, max(created, self.now - 365 * DAY), batch)

    def _pick_product(self) -> int:
        cum = self._pick_cum
        return bisect(cum, self.rng.random() * cum[-1]) + 1

    def _basket(self, ctype: str) -> list[tuple[int, int]]:
        """(product id, quantity) lines of one order."""
        r = self.rng.random
        if r() < 0.02 and self._builds:
            build = self._builds[int(r() * len(self._builds))]
            return [(pid, 1) for pid in build]
        x = r()
        n = 1 if x < 0.91 else (2 if x < 0.985 else 3)
        lines: dict[int, int] = {}
        for _ in range(n):
            pid = self._pick_product()
            qty = 1
            if ctype == "enterprise" and self._category[pid] in B2B_BULK and r() < 0.6:
                qty = 2 + int(r() * 9)
            elif self._category[pid] in ("ram", "ssd", "hdd") and r() < 0.05:
                qty = 2
            lines[pid] = lines.get(pid, 0) + qty
            if self._category[pid] == "gpu" and r() < 0.15:
                psus = self._psus_for_gpu.get(pid)
                if psus:
                    lines.setdefault(psus[int(r() * min(3, len(psus)))], 1)
        return list(lines.items())

    def _order(
        self, cid: int, placed: float, ctype: str, units: list[_Unit], batch: Batch
    ) -> tuple[float, bool]:
        """One order with items, serials, returns, extensions and voids; (total, had a GPU)."""
        rng = self.rng
        r = rng.random
        c = self.c
        c.order += 1
        oid = c.order
        number = order_number(oid)
        x = r()
        if ctype == "enterprise" and x < 0.6:
            channel = "b2b"
        else:
            channel = (
                "online" if x < 0.45 else
                "marketplace" if x < 0.73 else
                "store" if x < 0.90 else "telegram"
            )  # fmt: skip
        age = (self.now - placed) / DAY
        delivered: float | None = None
        if age < 1:
            status = "pending" if r() < 0.35 else "paid"
        elif age < 3:
            status = "paid" if r() < 0.3 else "shipped"
        elif age < 7:
            status = "shipped" if r() < 0.4 else "delivered"
        else:
            y = r()
            status = "cancelled" if y < 0.035 else ("returned" if y < 0.06 else "delivered")
        if status in ("delivered", "returned"):
            delivered = placed + min(1.5 + r() * 3.5, max(0.5, age - 0.2)) * DAY
        recorded_delivery = delivered if (delivered is not None and r() >= 0.03) else None
        shipped = status in ("shipped", "delivered", "returned")
        warranty_start = recorded_delivery if recorded_delivery is not None else placed

        total = 0.0
        has_gpu = False
        first_item: tuple[int, int, float] | None = None
        for pid, qty in self._basket(ctype):
            c.item += 1
            price = round(self._price[pid] * (0.88 + r() * 0.12))
            total += price * qty
            has_gpu = has_gpu or self._category[pid] == "gpu"
            batch["order_items"].append((c.item, oid, pid, qty, Decimal(price)))
            if first_item is None:
                first_item = (c.item, qty, float(price))
            if not shipped:
                continue
            end = _warranty_end(warranty_start, self._months[pid])
            for _ in range(qty):
                c.serial += 1
                serial = serial_number(c.serial)
                batch["order_item_serials"].append((c.serial, c.item, serial))
                if status != "delivered":
                    continue
                unit = _Unit(serial, pid, warranty_start, end)
                self._warranty_events(unit, number, placed, batch)
                units.append(unit)

        if first_item is not None and delivered is not None:
            self._maybe_return(oid, status, delivered, first_item, batch)
        updated = delivered or placed
        batch["orders"].append(
            (
                oid, number, cid, channel, status, _dt(placed),
                _dt(recorded_delivery) if recorded_delivery else None, "CNY",
                _money(total), _dt(placed), _dt(updated),
            )
        )  # fmt: skip
        return (0.0 if status in ("cancelled", "returned") else total), has_gpu

    def _warranty_events(self, unit: _Unit, number: str, placed: float, batch: Batch) -> None:
        """Extended warranties (~3% of big-ticket units) and voids (~0.4% of units)."""
        r = self.rng.random
        c = self.c
        if self._category[unit.product] in EXTENDABLE and r() < 0.03:
            months = 12 if r() < 0.6 else 24
            if r() < 0.7:
                bought, on_order = placed, number
            else:
                bought = unit.start + r() * max(0.0, min(unit.end, self.now) - unit.start)
                on_order = None
            c.extension += 1
            batch["warranty_extensions"].append(
                (c.extension, unit.serial, months, _dt(bought), on_order)
            )
            unit.end = _warranty_end(unit.start, self._months[unit.product] + months)
        elif r() < 0.004 and unit.start < self.now:
            self._void(unit, unit.start + r() * (min(unit.end, self.now) - unit.start), batch)

    def _void(self, unit: _Unit, at: float, batch: Batch) -> None:
        r = self.rng.random
        self.c.void += 1
        en, zh = VOID_REASONS[int(r() * len(VOID_REASONS))]
        reason = f"{en} / {zh}"
        agent = self.agents[int(r() * len(self.agents))]
        batch["warranty_voids"].append((self.c.void, unit.serial, reason, agent, _dt(at)))
        unit.void = True

    def _maybe_return(
        self,
        oid: int,
        status: str,
        delivered: float,
        item: tuple[int, int, float],
        batch: Batch,
    ) -> None:
        r = self.rng.random
        item_id, qty, price = item
        since = (self.now - delivered) / DAY
        if status == "returned":
            ret_status = "refunded" if r() < 0.9 else "received"
            requested = delivered + (1 + r() * 12) * DAY
        elif since <= 14 and r() < 0.08:
            ret_status = ("requested", "approved", "received")[int(r() * 3)]
            requested = delivered + r() * since * DAY
        elif since > 14 and r() < 0.006:
            ret_status = "rejected"
            requested = delivered + (1 + r() * 12) * DAY
        else:
            return
        requested = min(requested, self.now - HOUR)
        updated = min(self.now, requested + (r() * 6) * DAY)
        en, zh = RETURN_REASONS[int(r() * len(RETURN_REASONS))]
        refund = _money(price * qty) if ret_status == "refunded" else None
        self.c.ret += 1
        batch["returns"].append(
            (self.c.ret, oid, item_id, qty, f"{en} / {zh}", ret_status, refund,
             _dt(requested), _dt(updated))
        )  # fmt: skip

    # --- tickets ---------------------------------------------------------------------------

    def _tickets(
        self, cid: int, language: str, ctype: str, units: list[_Unit], batch: Batch
    ) -> float | None:
        """Tickets on some of the customer's units; returns the last contact time."""
        r = self.rng.random
        if not units:
            return None
        p = 0.09 if ctype == "enterprise" else 0.06
        if r() >= p:
            return None
        last = None
        for _ in range(1 if r() < 0.85 else 2):
            unit = units[int(r() * len(units))]
            last = self._ticket(cid, language, unit, batch, forced=self._forced_state())
        return last

    def _forced_state(self) -> str | None:
        """The first tickets cover every state, so even a tiny data set has them all."""
        for state in TICKET_STATES:
            if self.c.tickets_by_state.get(state, 0) == 0:
                return state
        return None

    def _ticket(
        self,
        cid: int,
        language: str,
        unit: _Unit,
        batch: Batch,
        *,
        forced: str | None = None,
        created: float | None = None,
        kind: str | None = None,
        staff: int | None = None,
    ) -> float:
        rng = self.rng
        r = rng.random
        c = self.c
        if created is None:
            created = unit.start + DAY + r() * max(0.0, self.now - unit.start - DAY)
            created = min(created, self.now - HOUR)
            if forced in ("new", "triaged", "waiting_customer", "in_progress", "rma"):
                created = max(unit.start, self.now - (0.1 + r() * 3) * DAY)
        age = (self.now - created) / DAY
        covered = not unit.void and created <= unit.end
        state = forced or self._state_for_age(age)
        if state == "rma" and not covered:
            state = "in_progress"
        want_rma = kind == "rma" or (kind is None and covered and r() < 0.45)
        path = _ticket_path(state, rng, rma=want_rma)
        if kind is None:
            if "rma" in path:
                kind = "rma"
            elif not covered:
                kind = "repair"
            else:
                kind = "complaint" if r() < 0.05 else "fault"
        x = r()
        priority = "low" if x < 0.15 else "normal" if x < 0.75 else "high" if x < 0.95 else "urgent"
        # Durations of each step; squeezed when the history would end in the future.
        gaps = [_gap(path[i], path[i + 1], r) for i in range(len(path) - 1)]
        span = sum(gaps)
        if created + span > self.now - 60:
            room = self.now - 60 - created
            if room <= 0:
                created = self.now - 60 - span
                if created < unit.start:
                    created = unit.start
                    room = max(60.0, self.now - 60 - created)
                    gaps = [g * room / span for g in gaps] if span else gaps
            else:
                gaps = [g * room / span for g in gaps] if span else gaps
        c.ticket += 1
        tid = c.ticket
        agent = staff or self.agents[int(r() * len(self.agents))]
        category = self._category[unit.product]
        texts = TICKET_TEXTS[category]
        s_en, s_zh, sym_en, sym_zh = texts[int(r() * len(texts))]
        subject, symptom = (s_zh, sym_zh) if language == "zh" else (s_en, sym_en)
        t = created
        events: list[tuple[str | None, str, str, str | None, float]] = [
            (None, "new", f"customer:{cid}", f"opened ({kind}, {priority})", t)
        ]
        for i, gap in enumerate(gaps):
            t += gap
            to = path[i + 1]
            actor = f"customer:{cid}" if path[i] == "waiting_customer" else f"staff:{agent}"
            events.append((path[i], to, actor, None, t))
        resolved_at = closed_at = None
        resolution = None
        if state in ("resolved", "closed"):
            resolved_at = next(e[4] for e in events if e[1] == "resolved")
            res_en, res_zh = (
                RESOLUTIONS[4] if kind == "repair" else RESOLUTIONS[int(r() * len(RESOLUTIONS))]
            )
            if kind == "rma":
                res_en, res_zh = RESOLUTIONS[int(r() * 2)]
            resolution = res_zh if language == "zh" else res_en
        if state == "closed":
            closed_at = events[-1][4]
        for from_s, to_s, actor, note, at in events:
            c.event += 1
            batch["ticket_events"].append((c.event, tid, from_s, to_s, actor, note, _dt(at)))
        c.tickets_by_state[state] = c.tickets_by_state.get(state, 0) + 1
        batch["tickets"].append(
            (
                tid, ticket_number(tid), cid, unit.serial, unit.product, category, kind,
                subject, symptom, [], priority, state, agent if state != "new" else None,
                _dt(created + SLA_HOURS[priority] * HOUR), resolution, _dt(created), _dt(t),
                _dt(resolved_at) if resolved_at else None, _dt(closed_at) if closed_at else None,
            )
        )  # fmt: skip
        if state == "closed" and r() < 0.45:
            x = r()
            score = 1 if x < 0.05 else 2 if x < 0.12 else 3 if x < 0.25 else 4 if x < 0.55 else 5
            comment = None
            if r() < 0.3:
                en, zh = RATING_COMMENTS[int(r() * len(RATING_COMMENTS))]
                comment = zh if language == "zh" else en
            c.rating += 1
            at = min(self.now, t + r() * 2 * HOUR)
            batch["satisfaction_ratings"].append((c.rating, cid, tid, score, comment, _dt(at)))
        return t

    def _state_for_age(self, age: float) -> str:
        x = self.rng.random()
        table: tuple[tuple[str, float], ...]
        if age < 2:
            table = (("new", 0.3), ("triaged", 0.6), ("in_progress", 0.85), ("waiting_customer", 1))
        elif age < 14:
            table = (
                ("triaged", 0.05), ("waiting_customer", 0.25), ("in_progress", 0.6),
                ("rma", 0.8), ("resolved", 1),
            )  # fmt: skip
        elif age < 45:
            table = (
                ("waiting_customer", 0.05), ("in_progress", 0.1), ("rma", 0.2),
                ("resolved", 0.4), ("closed", 1),
            )  # fmt: skip
        else:
            table = (("waiting_customer", 0.03), ("resolved", 0.07), ("closed", 1))
        for state, cut in table:
            if x < cut:
                return state
        return "closed"

    # --- leads -----------------------------------------------------------------------------

    def _lead(
        self,
        cid: int | None,
        prospect: str | None,
        contact: str | None,
        language: str,
        not_before: float,
        batch: Batch,
    ) -> None:
        rng = self.rng
        r = rng.random
        self.c.lead += 1
        skus = sorted({self._sku[self._pick_product()] for _ in range(1 + int(r() * 3))})
        budget = _money(sum(self._price[self.by_sku[s]["id"]] for s in skus) * (0.8 + r() * 0.6))
        x = r()
        stage = (
            "new" if x < 0.25 else "contacted" if x < 0.5 else "quoted" if x < 0.7
            else "won" if x < 0.85 else "lost"
        )  # fmt: skip
        created = not_before + r() * max(0.0, self.now - not_before - HOUR)
        updated = created + r() * (self.now - created)
        en, zh = LEAD_NOTES[int(r() * len(LEAD_NOTES))]
        source = ("bot", "staff", "import")[int(r() * 3)]
        owner = self.agents[int(r() * len(self.agents))] if stage != "new" else None
        batch["leads"].append(
            (
                self.c.lead, cid, prospect, contact, skus, budget, "CNY", stage, owner, source,
                zh if language == "zh" else en, _dt(created), _dt(updated),
            )
        )  # fmt: skip

    def _prospect_leads(self, batch: Batch) -> None:
        """Leads from people who are not customers yet (~0.5% of the customer count)."""
        r = self.rng.random
        pools = self.pools
        for i in range(max(2, self.options.customers // 200)):
            if r() < 0.6:
                name = (
                    pools.zh_last[int(r() * len(pools.zh_last))]
                    + pools.zh_first[int(r() * len(pools.zh_first))]
                )
                roman = pools.zh_roman[int(r() * len(pools.zh_roman))]
                contact, language = f"{roman}.lead{i + 1}@163.com", "zh"
            else:
                first = pools.en_first[int(r() * len(pools.en_first))]
                last = pools.en_last[int(r() * len(pools.en_last))]
                name = f"{first} {last}"
                local = f"{first}.{last}".lower().replace(" ", "").replace("'", "")
                contact, language = f"{local}.lead{i + 1}@example.com", "en"
            self._lead(None, name, contact, language, self.now - 365 * DAY, batch)

    # --- compatibility-aware baskets ----------------------------------------------------------

    def _by_category(self, category: str) -> list[dict[str, Any]]:
        return [p for p in self.products if p["category"] == category]

    def _compatible_map(self, rule: str) -> dict[int, list[int]]:
        """source product id -> target product ids (cheapest first) for one rule."""
        d = RULES_BY_NAME[rule]
        targets = sorted(self._by_category(d.target_category), key=lambda p: p["price"])
        return {
            s["id"]: [t["id"] for t in targets if evaluate(rule, s["specs"], t["specs"]).ok]
            for s in self._by_category(d.source_category)
        }

    def _make_builds(self, count: int) -> list[list[int]]:
        """Complete compatible PCs (every rule holds), for ~2% of orders."""
        rng = random.Random(self.options.seed + 7)
        cpus = self._by_category("cpu")
        boards = self._by_category("motherboard")
        rams = self._by_category("ram")
        coolers = self._by_category("cooler")
        cases = self._by_category("case")
        gpus = self._by_category("gpu")
        psus = self._by_category("psu")
        builds: list[list[int]] = []
        for _ in range(count * 20):
            if len(builds) >= count:
                break
            cpu = rng.choice(cpus)
            board = rng.choice(boards)
            if not evaluate("motherboard_for_cpu", cpu["specs"], board["specs"]).ok:
                continue
            ram = rng.choice(
                [x for x in rams if evaluate("ram_for_motherboard", board["specs"], x["specs"]).ok]
            )
            case_options = [
                x for x in cases if evaluate("case_for_motherboard", board["specs"], x["specs"]).ok
            ]
            gpu = rng.choice(gpus)
            case_options = [
                x for x in case_options if evaluate("case_for_gpu", gpu["specs"], x["specs"]).ok
            ]
            if not case_options:
                continue
            case = rng.choice(case_options)
            cooler_options = [
                x for x in coolers
                if evaluate("cooler_for_cpu", cpu["specs"], x["specs"]).ok
                and evaluate("cooler_for_case", case["specs"], x["specs"]).ok
            ]  # fmt: skip
            psu_options = [
                x for x in psus
                if evaluate("psu_for_gpu", gpu["specs"], x["specs"]).ok
                and evaluate("psu_for_case", case["specs"], x["specs"]).ok
            ]  # fmt: skip
            if not cooler_options or not psu_options:
                continue
            cooler = rng.choice(cooler_options)
            psu = min(psu_options, key=lambda p: p["price"])
            builds.append(
                [cpu["id"], board["id"], ram["id"], cooler["id"], case["id"], gpu["id"], psu["id"]]
            )
        return builds

    # --- the fixed demo identities ---------------------------------------------------------

    def _demo_identities(self, batch: Batch) -> None:
        """Customers 1–3 (Telegram 1001–1003) with hand-made histories relative to today."""
        now = self.now
        agent_zh, agent_en = self.agents[0], self.agents[2 % len(self.agents)]
        long_ago = now - 760 * DAY

        def customer(
            cid: int, name: str, phone: str, email: str, tg: int, lang: str, tz: str,
            ctype: str, company: int | None, tags: list[str],
        ) -> None:  # fmt: skip
            self.c.consent += 1
            batch["consent_events"].append(
                (self.c.consent, cid, True, "telegram_bot", _dt(long_ago + HOUR))
            )
            batch["customers"].append(
                (
                    cid, name, phone, email, tg, lang, tz, ctype, company, tags, True,
                    _dt(long_ago + HOUR), "telegram_bot", "active", None, _dt(long_ago),
                    _dt(long_ago + HOUR),
                )
            )  # fmt: skip

        def order(
            cid: int, days_ago: float, lines: list[tuple[str, int]], status: str = "delivered",
            channel: str = "telegram",
        ) -> tuple[str, list[_Unit]]:  # fmt: skip
            self.c.order += 1
            oid = self.c.order
            placed = now - days_ago * DAY
            delivered = placed + 2 * DAY if status == "delivered" else None
            total = 0.0
            units: list[_Unit] = []
            for sku, qty in lines:
                pid = self.by_sku[sku]["id"]
                self.c.item += 1
                price = self._price[pid]
                total += price * qty
                batch["order_items"].append((self.c.item, oid, pid, qty, Decimal(int(price))))
                if status not in ("shipped", "delivered"):
                    continue
                start = delivered if delivered is not None else placed
                end = _warranty_end(start, self._months[pid])
                for _ in range(qty):
                    self.c.serial += 1
                    serial = serial_number(self.c.serial)
                    batch["order_item_serials"].append((self.c.serial, self.c.item, serial))
                    units.append(_Unit(serial, pid, start, end))
            number = order_number(oid)
            batch["orders"].append(
                (
                    oid, number, cid, channel, status, _dt(placed),
                    _dt(delivered) if delivered else None, "CNY", _money(total), _dt(placed),
                    _dt(delivered or placed),
                )
            )  # fmt: skip
            return number, units

        # 1001: zh consumer — GPU under warranty (extended), mouse expiring in 12 days.
        customer(1, "张伟", "+8613912340001", "zhangwei.demo@example.com", 1001, "zh",
                 "Asia/Shanghai", "consumer", None, ["gamer"])  # fmt: skip
        number, units = order(1, 200, [("GPU-MSI-4070-VENTUS2X", 1), ("SSD-SAMSUNG-990PRO-1T", 1)])
        self.c.extension += 1
        batch["warranty_extensions"].append(
            (self.c.extension, units[0].serial, 12, _dt(now - 200 * DAY), number)
        )
        # Delivered 2 days after placing: 24 months from delivery end ~12 days from now.
        order(1, 730 - 12 + 2, [("MOUSE-LOGITECH-G502XPLUS", 1)], channel="online")

        # 1002: en consumer — expired headset with an open (in_progress) repair ticket.
        customer(2, "James Carter", "+447911123456", "james.carter.demo@example.com", 1002,
                 "en", "Europe/London", "consumer", None, [])  # fmt: skip
        _, headset = order(2, 520, [("HS-HYPERX-CLOUD3", 1)], channel="online")
        order(2, 90, [("MON-LG-27GS95QE", 1)], channel="online")
        self._ticket(
            2, "en", headset[0], batch, forced="in_progress", created=now - 3 * DAY,
            kind="repair", staff=agent_en,
        )  # fmt: skip

        # 1003: enterprise buyer — bulk orders, a void SSD, a shipped order, closed RMA, lead.
        customer(3, "陈静", "+8613912340003", "chen.jing@xinghe-data.example.com", 1003, "zh",
                 "Asia/Shanghai", "enterprise", 1, ["b2b", "vip"])  # fmt: skip
        _, bulk = order(
            3, 300, [("SSD-SAMSUNG-990PRO-2T", 10), ("MON-DELL-S2725DS", 5)], channel="b2b"
        )
        self._void(bulk[0], now - 40 * DAY, batch)
        self._ticket(
            3, "zh", bulk[10], batch, forced="closed", created=now - 120 * DAY, kind="rma",
            staff=agent_zh,
        )  # fmt: skip
        order(
            3, 2,
            [("CPU-INTEL-U7-265K", 4), ("MB-MSI-Z890-TOMAHAWK", 4),
             ("RAM-KINGSTON-FURY-D5-6000-32", 4)],
            status="shipped", channel="b2b",
        )  # fmt: skip
        self.c.lead += 1
        batch["leads"].append(
            (
                self.c.lead, 3, None, None, ["LAP-HUAWEI-MATEBOOK14"], Decimal("120000.00"),
                "CNY", "quoted", agent_zh, "staff", "20 台办公笔记本电脑，下季度采购。",
                _dt(now - 20 * DAY), _dt(now - 5 * DAY),
            )
        )  # fmt: skip


_DEMO_ORDER_COUNT = 6
RESERVED_PHONES = frozenset(
    {"+8613912340001", "+447911123456", "+8613912340003"}
)  # orders made by DemoGenerator._demo_identities


def _is_cjk(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


_END_CACHE: dict[tuple[int, int], float] = {}


def _warranty_end(ts: float, months: int) -> float:
    """Warranty end (as a timestamp) as the warranty service computes it: calendar months
    from the UTC start date, covered through the end of the end date. Cached per day."""
    key = (int(ts // DAY), months)
    end = _END_CACHE.get(key)
    if end is None:
        start = datetime.fromtimestamp(key[0] * DAY, UTC).date()
        end = _ts(datetime.combine(add_months(start, months), time(23, 59, 59), UTC))
        _END_CACHE[key] = end
    return end


def _ticket_path(state: str, rng: random.Random, *, rma: bool) -> list[str]:
    """A status history from `new` to `state` that the ticket state machine allows."""
    r = rng.random
    work = ["new", "triaged"]
    if state == "new":
        return ["new"]
    if state == "triaged":
        return work
    if state == "waiting_customer":
        return (
            [*work, "waiting_customer"] if r() < 0.4 else [*work, "in_progress", "waiting_customer"]
        )
    work = [*work, "in_progress"]
    if r() < 0.3:
        work += ["waiting_customer", "in_progress"]
    if state == "in_progress":
        return work
    if state == "rma":
        return [*work, "rma"]
    if rma:
        work.append("rma")
    work.append("resolved")
    if state == "resolved":
        return work
    return [*work, "closed"]


_GAPS = {
    ("new", "triaged"): (0.1, 8),
    ("triaged", "in_progress"): (1, 24),
    ("triaged", "waiting_customer"): (1, 24),
    ("in_progress", "waiting_customer"): (2, 48),
    ("waiting_customer", "in_progress"): (4, 72),
    ("in_progress", "rma"): (12, 72),
    ("rma", "resolved"): (120, 288),
    ("in_progress", "resolved"): (2, 72),
    ("resolved", "closed"): (24, 168),
}


def _gap(a: str, b: str, r: Any) -> float:
    low, high = _GAPS[(a, b)]
    return (low + r() * (high - low)) * HOUR


def _lifecycle(placed: list[float], batch: Batch, now: float) -> str:
    """A first lifecycle stage with the default rules; `AnalyticsService.recompute` refines it."""
    if not placed:
        return "prospect"
    if now - placed[0] <= 90 * DAY:
        return "new"
    since_last = now - placed[-1]
    if since_last <= 365 * DAY:
        recent = sum(1 for t in placed if now - t <= 730 * DAY)
        return "loyal" if recent >= 3 else "active"
    return "churned" if since_last > 730 * DAY else "at_risk"


def check_ticket_paths() -> None:
    """Every generated history is allowed by the ticket state machine (used by tests)."""
    rng = random.Random(0)
    for state in TICKET_STATES:
        for rma in (False, True):
            for _ in range(20):
                path = _ticket_path(state, rng, rma=rma)
                for a, b in pairwise(path):
                    assert b in TRANSITIONS[a], (a, b)  # type: ignore[index]
