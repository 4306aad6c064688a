"""Import and export of customers (natural key: phone, then e-mail)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.customers.contact import normalize_email
from crm_core.customers.models import Company, ConsentEvent, Customer
from crm_core.importexport import fields
from crm_core.importexport.columns import CUSTOMERS
from crm_core.importexport.common import (
    EntityImporter,
    ImportContext,
    RowParser,
    bulk_insert,
    chunks,
)
from crm_core.importexport.reader import Record

# Same values as crm_core.customers.service (the erase there writes this name).
ERASED_NAME = "Erased customer"
NAME_MAX = 200
TAG_MAX = 50
SOURCE_MAX = 64
IMPORT_CONSENT_SOURCE = "import"

LANGUAGE_WORDS = {
    "zh": "zh",
    "zh-cn": "zh",
    "zh_cn": "zh",
    "zh-hans": "zh",
    "chinese": "zh",
    "中文": "zh",
    "en": "en",
    "en-us": "en",
    "en-gb": "en",
    "english": "en",
    "英文": "en",
    "英语": "en",
}
CUSTOMER_TYPE_WORDS = {
    "consumer": "consumer",
    "pro": "pro",
    "enterprise": "enterprise",
    "个人": "consumer",
    "消费者": "consumer",
    "专业": "pro",
    "企业": "enterprise",
}
PERSONAL = (
    "name",
    "phone",
    "email",
    "telegram_user_id",
    "company",
    "company_tax_id",
    "tags",
    "marketing_consent",
    "consent_source",
)
# Fields an import compares and writes (company is resolved to company_id).
FIELDS = (
    "name",
    "phone",
    "email",
    "telegram_user_id",
    "language",
    "timezone",
    "customer_type",
    "company_id",
    "tags",
    "marketing_consent",
    "consent_source",
)
CUSTOMERS_T = cast(Table, Customer.__table__)
COMPANIES = cast(Table, Company.__table__)
CONSENT_EVENTS = cast(Table, ConsentEvent.__table__)
KEY_LABELS = {"phone": "phone", "email": "e-mail", "telegram_user_id": "Telegram user id"}


@dataclass(slots=True)
class CustomerRow:
    """A parsed row. A `rejected` row only carries its keys, which still count as the first
    occurrence for duplicate checks (then the row is dropped)."""

    row: int
    values: dict[str, Any]
    anonymous_id: str | None = None
    rejected: bool = False


@dataclass(slots=True)
class Existing:
    """A stored customer, as far as an import compares it."""

    id: int
    values: dict[str, Any]
    consent_changed_at: datetime | None
    anonymous_id: str | None


@dataclass
class _Plan:
    inserts: list[tuple[CustomerRow, dict[str, Any]]] = field(default_factory=list)
    updates: list[tuple[CustomerRow, Existing, dict[str, Any]]] = field(default_factory=list)


def _name(value: Any) -> str:
    clean = " ".join(fields.text(value).split())
    if len(clean) > NAME_MAX:
        raise fields.FieldError(f"longer than {NAME_MAX} characters")
    return clean


def _tags(value: Any) -> list[str]:
    tags: list[str] = []
    for tag in fields.string_list(value):
        clean = " ".join(tag.split())
        if len(clean) > TAG_MAX:
            raise fields.FieldError(f"tag {clean[:20]!r}… is longer than {TAG_MAX} characters")
        if clean not in tags:
            tags.append(clean)
    return tags


def _timezone(value: Any) -> str:
    return fields.zone(fields.text(value)).key


class CustomerImporter(EntityImporter[CustomerRow]):
    """Customers are matched by phone, then e-mail; anonymous ids stand for erased customers."""

    layout = CUSTOMERS
    tables = (Customer.__tablename__, Company.__tablename__, ConsentEvent.__tablename__)

    def __init__(self, ctx: ImportContext) -> None:
        super().__init__(ctx)
        # Companies whose tax id this import changed (the first row naming them is "updated").
        self._company_tax_changed: set[str] = set()

    def parse(self, record: Record) -> CustomerRow | None:
        p = RowParser(self.ctx.report, record)
        anonymous_id = p.get("anonymous_id", lambda v: fields.bounded_text(v, 40))
        if anonymous_id:
            given = [c for c in PERSONAL if p.has(c)]
            if given:
                p.fail(
                    ",".join(given),
                    "an erased customer's row carries only its anonymous_id",
                )
            if p.failed:
                self.reject_row()
            return CustomerRow(record.row, {}, anonymous_id, rejected=p.failed)
        region = self.ctx.config.phone_region
        values: dict[str, Any] = {
            "name": p.get("name", _name, required=True),
            "phone": p.get("phone", lambda v: fields.phone(v, region)),
            "email": p.get("email", lambda v: normalize_email(fields.text(v))),
            "telegram_user_id": p.get("telegram_user_id", lambda v: fields.integer(v, minimum=1)),
            "language": p.get("language", lambda v: fields.choice(v, LANGUAGE_WORDS, "language")),
            "timezone": p.get("timezone", _timezone),
            "customer_type": p.get(
                "customer_type", lambda v: fields.choice(v, CUSTOMER_TYPE_WORDS, "customer type")
            ),
            "company": p.get("company", _name),
            "company_tax_id": p.get("company_tax_id", lambda v: fields.bounded_text(v, 64)),
            "tags": p.get("tags", _tags),
            "marketing_consent": p.get("marketing_consent", fields.boolean),
            "consent_source": p.get("consent_source", lambda v: fields.bounded_text(v, SOURCE_MAX)),
        }
        if not p.failed and not p.has("phone") and not p.has("email"):
            p.fail("phone,email", "a customer needs a phone number or an e-mail address")
        if values["company_tax_id"] and not values["company"]:
            p.fail("company_tax_id", "a tax id needs a company name", values["company_tax_id"])
        if p.failed:
            self.reject_row()
            keys = {k: values[k] for k in ("phone", "email", "telegram_user_id") if values[k]}
            return CustomerRow(record.row, keys, rejected=True)
        return CustomerRow(record.row, {k: v for k, v in values.items() if v is not None})

    async def write(self, batch: list[CustomerRow]) -> None:
        batch = await self._drop_file_duplicates(batch)
        existing = await self._load_existing(batch)
        matched = self._match(batch, existing)
        matched = await self._drop_second_mentions(matched)
        plan = self._plan(matched)
        if not plan.inserts and not plan.updates:
            return
        companies = await self._resolve_companies(plan)
        await self._apply(plan, companies)

    # -- steps -----------------------------------------------------------------------------

    async def _drop_file_duplicates(self, batch: list[CustomerRow]) -> list[CustomerRow]:
        """Second mentions of a phone/e-mail/Telegram id/anonymous id in the file are errors;
        a company named twice must not get two different tax ids."""
        items: list[tuple[str, int, str | None]] = []
        owners: list[tuple[int, str, Any]] = []
        for i, r in enumerate(batch):
            keyed = (
                [("anonymous_id", r.anonymous_id)]
                if r.anonymous_id
                else [(c, r.values.get(c)) for c in ("phone", "email", "telegram_user_id")]
            )
            for column, value in keyed:
                if value is not None:
                    items.append((f"{column}:{value}", r.row, None))
                    owners.append((i, column, value))
            tax = r.values.get("company_tax_id")
            if tax:
                items.append((f"company:{r.values['company']}", r.row, tax))
                owners.append((i, "company_tax_id", tax))
        bad = {i for i, r in enumerate(batch) if r.rejected}
        rejected_before = len(bad)
        for (i, column, value), previous in zip(
            owners, await self.ctx.keys.claim(items), strict=True
        ):
            if previous is None or batch[i].rejected:
                continue
            row = batch[i].row
            if column == "company_tax_id":
                if previous[1] != value:
                    self.error(
                        row,
                        column,
                        f"company {batch[i].values['company']!r} has tax id {previous[1]} "
                        f"in row {previous[0]}",
                        value,
                    )
                    bad.add(i)
                continue
            label = KEY_LABELS.get(column, column)
            self.error(row, column, f"duplicate {label}: already in row {previous[0]}", value)
            bad.add(i)
        self.reject_row(len(bad) - rejected_before, len(bad) - rejected_before)
        return self._without(batch, bad)

    async def _load_existing(self, batch: list[CustomerRow]) -> dict[str, dict[Any, Existing]]:
        """The stored customers any row of the batch refers to, by phone/e-mail/tg/anon id."""
        wanted: dict[str, set[Any]] = {
            "phone": set(),
            "email": set(),
            "telegram_user_id": set(),
            "anonymous_id": set(),
        }
        for r in batch:
            if r.anonymous_id:
                wanted["anonymous_id"].add(r.anonymous_id)
            for column in ("phone", "email", "telegram_user_id"):
                if column in r.values:
                    wanted[column].add(r.values[column])
        found: dict[str, dict[Any, Existing]] = {column: {} for column in wanted}
        conditions: list[ColumnElement[bool]] = [
            getattr(Customer, column).in_(values) for column, values in wanted.items() if values
        ]
        if not conditions:
            return found
        c = Customer.__table__.c
        stmt = (
            select(
                c.id,
                c.anonymous_id,
                c.consent_changed_at,
                *(c[name] for name in FIELDS),
                Company.name.label("company"),
                Company.tax_id.label("company_tax_id"),
            )
            .outerjoin(Company, Company.id == c.company_id)
            # No constant term in the OR: SQLite would then scan instead of using the indexes.
            .where(or_(*conditions))
        )
        for row in (await self.ctx.session.execute(stmt)).mappings():
            values = {name: row[name] for name in FIELDS}
            values["tags"] = list(values["tags"] or [])
            values["company"] = row["company"]
            values["company_tax_id"] = row["company_tax_id"]
            customer = Existing(row["id"], values, row["consent_changed_at"], row["anonymous_id"])
            for column in found:
                key = row[column] if column != "anonymous_id" else row["anonymous_id"]
                if key is not None:
                    found[column][key] = customer
        return found

    def _match(
        self, batch: list[CustomerRow], existing: dict[str, dict[Any, Existing]]
    ) -> list[tuple[CustomerRow, Existing | None]]:
        """Find each row's stored customer (by phone, else e-mail) and refuse rows that would
        take a phone/e-mail/Telegram id another customer holds."""
        result: list[tuple[CustomerRow, Existing | None]] = []
        for r in batch:
            if r.anonymous_id:
                result.append((r, existing["anonymous_id"].get(r.anonymous_id)))
                continue
            match = None
            if "phone" in r.values:
                match = existing["phone"].get(r.values["phone"])
            if match is None and "email" in r.values:
                match = existing["email"].get(r.values["email"])
            conflict = False
            for column in ("phone", "email", "telegram_user_id"):
                if column not in r.values:
                    continue
                owner = existing[column].get(r.values[column])
                if owner is not None and owner is not match:
                    self.error(
                        r.row,
                        column,
                        f"this {KEY_LABELS[column]} belongs to another customer (#{owner.id}); "
                        "change it in the CRM first",
                        r.values[column],
                    )
                    conflict = True
            if conflict:
                self.reject_row()
                continue
            result.append((r, match))
        return result

    async def _drop_second_mentions(
        self, matched: list[tuple[CustomerRow, Existing | None]]
    ) -> list[tuple[CustomerRow, Existing | None]]:
        """Two rows about the same stored customer, or a row using a value that an earlier
        row replaced (an old phone/e-mail), are duplicates too."""
        items: list[tuple[str, int, str | None]] = []
        owners: list[tuple[int, str, str]] = []
        for i, (r, match) in enumerate(matched):
            if match is None:
                continue
            items.append((f"customer:{match.id}", r.row, None))
            owners.append((i, "customer", ""))
            for column in ("phone", "email", "telegram_user_id"):
                old = match.values.get(column)
                new = r.values.get(column)
                if old is not None and new is not None and new != old:
                    items.append((f"{column}:{old}", r.row, None))
                    owners.append((i, column, str(old)))
        if not items:
            return matched
        row_of = {r.row: i for i, (r, _) in enumerate(matched)}
        bad: set[int] = set()
        for (i, kind, old), previous in zip(owners, await self.ctx.keys.claim(items), strict=True):
            if previous is None:
                continue
            r, match = matched[i]
            if kind == "customer":
                if previous[0] != r.row and match is not None:
                    self.error(
                        r.row,
                        "phone,email",
                        f"the same customer (#{match.id}) as row {previous[0]}",
                    )
                    bad.add(i)
            elif previous[0] > r.row and previous[0] in row_of:
                # A later row of this batch uses the value this row replaces.
                later = row_of[previous[0]]
                self.error(
                    previous[0],
                    kind,
                    f"duplicate {KEY_LABELS[kind]}: replaced in row {r.row}",
                    old,
                )
                bad.add(later)
        self.reject_row(len(bad), len(bad))
        return [m for i, m in enumerate(matched) if i not in bad] if bad else matched

    def _plan(self, matched: list[tuple[CustomerRow, Existing | None]]) -> _Plan:
        plan = _Plan()
        config = self.ctx.config
        for r, match in matched:
            if r.anonymous_id:
                if match is None:
                    plan.inserts.append((r, {"name": ERASED_NAME, "anonymous_id": r.anonymous_id}))
                else:
                    self.ctx.counts.unchanged += 1
                continue
            if match is None:
                values = {
                    "name": r.values["name"],
                    "phone": r.values.get("phone"),
                    "email": r.values.get("email"),
                    "telegram_user_id": r.values.get("telegram_user_id"),
                    "language": r.values.get("language", config.default_language),
                    "timezone": r.values.get("timezone", config.default_timezone),
                    "customer_type": r.values.get("customer_type", "consumer"),
                    "tags": r.values.get("tags", []),
                    "marketing_consent": r.values.get("marketing_consent", False),
                    "consent_source": r.values.get("consent_source"),
                }
                if values["marketing_consent"] and not values["consent_source"]:
                    values["consent_source"] = IMPORT_CONSENT_SOURCE
                plan.inserts.append((r, values))
            else:
                plan.updates.append((r, match, dict(r.values)))
        return plan

    async def _resolve_companies(self, plan: _Plan) -> dict[str, int]:
        """Company ids by name; missing companies are created, changed tax ids updated."""
        wanted: dict[str, str | None] = {}
        for r, _ in plan.inserts:
            if "company" in r.values:
                wanted.setdefault(r.values["company"], r.values.get("company_tax_id"))
        for r, _, _ in plan.updates:
            if "company" in r.values:
                wanted.setdefault(r.values["company"], r.values.get("company_tax_id"))
        if not wanted:
            return {}
        session = self.ctx.session
        ids: dict[str, int] = {}
        tax_changes: list[dict[str, Any]] = []
        for names in chunks(list(wanted), 5000):
            rows = await session.execute(
                select(Company.id, Company.name, Company.tax_id).where(Company.name.in_(names))
            )
            for company_id, name, tax_id in rows.all():
                ids[name] = company_id
                given = wanted[name]
                if given and given != tax_id:
                    tax_changes.append({"id": company_id, "tax_id": given})
                    self._company_tax_changed.add(name)
        new = [
            {"name": name, "tax_id": tax, "created_at": self.ctx.now}
            for name, tax in wanted.items()
            if name not in ids
        ]
        if new:
            created = await session.execute(
                insert(COMPANIES).returning(COMPANIES.c.id, COMPANIES.c.name),
                new,
            )
            ids.update((name, company_id) for company_id, name in created.all())
        if tax_changes:
            await session.execute(update(Company), tax_changes)
        return ids

    async def _apply(self, plan: _Plan, companies: dict[str, int]) -> None:
        ctx = self.ctx
        now = ctx.now
        events: list[dict[str, Any]] = []
        changes: list[dict[str, Any]] = []
        for _row, match, given in plan.updates:
            old = match.values
            new = {name: old[name] for name in FIELDS}
            for name in FIELDS:
                if name in given:
                    new[name] = given[name]
            if "company" in given:
                new["company_id"] = companies[given["company"]]
            consent_changed_at = match.consent_changed_at
            if new["marketing_consent"] != old["marketing_consent"]:
                consent_changed_at = now
                if "consent_source" not in given:
                    new["consent_source"] = IMPORT_CONSENT_SOURCE
                events.append(
                    {
                        "customer_id": match.id,
                        "granted": new["marketing_consent"],
                        "source": new["consent_source"],
                        "at": now,
                    }
                )
            company_changed = given.get("company") in self._company_tax_changed
            if company_changed:
                self._company_tax_changed.discard(given["company"])
            if new == {name: old[name] for name in FIELDS} and not company_changed:
                ctx.counts.unchanged += 1
                continue
            ctx.counts.updated += 1
            changes.append(
                {"id": match.id, **new, "consent_changed_at": consent_changed_at, "updated_at": now}
            )
        if changes:
            await ctx.session.execute(update(Customer), changes)
        if plan.inserts:
            rows: list[dict[str, Any]] = []
            for r, values in plan.inserts:
                row = {
                    "name": values["name"],
                    "phone": None,
                    "email": None,
                    "telegram_user_id": None,
                    "language": ctx.config.default_language,
                    "timezone": ctx.config.default_timezone,
                    "customer_type": "consumer",
                    "company_id": None,
                    "tags": [],
                    "marketing_consent": False,
                    "consent_source": None,
                    "consent_changed_at": None,
                    "anonymous_id": None,
                    "erased_at": None,
                    "created_at": now,
                    "updated_at": now,
                }
                row.update(values)
                if "company" in r.values:
                    row["company_id"] = companies[r.values["company"]]
                if row["anonymous_id"]:
                    row["erased_at"] = now
                if row["marketing_consent"]:
                    row["consent_changed_at"] = now
                rows.append(row)
            # RETURNING without sort_by_parameter_order: SQLAlchemy then batches the rows into
            # multi-row INSERTs (with the ordering guarantee it falls back to one per row);
            # the consent events need only what is returned, not the input order.
            inserted = await ctx.session.execute(
                insert(CUSTOMERS_T).returning(
                    CUSTOMERS_T.c.id, CUSTOMERS_T.c.marketing_consent, CUSTOMERS_T.c.consent_source
                ),
                rows,
            )
            for customer_id, consent, source in inserted.all():
                if consent:
                    events.append(
                        {"customer_id": customer_id, "granted": True, "source": source, "at": now}
                    )
            ctx.counts.inserted += len(rows)
        await bulk_insert(ctx.session, CONSENT_EVENTS, events)

    @staticmethod
    def _without(batch: list[CustomerRow], bad: set[int]) -> list[CustomerRow]:
        if not bad:
            return batch
        return [r for i, r in enumerate(batch) if i not in bad]


async def export_rows(session: AsyncSession, batch_size: int) -> AsyncIterator[dict[str, Any]]:
    """Every customer as an import row; erased customers carry only their anonymous id."""
    c = Customer.__table__.c
    stmt = (
        select(
            c.name,
            c.phone,
            c.email,
            c.telegram_user_id,
            c.language,
            c.timezone,
            c.customer_type,
            Company.name.label("company"),
            Company.tax_id.label("company_tax_id"),
            c.tags,
            c.marketing_consent,
            c.consent_source,
            c.anonymous_id,
            c.erased_at,
        )
        .outerjoin(Company, Company.id == c.company_id)
        .order_by(c.id)
        .execution_options(yield_per=batch_size)
    )
    result = await session.stream(stmt)
    async for row in result.mappings():
        if row["erased_at"] is not None or row["anonymous_id"]:
            yield {"anonymous_id": row["anonymous_id"]}
            continue
        yield {
            "name": row["name"],
            "phone": row["phone"],
            "email": row["email"],
            "telegram_user_id": row["telegram_user_id"],
            "language": row["language"],
            "timezone": row["timezone"],
            "customer_type": row["customer_type"],
            "company": row["company"],
            "company_tax_id": row["company_tax_id"],
            "tags": list(row["tags"] or []),
            "marketing_consent": bool(row["marketing_consent"]),
            "consent_source": row["consent_source"],
        }
