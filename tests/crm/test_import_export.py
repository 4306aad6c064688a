"""Bulk import/export of customers, products and orders (CSV / JSON Lines), on SQLite and
PostgreSQL: encodings, validation with a per-row report, idempotent upserts, all-or-nothing
and --partial, round trips, the CLI, and a 100 MB file with bounded memory."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import shutil
import threading
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psutil
import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text, update
from typer.testing import CliRunner

from app import cli_importexport
from crm_core.catalog.models import Product
from crm_core.clock import FixedClock
from crm_core.customers.contact import normalize_phone
from crm_core.customers.models import Company, ConsentEvent, Customer
from crm_core.db import create_engine, create_session_factory, unit_of_work
from crm_core.errors import Conflict, ValidationFailed
from crm_core.importexport import (
    Entity,
    ExportService,
    FileFormat,
    ImportConfig,
    ImportRequest,
    ImportResult,
    ImportService,
    Issue,
    fields,
    run_import,
)
from crm_core.importexport.common import FileKeys
from crm_core.importexport.customers import CustomerImporter
from crm_core.models import metadata
from crm_core.orders.models import Order, OrderItem, OrderItemSerial, Return
from tests.conftest import Database

DATA = Path(__file__).resolve().parent.parent / "data" / "import"
# Tiny batches, so that every test crosses batch boundaries (duplicates, orders, ...), and
# few keys in memory, so that duplicate detection moves to its temporary table midway.
SMALL_BATCHES = ImportConfig(batch_size=3, memory_keys=8)


# -- helpers ---------------------------------------------------------------------------------


@pytest.fixture
async def sqlite_db(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[Database]:
    """A second, empty SQLite database (next to the parametrised `db`)."""
    path = tmp_path / "second.sqlite3"
    shutil.copy(sqlite_template, path)
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        yield Database("sqlite", str(path), engine, create_session_factory(engine))
    finally:
        await engine.dispose()


async def do_import(
    db: Database,
    clock: FixedClock,
    entity: Entity,
    path: Path,
    *,
    config: ImportConfig = SMALL_BATCHES,
    issues: list[Issue] | None = None,
    **options: Any,
) -> ImportResult:
    return await run_import(
        db.sessions,
        clock,
        config,
        ImportRequest(entity, path, **options),
        on_issue=issues.append if issues is not None else None,
    )


def write(tmp_path: Path, name: str, content: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode(encoding))
    return path


def problems(result: ImportResult) -> list[tuple[int, str, str]]:
    return [(i.row, i.column, i.reason) for i in result.issues if i.severity == "error"]


def assert_issue(result: ImportResult, row: int, column: str, contains: str) -> None:
    found = [
        i for i in result.issues if i.row == row and i.column == column and contains in i.reason
    ]
    assert found, f"no issue ({row}, {column!r}, ~{contains!r}) in {problems(result)}"


def flat(output: str) -> str:
    """CLI output with Rich's line wrapping undone."""
    return " ".join(output.split())


def counts(result: ImportResult) -> tuple[int, int, int, int]:
    return result.inserted, result.updated, result.unchanged, result.rejected_rows


async def snapshot(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tables imports write, for "nothing changed" checks."""
    tables = (
        Customer,
        Company,
        ConsentEvent,
        Product,
        Order,
        OrderItem,
        OrderItemSerial,
    )
    out: dict[str, list[tuple[Any, ...]]] = {}
    async with db.sessions() as session:
        for model in tables:
            table = model.__table__
            rows = await session.execute(select(table).order_by(table.c.id))
            out[model.__tablename__] = [tuple(r) for r in rows.all()]
    return out


async def export_text(
    db: Database,
    clock: FixedClock,
    entity: Entity,
    file_format: FileFormat = FileFormat.CSV,
) -> str:
    buffer = io.StringIO(newline="")
    async with unit_of_work(db.sessions) as session:
        await ExportService(session, clock, batch_size=3).export(entity, buffer, file_format)
    return buffer.getvalue()


async def load_basics(db: Database, clock: FixedClock) -> None:
    """The fixture customers (GB18030 + BOM files) and products."""
    for entity, name in (
        (Entity.CUSTOMERS, "customers_gb18030.csv"),
        (Entity.CUSTOMERS, "customers_utf8_bom.csv"),
        (Entity.PRODUCTS, "products.csv"),
    ):
        result = await do_import(db, clock, entity, DATA / name)
        assert result.committed and result.ok, problems(result)


async def scalar(db: Database, stmt: Any) -> Any:
    async with db.sessions() as session:
        return await session.scalar(stmt)


async def customer_by_phone(db: Database, phone: str) -> Customer:
    async with db.sessions() as session:
        found = await session.scalar(select(Customer).where(Customer.phone == phone))
    assert found is not None, phone
    return found


ORDERS_HEADER = (
    "order_number,customer_phone,customer_email,channel,status,placed_at,delivered_at,"
    "sku,quantity,unit_price,serial_numbers\n"
)


# -- encodings -------------------------------------------------------------------------------


async def test_a_gb18030_file_with_chinese_headers_is_detected_and_imported(
    db: Database, clock: FixedClock
) -> None:
    result = await do_import(db, clock, Entity.CUSTOMERS, DATA / "customers_gb18030.csv")

    assert result.encoding == "gb18030"
    assert counts(result) == (3, 0, 0, 0)
    zhang = await customer_by_phone(db, "+8613800138000")
    assert zhang.name == "张伟"
    assert zhang.email == "zhangwei@example.cn"
    assert zhang.tags == ["装机", "游戏"]
    assert zhang.language == "zh"
    assert zhang.marketing_consent is True
    assert zhang.consent_source == "门店登记"
    li = await customer_by_phone(db, "+8613900139000")
    assert li.email == "lina@example.cn"
    assert li.tags == ["显卡", "发烧友"]
    assert li.marketing_consent is False
    # Two customers of one company: one company row, with its tax id.
    assert await scalar(db, select(func.count()).select_from(Company)) == 1
    assert await scalar(db, select(Company.tax_id)) == "91440300MA5F000001"
    # Consent granted by an import is recorded as proof, with its source.
    async with db.sessions() as session:
        events = (await session.execute(select(ConsentEvent.granted, ConsentEvent.source))).all()
    assert sorted(events) == [(True, "微信公众号"), (True, "门店登记")]


async def test_a_utf8_file_with_bom_is_read_without_the_bom_in_the_first_header(
    db: Database, clock: FixedClock
) -> None:
    result = await do_import(db, clock, Entity.CUSTOMERS, DATA / "customers_utf8_bom.csv")

    assert result.encoding == "utf-8-sig"
    assert result.warnings == 0, result.issues
    assert counts(result) == (2, 0, 0, 0)
    alice = await customer_by_phone(db, "+8613600136000")
    assert (alice.name, alice.telegram_user_id, alice.timezone) == (
        "Alice Chen",
        5550001,
        "Asia/Hong_Kong",
    )
    assert alice.customer_type == "pro"
    bob = await customer_by_phone(db, "+8613500135000")
    assert bob.email == "bob@example.com"
    assert bob.timezone == "Asia/Shanghai"  # empty cell → the default


async def test_a_file_in_another_encoding_is_refused_with_a_clear_message_and_nothing_written(
    db: Database, clock: FixedClock
) -> None:
    result = await do_import(db, clock, Entity.CUSTOMERS, DATA / "customers_latin1.csv")

    assert not result.committed
    assert result.file_error is not None
    assert "not valid UTF-8: byte 0xe9 at line 2" in result.file_error
    assert "not valid GB18030" in result.file_error
    assert "--encoding" in result.file_error
    assert await scalar(db, select(func.count()).select_from(Customer)) == 0


async def test_a_forced_encoding_is_used_and_checked(
    db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    wrong = await do_import(
        db, clock, Entity.CUSTOMERS, DATA / "customers_gb18030.csv", encoding="utf-8"
    )
    assert wrong.file_error is not None
    assert "although --encoding utf-8 was given" in wrong.file_error

    latin = await do_import(
        db, clock, Entity.CUSTOMERS, DATA / "customers_latin1.csv", encoding="latin-1"
    )
    assert latin.committed and counts(latin) == (1, 0, 0, 0)
    assert (await customer_by_phone(db, "+4915112345678")).name == "José Müller"

    unknown = await do_import(
        db, clock, Entity.CUSTOMERS, DATA / "customers_latin1.csv", encoding="klingon"
    )
    assert unknown.file_error == "unknown encoding 'klingon'"


async def test_a_utf16_file_is_refused_naming_its_encoding(
    db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    path = write(tmp_path, "c.csv", "name,phone\nA,13800138000\n", encoding="utf-16")

    result = await do_import(db, clock, Entity.CUSTOMERS, path)

    assert result.file_error is not None and "UTF-16" in result.file_error
    assert await scalar(db, select(func.count()).select_from(Customer)) == 0


# -- header and row shape -------------------------------------------------------------------


async def test_missing_required_columns_refuse_the_file_listing_them(
    db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    path = write(tmp_path, "c.csv", "email_address,company\nx@example.com,ACME\n")

    result = await do_import(db, clock, Entity.CUSTOMERS, path)

    assert result.file_error is not None
    assert "missing required columns: name, phone or email" in result.file_error
    assert_issue(result, 1, "name, phone or email", "missing required columns")
    assert not result.committed

    orders = write(tmp_path, "o.csv", "order_number,sku\nSO-10000001,X\n")
    result = await do_import(db, clock, Entity.ORDERS, orders)
    assert result.file_error is not None
    for column in ("customer_phone or customer_email", "placed_at", "quantity", "unit_price"):
        assert column in result.file_error


async def test_unknown_columns_are_warnings_and_ignored(
    db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "c.csv",
        "Name,PHONE,会员等级,internal_id\nZhao Lei,13800138000,金卡,77\n",
    )

    result = await do_import(db, clock, Entity.CUSTOMERS, path)

    assert result.committed and result.ok
    assert counts(result) == (1, 0, 0, 0)
    assert result.warnings == 2
    warnings = {(i.row, i.column, i.reason) for i in result.issues if i.severity == "warning"}
    assert warnings == {
        (1, "会员等级", "unknown column, ignored"),
        (1, "internal_id", "unknown column, ignored"),
    }


async def test_two_headers_for_the_same_column_refuse_the_file(
    db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    path = write(tmp_path, "c.csv", "name,phone,手机\nA,13800138000,13900139000\n")

    result = await do_import(db, clock, Entity.CUSTOMERS, path)

    assert result.file_error is not None
    assert "'手机' is the same column as 'phone'" in result.file_error


async def test_rows_with_too_many_or_too_few_values_are_row_errors(
    db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "c.csv",
        "name,phone,email\n"
        "Good One,13800138000,a@example.com\n"
        "Too Many,13800138001,b@example.com,surprise\n"
        "Too Few,13800138002\n"
        "Trailing Comma Ok,13800138003,c@example.com,\n",
    )

    result = await do_import(db, clock, Entity.CUSTOMERS, path, partial=True)

    assert problems(result) == [
        (3, "", "has 4 values but the header has 3 columns"),
        (4, "", "has 2 values but the header has 3 columns"),
    ]
    assert counts(result) == (2, 0, 0, 2)


async def test_a_csv_syntax_error_refuses_the_file_even_with_partial(
    db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "c.csv",
        'name,phone\nGood,13800138000\n"Unclosed,13900139000\nMore,13700137000\n',
    )

    result = await do_import(db, clock, Entity.CUSTOMERS, path, partial=True)

    assert result.file_error == "row 3: CSV syntax error: unexpected end of data"
    assert not result.committed
    assert await scalar(db, select(func.count()).select_from(Customer)) == 0


async def test_semicolon_and_tab_separated_files_are_recognised_by_their_header(
    db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    semi = write(tmp_path, "c1.csv", "name;phone;tags\nA;13800138000;x|y\n")
    tabs = write(tmp_path, "c2.csv", "name\tphone\nB\t13900139000\n")

    assert counts(await do_import(db, clock, Entity.CUSTOMERS, semi)) == (1, 0, 0, 0)
    assert counts(await do_import(db, clock, Entity.CUSTOMERS, tabs)) == (1, 0, 0, 0)
    assert (await customer_by_phone(db, "+8613800138000")).tags == ["x", "y"]


async def test_json_lines_use_the_same_fields_with_native_types(
    db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    result = await do_import(db, clock, Entity.PRODUCTS, DATA / "products.jsonl")

    assert result.file_format is FileFormat.JSONL
    assert counts(result) == (2, 0, 0, 0)
    assert [(i.row, i.column, i.severity) for i in result.issues] == [(2, "colour", "warning")]
    async with db.sessions() as session:
        mouse = await session.scalar(select(Product).where(Product.sku == "MS-G502"))
        keyboard = await session.scalar(select(Product).where(Product.sku == "KB-K70"))
    assert mouse is not None and keyboard is not None
    assert (mouse.category, mouse.price, mouse.name_zh) == (
        "mouse",
        Decimal("399.00"),
        "G502 Mouse",
    )
    assert keyboard.specs == {"switch": "red"}

    broken = write(
        tmp_path,
        "broken.jsonl",
        '{"sku": "A", "name_en": "A", "category": "gpu", "brand": "B", "price": 1,'
        ' "warranty_months": 12}\n'
        "\n"
        "{not json}\n"
        '["a", "list"]\n',
    )
    result = await do_import(db, clock, Entity.PRODUCTS, broken, partial=True)
    assert problems(result) == [
        (3, "", "not valid JSON: Expecting property name enclosed in double quotes"),
        (4, "", "expected a JSON object per line"),
    ]
    assert counts(result) == (1, 0, 0, 2)


async def test_a_file_larger_than_the_configured_limit_is_refused_up_front(
    db: Database, clock: FixedClock
) -> None:
    result = await do_import(
        db,
        clock,
        Entity.PRODUCTS,
        DATA / "products.csv",
        config=ImportConfig(max_file_bytes=100),
    )

    assert result.file_error is not None
    assert "more than the limit of 100" in result.file_error
    assert await scalar(db, select(func.count()).select_from(Product)) == 0


# -- customers: validation, keys, idempotency ------------------------------------------------


async def test_importing_the_same_customers_twice_changes_nothing_the_second_time(
    db: Database, clock: FixedClock
) -> None:
    first = await do_import(db, clock, Entity.CUSTOMERS, DATA / "customers_gb18030.csv")
    before = await snapshot(db)
    clock.advance(timedelta(days=1))

    second = await do_import(db, clock, Entity.CUSTOMERS, DATA / "customers_gb18030.csv")

    assert counts(first) == (3, 0, 0, 0)
    assert counts(second) == (0, 0, 3, 0)
    assert second.committed
    assert await snapshot(db) == before  # not even updated_at moved


async def test_phone_numbers_and_emails_that_cannot_be_normalised_are_row_errors(
    db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "c.csv",
        "name,phone,email\n"
        "Short,12345,a@example.com\n"
        "Letters,call me,b@example.com\n"
        "Bad Mail,13800138000,not-an-email\n"
        ",13800138001,\n"
        "Nothing,,\n",
    )

    result = await do_import(db, clock, Entity.CUSTOMERS, path)

    assert_issue(result, 2, "phone", "not a valid phone number")
    assert_issue(result, 3, "phone", "cannot read phone number")
    assert_issue(result, 4, "email", "not a valid e-mail address")
    assert_issue(result, 5, "name", "required")
    assert_issue(result, 6, "phone, email", "needs a phone number or an e-mail address")
    assert result.rejected_rows == 5
    assert not result.committed


async def test_other_customer_fields_are_validated(
    db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "c.csv",
        "name,phone,language,timezone,customer_type,marketing_consent,telegram_user_id,"
        "company_tax_id\n"
        "A,13800138000,fr,Mars/Olympus,wholesale,maybe,-5,123\n",
    )

    result = await do_import(db, clock, Entity.CUSTOMERS, path)

    assert {column for _, column, _ in problems(result)} == {
        "language",
        "timezone",
        "customer_type",
        "marketing_consent",
        "telegram_user_id",
        "company_tax_id",
    }
    assert result.rejected_rows == 1


async def test_duplicate_keys_inside_one_file_are_errors_on_the_second_occurrence(
    db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "c.csv",
        "name,phone,email\n"
        "One,13800138000,one@example.com\n"  # row 2
        "Two,13800138001,two@example.com\n"
        "Three,13800138002,bad-email\n"  # row 4: rejected, but its phone still counts
        "Four,13800138003,four@example.com\n"
        "Five,+86 138 0013 8000,five@example.com\n"  # row 6: phone of row 2 (next batch)
        "Six,13800138005,TWO@example.com\n"  # row 7: e-mail of row 3
        "Seven,13800138002,seven@example.com\n",  # row 8: phone of rejected row 4
    )

    result = await do_import(db, clock, Entity.CUSTOMERS, path, partial=True)

    assert_issue(result, 6, "phone", "duplicate phone: already in row 2")
    assert_issue(result, 7, "email", "duplicate e-mail: already in row 3")
    assert_issue(result, 8, "phone", "duplicate phone: already in row 4")
    assert counts(result) == (3, 0, 0, 4)
    assert (await customer_by_phone(db, "+8613800138000")).name == "One"


async def test_customers_are_matched_by_phone_then_email_and_updated(
    db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    await do_import(
        db,
        clock,
        Entity.CUSTOMERS,
        write(
            tmp_path,
            "a.csv",
            "name,phone,email,tags\n"
            "Old Name,13800138000,old@example.com,a\n"
            "Mail Only,,mail@example.com,\n",
        ),
    )
    clock.advance(timedelta(hours=1))

    result = await do_import(
        db,
        clock,
        Entity.CUSTOMERS,
        write(
            tmp_path,
            "b.csv",
            "name,phone,email,marketing_consent,consent_source\n"
            "New Name,13800138000,new@example.com,,\n"  # by phone: e-mail changes
            "Mail Only,13900139000,mail@example.com,yes,erp\n",  # by e-mail: gets a phone
        ),
    )

    assert counts(result) == (0, 2, 0, 0)
    first = await customer_by_phone(db, "+8613800138000")
    assert (first.name, first.email, first.tags) == ("New Name", "new@example.com", ["a"])
    assert first.updated_at == clock.now()
    second = await customer_by_phone(db, "+8613900139000")
    assert second.email == "mail@example.com"
    assert second.marketing_consent and second.consent_source == "erp"
    assert second.consent_changed_at == clock.now()
    async with db.sessions() as session:
        events = (await session.execute(select(ConsentEvent))).scalars().all()
    assert [(e.customer_id, e.granted, e.source) for e in events] == [(second.id, True, "erp")]


async def test_empty_cells_keep_the_stored_values(
    db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    await do_import(db, clock, Entity.CUSTOMERS, DATA / "customers_utf8_bom.csv")
    path = write(
        tmp_path,
        "c.csv",
        "name,phone,email,telegram_user_id,tags,marketing_consent\nAlice Chen,13600136000,,,,\n",
    )

    result = await do_import(db, clock, Entity.CUSTOMERS, path)

    assert counts(result) == (0, 0, 1, 0)
    alice = await customer_by_phone(db, "+8613600136000")
    assert alice.email == "alice@example.com"
    assert alice.telegram_user_id == 5550001
    assert alice.marketing_consent is True


async def test_a_phone_email_or_telegram_id_of_another_customer_is_a_row_error(
    db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    await do_import(db, clock, Entity.CUSTOMERS, DATA / "customers_utf8_bom.csv")
    path = write(
        tmp_path,
        "c.csv",
        "name,phone,email,telegram_user_id\n"
        "Alice Chen,13600136000,bob@example.com,\n"  # Bob's e-mail
        "Carol,13700137001,,5550001\n",  # Alice's Telegram account
    )

    result = await do_import(db, clock, Entity.CUSTOMERS, path, partial=True)

    assert_issue(result, 2, "email", "belongs to another customer")
    assert_issue(result, 3, "telegram_user_id", "belongs to another customer")
    assert counts(result) == (0, 0, 0, 2)


async def test_two_rows_about_the_same_stored_customer_are_duplicates(
    db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    await do_import(db, clock, Entity.CUSTOMERS, DATA / "customers_utf8_bom.csv")
    path = write(
        tmp_path,
        "c.csv",
        "name,phone,email\n"
        "Alice Chen,13600136000,\n"  # Alice by phone
        "Alice C.,,alice@example.com\n",  # Alice again, by e-mail
    )

    result = await do_import(db, clock, Entity.CUSTOMERS, path, partial=True)

    assert_issue(result, 3, "phone, email", "the same customer")
    assert counts(result) == (0, 0, 1, 1)


@settings(max_examples=500, deadline=None)
@given(
    raw=st.from_regex(r"(\+86|0086|\+85|86)?1[0-9]{9,11}", fullmatch=True),
    region=st.sampled_from(["CN", "US"]),
)
def test_the_fast_phone_path_agrees_with_normalize_phone(raw: str, region: str) -> None:
    def outcome(parse: Any) -> str:
        try:
            return str(parse(raw, region))
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"

    assert outcome(fields.phone) == outcome(normalize_phone)


def test_the_fast_phone_path_agrees_on_every_mobile_prefix() -> None:
    for prefix in range(100, 200):
        for tail in ("00000000", "12345678", "99999999"):
            for form in ("{}", "+86{}", "0086{}"):
                raw = form.format(f"{prefix}{tail}")
                try:
                    expected = normalize_phone(raw)
                except ValidationFailed as exc:
                    with pytest.raises(ValidationFailed, match=re.escape(str(exc))):
                        fields.phone(raw)
                else:
                    assert fields.phone(raw) == expected, raw


# -- products ---------------------------------------------------------------------------------


async def test_products_take_canonical_categories_from_zh_en_synonyms_and_reimport_unchanged(
    db: Database, clock: FixedClock
) -> None:
    first = await do_import(db, clock, Entity.PRODUCTS, DATA / "products.csv")
    second = await do_import(db, clock, Entity.PRODUCTS, DATA / "products.csv")

    assert counts(first) == (4, 0, 0, 0)
    assert counts(second) == (0, 0, 4, 0)
    async with db.sessions() as session:
        rows = (await session.execute(select(Product.sku, Product.category, Product.price))).all()
    assert sorted(rows) == [
        ("CPU-R7-7800X3D", "cpu", Decimal("2699.00")),
        ("GPU-RTX4070-12G", "gpu", Decimal("4599.00")),
        ("PSU-RM850X", "psu", Decimal("999.00")),
        ("SSD-990PRO-1T", "ssd", Decimal("899.50")),
    ]


async def test_changed_products_are_updated_by_sku(
    db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    await do_import(db, clock, Entity.PRODUCTS, DATA / "products.csv")
    path = write(
        tmp_path,
        "p.csv",
        "SKU,Name_EN,category,brand,price,warranty_months,active\n"
        "PSU-RM850X,RM850x 850W,psu,Corsair,949.00,120,false\n",
    )

    result = await do_import(db, clock, Entity.PRODUCTS, path)

    assert counts(result) == (0, 1, 0, 0)
    async with db.sessions() as session:
        psu = await session.scalar(select(Product).where(Product.sku == "PSU-RM850X"))
    assert psu is not None
    assert (psu.price, psu.active, psu.name_zh) == (Decimal("949.00"), False, "RM850x 850W 电源")


async def test_bad_product_rows_are_reported_per_column(
    db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "p.csv",
        "sku,name_en,category,brand,price,warranty_months,specs,currency\n"
        "A1,Thing,spaceship,X,10,12,,CNY\n"
        "A2,Thing,gpu,X,-10,12,,CNY\n"
        "A3,Thing,gpu,X,10.001,12,,CNY\n"
        "A4,Thing,gpu,X,10,-1,,CNY\n"
        'A5,Thing,gpu,X,10,12,"{broken",CNY\n'
        'A6,Thing,gpu,X,10,12,"[1, 2]",CNY\n'
        "A7,Thing,gpu,X,10,12,,RMB1\n"
        "A1,Thing,gpu,X,10,12,,CNY\n",
    )

    result = await do_import(db, clock, Entity.PRODUCTS, path)

    assert_issue(result, 2, "category", "unknown category")
    assert_issue(result, 3, "price", "must not be negative")
    assert_issue(result, 4, "price", "more than two decimal places")
    assert_issue(result, 5, "warranty_months", "must be at least 0")
    assert_issue(result, 6, "specs", "not valid JSON")
    assert_issue(result, 7, "specs", "expected a JSON object")
    assert_issue(result, 8, "currency", "three-letter currency code")
    assert_issue(result, 9, "sku", "duplicate SKU: already in row 2")
    assert result.rejected_rows == 8
    assert await scalar(db, select(func.count()).select_from(Product)) == 0


# -- orders -----------------------------------------------------------------------------------


async def test_order_lines_are_grouped_into_orders_and_reimport_is_unchanged(
    db: Database, clock: FixedClock
) -> None:
    await load_basics(db, clock)

    first = await do_import(db, clock, Entity.ORDERS, DATA / "orders.csv")
    before = await snapshot(db)
    second = await do_import(db, clock, Entity.ORDERS, DATA / "orders.csv")

    assert counts(first) == (3, 0, 0, 0), problems(first)
    assert first.rows == 4
    assert counts(second) == (0, 0, 3, 0)
    assert await snapshot(db) == before
    async with db.sessions() as session:
        order = await session.scalar(select(Order).where(Order.order_number == "SO-20260001"))
        assert order is not None
        assert (order.channel, order.status, order.total) == (
            "online",
            "delivered",
            Decimal("6398.00"),
        )
        # Times without an offset are read in the configured zone (Asia/Shanghai).
        assert order.placed_at == datetime(2026, 3, 1, 2, 15, tzinfo=UTC)
        assert order.delivered_at == datetime(2026, 3, 2, 16, 0, tzinfo=UTC)
        serials = (
            await session.execute(
                select(OrderItemSerial.serial_number)
                .join(OrderItem)
                .where(OrderItem.order_id == order.id)
            )
        ).scalars()
        assert sorted(serials) == ["SN4070A00001", "SN990P000001", "SN990P000002"]
        by_email = await session.scalar(select(Order).where(Order.order_number == "SO-20260002"))
        assert by_email is not None
        assert by_email.customer_id == (await customer_by_phone(db, "+8613900139000")).id


async def test_reimport_updates_status_and_delivery_and_replaces_changed_lines(
    db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    await load_basics(db, clock)
    await do_import(db, clock, Entity.ORDERS, DATA / "orders.csv")
    async with db.sessions() as session:
        kept_items = set(
            (
                await session.execute(
                    select(OrderItem.id).join(Order).where(Order.order_number == "SO-20260002")
                )
            ).scalars()
        )
    path = write(
        tmp_path,
        "o.csv",
        ORDERS_HEADER
        # Same lines, serial order changed: nothing to replace, status unchanged.
        + "SO-20260001,13800138000,,online,delivered,2026-03-01 10:15:00,2026-03-03,"
        "GPU-RTX4070-12G,1,4599.00,SN4070A00001\n"
        "SO-20260001,13800138000,,online,delivered,2026-03-01 10:15:00,2026-03-03,"
        "SSD-990PRO-1T,2,899.50,SN990P000002;SN990P000001\n"
        # Delivered now: status and delivery date change, lines stay.
        "SO-20260002,,lina@example.cn,store,delivered,2026-06-10,2026-06-12,"
        "CPU-R7-7800X3D,1,2699,\n"
        # Lines change: a second PSU with its serial, so the lines are replaced.
        "SO-20260003,13700137000,,online,shipped,2026-06-14T09:00:00+08:00,,PSU-RM850X,2,999,"
        "SNRM850X0001;SNRM850X0002\n",
    )

    result = await do_import(db, clock, Entity.ORDERS, path)

    assert counts(result) == (0, 2, 1, 0), problems(result)
    async with db.sessions() as session:
        delivered = await session.scalar(select(Order).where(Order.order_number == "SO-20260002"))
        assert delivered is not None
        assert delivered.status == "delivered"
        assert delivered.delivered_at == datetime(2026, 6, 11, 16, 0, tzinfo=UTC)
        items = set(
            (
                await session.execute(
                    select(OrderItem.id).where(OrderItem.order_id == delivered.id)
                )
            ).scalars()
        )
        assert items == kept_items
        psu = await session.scalar(select(Order).where(Order.order_number == "SO-20260003"))
        assert psu is not None and psu.total == Decimal("1998.00")
        lines = (
            await session.execute(
                select(OrderItem.quantity, OrderItemSerial.serial_number)
                .join(OrderItemSerial)
                .where(OrderItem.order_id == psu.id)
            )
        ).all()
        assert sorted(lines) == [(2, "SNRM850X0001"), (2, "SNRM850X0002")]
        assert await session.scalar(select(func.count()).select_from(OrderItem)) == 4


async def test_bad_order_lines_are_each_reported_and_reject_their_whole_order(
    db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    await load_basics(db, clock)
    ok = "2026-06-01"
    path = write(
        tmp_path,
        "o.csv",
        ORDERS_HEADER
        + f"SO-30000001,13800138000,,online,paid,{ok},,NO-SUCH-SKU,1,10,\n"  # 2 unknown SKU
        f"SO-30000002,13800138000,,online,paid,{ok},,PSU-RM850X,-1,999,\n"  # 3 negative qty
        f"SO-30000003,13800138000,,online,paid,{ok},,PSU-RM850X,0,999,\n"  # 4 zero qty
        f"SO-30000004,13800138000,,online,paid,{ok},,PSU-RM850X,1,-999,\n"  # 5 negative price
        "SO-30000005,13800138000,,online,paid,2025-02-30,,PSU-RM850X,1,999,\n"  # 6 impossible
        "SO-30000006,13800138000,,online,delivered,2026-06-01,2026-05-30,PSU-RM850X,1,999,\n"
        "SO-30000007,13800138000,,online,paid,2026-06-17,,PSU-RM850X,1,999,\n"  # 8 future
        f"SO-30000008,13800138000,,online,paid,{ok},,PSU-RM850X,1,999,SN12345\n"  # 9 serial
        f"SO-30000009,13800138000,,online,paid,{ok},,PSU-RM850X,1,999,"
        "SNAAAAAAAAA1;SNAAAAAAAAA2\n"  # 10: two serials for one unit
        f"SO-30000010,12345,,online,paid,{ok},,PSU-RM850X,1,999,\n"  # 11 bad phone
        f"SO-30000011,13300133000,,online,paid,{ok},,PSU-RM850X,1,999,\n"  # 12 unknown customer
        f"SO-3000012,13800138000,,online,paid,{ok},,PSU-RM850X,1,999,\n"  # 13 bad number
        f"SO-30000013,13800138000,,teleport,paid,{ok},,PSU-RM850X,1,999,\n"  # 14 channel
        "SO-30000014,13800138000,,online,paid,2026-06-16T11:00:00Z,,PSU-RM850X,1,999,\n",  # ok
    )

    result = await do_import(db, clock, Entity.ORDERS, path, partial=True)

    assert_issue(result, 2, "sku", "unknown SKU")
    assert_issue(result, 3, "quantity", "must be positive")
    assert_issue(result, 4, "quantity", "must be positive")
    assert_issue(result, 5, "unit_price", "must not be negative")
    assert_issue(result, 6, "placed_at", "impossible date")
    assert_issue(result, 7, "delivered_at", "before placed_at")
    assert_issue(result, 8, "placed_at", "in the future")
    assert_issue(result, 9, "serial_numbers", "invalid serial number")
    assert_issue(result, 10, "serial_numbers", "2 serial numbers for a quantity of 1")
    assert_issue(result, 11, "customer_phone", "not a valid phone number")
    assert_issue(result, 12, "customer_phone", "no customer with this phone")
    assert_issue(result, 13, "order_number", "expected an order number like SO-10023456")
    assert_issue(result, 14, "channel", "unknown channel")
    assert counts(result) == (1, 0, 0, 13)  # within one day ahead is accepted
    assert result.rejected_records == 12  # the row without a valid order number is no order
    assert await scalar(db, select(func.count()).select_from(Order)) == 1


async def test_an_order_with_one_bad_line_is_rejected_whole_even_with_partial(
    db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    await load_basics(db, clock)
    path = write(
        tmp_path,
        "o.csv",
        ORDERS_HEADER + "SO-40000001,13800138000,,online,paid,2026-06-01,,PSU-RM850X,1,999,\n"
        "SO-40000001,13800138000,,online,paid,2026-06-01,,NOPE,1,10,\n"
        "SO-40000001,13800138000,,online,paid,2026-06-01,,SSD-990PRO-1T,1,899.50,\n"
        "SO-40000002,13800138000,,online,paid,2026-06-01,,PSU-RM850X,1,999,\n",
    )

    result = await do_import(db, clock, Entity.ORDERS, path, partial=True)

    assert result.committed
    assert counts(result) == (1, 0, 0, 3)
    assert result.rejected_records == 1
    assert_issue(result, 3, "sku", "unknown SKU")
    assert_issue(result, 2, "order_number", "not imported because of errors in row(s) 3")
    async with db.sessions() as session:
        numbers = (await session.execute(select(Order.order_number))).scalars().all()
    assert numbers == ["SO-40000002"]
    assert await scalar(db, select(func.count()).select_from(OrderItem)) == 1


async def test_two_different_customers_on_one_order_number_is_an_error(
    db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    await load_basics(db, clock)
    path = write(
        tmp_path,
        "o.csv",
        ORDERS_HEADER + "SO-50000001,13800138000,,online,paid,2026-06-01,,PSU-RM850X,1,999,\n"
        "SO-50000001,13900139000,,online,paid,2026-06-01,,SSD-990PRO-1T,1,899.50,\n"
        # Phone on one line, e-mail on another: fine when they are the same customer ...
        "SO-50000002,13800138000,,online,paid,2026-06-01,,PSU-RM850X,1,999,\n"
        "SO-50000002,,zhangwei@example.cn,online,paid,2026-06-01,,SSD-990PRO-1T,1,899.50,\n"
        # ... an error when they are not.
        "SO-50000003,13800138000,,online,paid,2026-06-01,,PSU-RM850X,1,999,\n"
        "SO-50000003,,lina@example.cn,online,paid,2026-06-01,,SSD-990PRO-1T,1,899.50,\n",
    )

    result = await do_import(db, clock, Entity.ORDERS, path, partial=True)

    assert_issue(result, 3, "customer_phone", "differs from row 2 (+8613800138000)")
    assert_issue(result, 6, "customer_phone, customer_email", "point to different customers")
    assert counts(result) == (1, 0, 0, 4)


async def test_an_order_number_that_comes_back_later_in_the_file_is_an_error(
    db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    await load_basics(db, clock)
    path = write(
        tmp_path,
        "o.csv",
        ORDERS_HEADER + "SO-60000001,13800138000,,online,paid,2026-06-01,,PSU-RM850X,1,999,\n"
        "SO-60000002,13800138000,,online,paid,2026-06-01,,PSU-RM850X,1,999,\n"
        "SO-60000003,13800138000,,online,paid,2026-06-01,,PSU-RM850X,1,999,\n"
        "SO-60000004,13800138000,,online,paid,2026-06-01,,PSU-RM850X,1,999,\n"
        "SO-60000001,13800138000,,online,paid,2026-06-01,,SSD-990PRO-1T,1,899.50,\n",
    )

    result = await do_import(db, clock, Entity.ORDERS, path, partial=True)

    assert_issue(result, 6, "order_number", "already appeared in row 2")
    assert counts(result) == (4, 0, 0, 1)


async def test_serial_numbers_are_unique_across_orders_and_within_the_file(
    db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    await load_basics(db, clock)
    await do_import(db, clock, Entity.ORDERS, DATA / "orders.csv")
    path = write(
        tmp_path,
        "o.csv",
        ORDERS_HEADER
        # A serial sold in SO-20260001 already.
        + "SO-70000001,13800138000,,online,paid,2026-06-01,,GPU-RTX4070-12G,1,4599,"
        "SN4070A00001\n"
        "SO-70000002,13800138000,,online,paid,2026-06-01,,PSU-RM850X,1,999,SNNEW0000001\n"
        "SO-70000003,13800138000,,online,paid,2026-06-01,,PSU-RM850X,1,999,SNNEW0000002\n"
        "SO-70000004,13800138000,,online,paid,2026-06-01,,PSU-RM850X,1,999,snnew0000001\n",
    )

    result = await do_import(db, clock, Entity.ORDERS, path, partial=True)

    assert_issue(result, 2, "serial_numbers", "already belongs to order SO-20260001")
    assert_issue(result, 5, "serial_numbers", "duplicate serial number: already in row 3")
    assert counts(result) == (2, 0, 0, 2)


async def test_reimport_cannot_move_an_order_to_another_customer_or_replace_returned_lines(
    db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    await load_basics(db, clock)
    await do_import(db, clock, Entity.ORDERS, DATA / "orders.csv")
    async with unit_of_work(db.sessions) as session:
        order = await session.scalar(select(Order).where(Order.order_number == "SO-20260003"))
        assert order is not None
        item = await session.scalar(select(OrderItem).where(OrderItem.order_id == order.id))
        assert item is not None
        session.add(Return(order_id=order.id, order_item_id=item.id, reason="DOA"))
    before = await snapshot(db)
    path = write(
        tmp_path,
        "o.csv",
        ORDERS_HEADER + "SO-20260002,13800138000,,store,paid,2026-06-10,,CPU-R7-7800X3D,1,2699,\n"
        "SO-20260003,13700137000,,online,shipped,2026-06-14T09:00:00+08:00,,PSU-RM850X,3,999,"
        "SNRM850X0001\n",
    )

    result = await do_import(db, clock, Entity.ORDERS, path, partial=True)

    assert_issue(result, 2, "customer_phone", "belongs to another customer")
    assert_issue(result, 3, "order_number", "has returns against its lines")
    assert counts(result) == (0, 0, 0, 2)
    assert await snapshot(db) == before


async def test_an_order_without_lines_imports_and_exports_as_a_row_without_a_sku(
    db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    await load_basics(db, clock)
    path = write(
        tmp_path,
        "o.csv",
        ORDERS_HEADER + "SO-90000001,13800138000,,store,cancelled,2026-06-01,,,,,\n",
    )

    result = await do_import(db, clock, Entity.ORDERS, path)

    assert counts(result) == (1, 0, 0, 0), problems(result)
    exported = await export_text(db, clock, Entity.ORDERS)
    again = await do_import(db, clock, Entity.ORDERS, write(tmp_path, "again.csv", exported))
    assert counts(again) == (0, 0, 1, 0)
    row = next(csv.DictReader(io.StringIO(exported)))
    assert (row["order_number"], row["status"], row["sku"], row["quantity"]) == (
        "SO-90000001",
        "cancelled",
        "",
        "",
    )


# -- all-or-nothing, --partial, dry run ---------------------------------------------------


async def test_a_database_error_midway_rolls_back_everything(
    db: Database, clock: FixedClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A concurrent writer adding the same phone between lookup and insert: simulated by
    hiding the stored customer from the lookup, so the insert hits the unique index."""
    await do_import(db, clock, Entity.CUSTOMERS, DATA / "customers_utf8_bom.csv")
    before = await snapshot(db)
    path = write(
        tmp_path,
        "c.csv",
        "name,phone\n"
        + "".join(f"New {i},1390000{i:04d}\n" for i in range(7))
        + "Bob,13500135000\n",
    )
    real_load = CustomerImporter._load_existing

    async def blind_load(self: CustomerImporter, batch: list[Any]) -> Any:
        found = await real_load(self, batch)
        found["phone"].pop("+8613500135000", None)
        return found

    monkeypatch.setattr(CustomerImporter, "_load_existing", blind_load)

    with pytest.raises(Conflict, match="collided with this import"):
        await do_import(db, clock, Entity.CUSTOMERS, path, partial=True)

    assert await snapshot(db) == before


async def test_a_rejected_row_rolls_back_the_whole_file_leaving_the_database_unchanged(
    db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    await load_basics(db, clock)
    await do_import(db, clock, Entity.ORDERS, DATA / "orders.csv")
    before = await snapshot(db)
    rows = [f"Person {i},1380000{i:04d},p{i}@example.com,vip" for i in range(10)]
    rows.insert(3, "张伟,13800138000,zhangwei@example.cn,changed-tag")  # an update
    rows.append("Broken,13800138999,not-an-email,x")  # the last row is bad
    path = write(tmp_path, "c.csv", "name,phone,email,tags\n" + "\n".join(rows) + "\n")

    result = await do_import(db, clock, Entity.CUSTOMERS, path)

    assert not result.committed
    assert counts(result) == (10, 1, 0, 1)  # what would have been written
    assert_issue(result, 13, "email", "not a valid e-mail address")
    assert await snapshot(db) == before

    orders = write(
        tmp_path,
        "o.csv",
        ORDERS_HEADER
        + "".join(
            f"SO-8000000{i},13800138000,,online,paid,2026-06-01,,PSU-RM850X,1,999,"
            f"SNALL0000{i:03d}\n"
            for i in range(7)
        )
        + "SO-20260002,,lina@example.cn,store,delivered,2026-06-10,2026-06-11,"
        "CPU-R7-7800X3D,1,2699,\n"
        + "SO-80000009,13800138000,,online,paid,2026-06-01,,PSU-RM850X,1,999,BAD\n",
    )
    result = await do_import(db, clock, Entity.ORDERS, orders)
    assert not result.committed
    assert counts(result) == (7, 1, 0, 1)
    assert await snapshot(db) == before


async def test_partial_commits_the_valid_rows(
    db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    path = write(
        tmp_path,
        "c.csv",
        "name,phone\nGood,13800138000\nBad,12\nAlso Good,13900139000\n",
    )

    result = await do_import(db, clock, Entity.CUSTOMERS, path, partial=True)

    assert result.committed
    assert counts(result) == (2, 0, 0, 1)
    assert not result.ok
    assert await scalar(db, select(func.count()).select_from(Customer)) == 2


async def test_a_dry_run_reports_everything_and_writes_nothing(
    db: Database, clock: FixedClock
) -> None:
    result = await do_import(db, clock, Entity.PRODUCTS, DATA / "products.csv", dry_run=True)

    assert not result.committed
    assert counts(result) == (4, 0, 0, 0)
    assert await scalar(db, select(func.count()).select_from(Product)) == 0


async def test_every_issue_reaches_the_callback_but_only_some_are_kept_in_memory(
    db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    path = write(tmp_path, "c.csv", "name,phone\n" + "X,1\n" * 30)
    seen: list[Issue] = []

    result = await do_import(
        db, clock, Entity.CUSTOMERS, path, config=ImportConfig(keep_issues=5), issues=seen
    )

    assert len(seen) == 30 and result.errors == 30
    assert len(result.issues) == 5 and result.issues_truncated


async def test_the_key_register_answers_the_same_before_and_after_moving_to_its_table(
    db: Database,
) -> None:
    items = [(f"k:{i % 7}", i + 2, str(i % 3)) for i in range(40)]
    expected: list[tuple[int, str | None] | None] = []
    first: dict[str, tuple[int, str | None]] = {}
    for key, row, value in items:
        expected.append(first.get(key))
        first.setdefault(key, (row, value))

    async with db.sessions() as session:
        keys = FileKeys(session, memory_limit=10)
        answers: list[tuple[int, str | None] | None] = []
        for start in range(0, len(items), 4):
            answers += await keys.claim(items[start : start + 4])
        assert keys.spilled
        await keys.close()
        await session.rollback()

    assert answers == expected


@pytest.mark.postgres
async def test_a_growing_import_refreshes_postgres_statistics_inside_its_transaction(
    pg_schema_url: str, clock: FixedClock, tmp_path: Path
) -> None:
    """Without it a fresh database filled by one big import is planned as if empty."""
    engine = create_engine(pg_schema_url)
    tables = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    path = write(
        tmp_path,
        "c.csv",
        "name,phone\n" + "".join(f"P{i},1390000{i:04d}\n" for i in range(300)),
    )
    try:
        async with create_session_factory(engine)() as session:
            service = ImportService(session, clock, ImportConfig(batch_size=50))
            result = await service.import_file(ImportRequest(Entity.CUSTOMERS, path))
            estimate = await session.scalar(
                text("SELECT reltuples FROM pg_class WHERE oid = 'customers'::regclass")
            )
            await session.rollback()
    finally:
        await engine.dispose()

    assert result.inserted == 300
    assert estimate is not None and estimate >= 200  # analyzed at 50, 100 and 200 rows


# -- export and round trips -------------------------------------------------------------------


async def _rich_database(db: Database, clock: FixedClock) -> None:
    """Customers (one erased, with an order), products and orders with serials."""
    await load_basics(db, clock)
    result = await do_import(db, clock, Entity.ORDERS, DATA / "orders.csv")
    assert result.ok, problems(result)
    async with unit_of_work(db.sessions) as session:
        await session.execute(
            update(Customer)
            .where(Customer.phone == "+8613700137000")
            .values(
                name="Erased customer",
                phone=None,
                email=None,
                tags=[],
                company_id=None,
                marketing_consent=False,
                anonymous_id="ANON-0123456789ab",
                erased_at=clock.now(),
            )
        )


@pytest.mark.parametrize(
    ("file_format", "encoding"),
    [
        (FileFormat.CSV, "utf-8"),
        (FileFormat.CSV, "utf-8-sig"),
        (FileFormat.CSV, "gb18030"),
        (FileFormat.JSONL, "utf-8"),
    ],
)
async def test_exported_files_import_back_unchanged(
    db: Database, clock: FixedClock, tmp_path: Path, file_format: FileFormat, encoding: str
) -> None:
    await _rich_database(db, clock)
    before = await snapshot(db)
    for entity in (Entity.PRODUCTS, Entity.CUSTOMERS, Entity.ORDERS):
        path = tmp_path / f"{entity.value}.{file_format.value}"
        async with unit_of_work(db.sessions) as session:
            exported = await ExportService(session, clock, batch_size=2).export_to_path(
                entity, path, file_format, encoding=encoding
            )
        assert exported.rows > 0

        result = await do_import(db, clock, entity, path)

        assert result.ok, problems(result)
        assert result.inserted == result.updated == 0
        assert result.unchanged == exported.records
        if entity is Entity.PRODUCTS:  # has Chinese names; the orders file is plain ASCII
            assert result.encoding == encoding
    assert await snapshot(db) == before


async def test_erased_customers_export_with_their_anonymous_id_only(
    db: Database, clock: FixedClock
) -> None:
    await _rich_database(db, clock)

    customers = list(csv.DictReader(io.StringIO(await export_text(db, clock, Entity.CUSTOMERS))))
    orders = list(csv.DictReader(io.StringIO(await export_text(db, clock, Entity.ORDERS))))

    erased = [row for row in customers if row["anonymous_id"]]
    assert erased == [
        {column: "" for column in customers[0]} | {"anonymous_id": "ANON-0123456789ab"}
    ]
    psu = [row for row in orders if row["order_number"] == "SO-20260003"]
    assert [(r["customer_phone"], r["customer_anonymous_id"]) for r in psu] == [
        ("", "ANON-0123456789ab")
    ]
    jsonl = await export_text(db, clock, Entity.CUSTOMERS, FileFormat.JSONL)
    assert '{"anonymous_id": "ANON-0123456789ab"}' in jsonl.splitlines()


async def test_an_erased_customers_row_cannot_carry_personal_data(
    db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    path = write(tmp_path, "c.csv", "name,phone,anonymous_id\nSomeone,13800138000,ANON-1\n")

    result = await do_import(db, clock, Entity.CUSTOMERS, path)

    assert_issue(result, 2, "name, phone", "carries only its anonymous_id")


async def test_an_export_imported_into_an_empty_database_exports_identically(
    db: Database, clock: FixedClock, tmp_path: Path, sqlite_db: Database
) -> None:
    await _rich_database(db, clock)
    for entity in (Entity.PRODUCTS, Entity.CUSTOMERS, Entity.ORDERS):
        original = await export_text(db, clock, entity)
        path = write(tmp_path, f"{entity.value}.csv", original)
        result = await do_import(sqlite_db, clock, entity, path)
        assert result.ok and result.committed, problems(result)
        assert await export_text(sqlite_db, clock, entity) == original


async def test_exporting_customers_is_audited(db: Database, clock: FixedClock) -> None:
    await load_basics(db, clock)

    await export_text(db, clock, Entity.CUSTOMERS)

    async with db.sessions() as session:
        rows = (
            await session.execute(
                text("SELECT action, entity FROM audit_log WHERE action = 'export'")
            )
        ).all()
    assert [tuple(r) for r in rows] == [("export", "customer")]


# -- the command line -------------------------------------------------------------------------


@pytest.fixture
def cli_db(sqlite_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A migrated SQLite database that `hwcrm` commands use (via HWCRM_DB__URL)."""
    path = tmp_path / "cli.sqlite3"
    shutil.copy(sqlite_template, path)
    monkeypatch.setenv("HWCRM_DB__URL", f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture
def hwcrm() -> Iterator[typer.Typer]:
    app = typer.Typer()
    cli_importexport.register(app)
    yield app


def test_cli_import_prints_the_problems_writes_the_report_and_exits_1(
    cli_db: Path, hwcrm: typer.Typer, tmp_path: Path
) -> None:
    data = write(
        tmp_path,
        "c.csv",
        "name,phone,email,vip_level\nGood,13800138000,a@example.com,3\nBad,12,b@example.com,1\n",
    )
    report = tmp_path / "report.csv"

    result = CliRunner().invoke(hwcrm, ["import", "customers", str(data), "--report", str(report)])

    assert result.exit_code == 1, result.output
    assert "nothing written: 1 row(s) rejected" in flat(result.output)
    rows = list(csv.reader(report.read_text(encoding="utf-8-sig").splitlines()))
    assert rows[0] == ["row", "column", "severity", "reason", "value"]
    assert ["1", "vip_level", "warning", "unknown column, ignored", ""] in rows
    assert ["3", "phone", "error", "not a valid phone number: '12'", "12"] in rows

    partial = CliRunner().invoke(hwcrm, ["import", "customers", str(data), "--partial"])
    assert partial.exit_code == 1
    assert "customers: 1 inserted, 0 updated, 0 unchanged, 1 rejected" in flat(partial.output)

    good = write(tmp_path, "ok.csv", "name,phone\nGood,13800138000\n")
    again = CliRunner().invoke(hwcrm, ["import", "customers", str(good)])
    assert again.exit_code == 0, again.output
    assert "0 inserted, 0 updated, 1 unchanged" in flat(again.output)


def test_cli_refuses_a_wrongly_encoded_file(cli_db: Path, hwcrm: typer.Typer) -> None:
    result = CliRunner().invoke(hwcrm, ["import", "customers", str(DATA / "customers_latin1.csv")])

    assert result.exit_code == 1
    assert "file refused: cannot tell the file's encoding" in flat(result.output)
    assert "nothing was written" in result.output


def test_cli_export_writes_a_file_that_imports_back(
    cli_db: Path, hwcrm: typer.Typer, tmp_path: Path
) -> None:
    runner = CliRunner()
    assert runner.invoke(hwcrm, ["import", "products", str(DATA / "products.csv")]).exit_code == 0
    out = tmp_path / "products.jsonl"

    exported = runner.invoke(
        hwcrm, ["export", "products", "--output", str(out), "--encoding", "gb18030"]
    )

    assert exported.exit_code == 0, exported.output
    assert "exported 4 products (4 rows) as jsonl, gb18030" in flat(exported.output)
    lines = out.read_bytes().decode("gb18030").splitlines()
    assert json.loads(lines[0])["sku"] == "CPU-R7-7800X3D"
    back = runner.invoke(hwcrm, ["import", "products", str(out)])
    assert back.exit_code == 0
    assert "0 inserted, 0 updated, 4 unchanged" in flat(back.output)
    assert not list(tmp_path.glob(".products.jsonl.*.tmp"))


# -- a 100 MB file ---------------------------------------------------------------------------


def _write_big_products_file(path: Path, target_bytes: int, bad_rows: dict[int, str]) -> int:
    """A products CSV of about `target_bytes` (rows carry ~1.3 KB spec sheets, as catalogue
    exports do); `bad_rows` replaces given data rows. Returns the number of data rows."""
    spec = {f"attribute_{k:02d}": f"value {{n}} {'x' * 24}" for k in range(24)}
    spec_cell = '"' + json.dumps(spec).replace('"', '""') + '"'
    written, n = 0, 0
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write("sku,name_en,name_zh,category,brand,price,warranty_months,specs\n")
        lines: list[str] = []
        while written < target_bytes:
            n += 1
            row = n + 1
            line = bad_rows.get(row) or (
                f"SKU-{n:07d},Part {n},配件 {n},显卡,Brand{n % 50},{n % 9000 + 99}.00,36,"
                + spec_cell.replace("{n}", str(n))
                + "\n"
            )
            lines.append(line)
            written += len(line.encode())
            if len(lines) == 1000:
                fh.write("".join(lines))
                lines.clear()
        fh.write("".join(lines))
    return n


class _PeakRss:
    """Samples this process's resident memory every 20 ms in a thread."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self.start = self._process.memory_info().rss
        self.peak = self.start
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self) -> _PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.start) / 1e6


async def test_a_100_mb_file_streams_in_bounded_memory_with_a_correct_result(
    sqlite_db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    """Memory is measured as resident-set growth (it includes SQLite's own allocations,
    which tracemalloc would miss; tracemalloc also slows this import about sixfold). For
    scale: holding this file's rows as dicts of strings takes ~150 MB more, with the spec
    sheets parsed ~420 MB; the streaming import stays around 20-30 MB."""
    db = sqlite_db  # SQLite only: the code path is the same on PostgreSQL
    path = tmp_path / "big.csv"
    bad = {
        5_000: "SKU-BAD-1,Bad,坏,not-a-category,X,1.00,12,\n",
        40_000: "SKU-0000007,Duplicate,重复,gpu,X,1.00,12,\n",
        60_000: "SKU-BAD-3,Bad,坏,gpu,X,-1.00,12,\n",
    }
    started = time.perf_counter()
    rows = await asyncio.to_thread(_write_big_products_file, path, 100 * 1024 * 1024, bad)
    assert path.stat().st_size >= 100 * 1024 * 1024

    with _PeakRss() as memory:
        # Few keys in memory: duplicate detection runs on its temporary table at scale.
        result = await do_import(
            db, clock, Entity.PRODUCTS, path, config=ImportConfig(memory_keys=10_000), partial=True
        )

    assert memory.growth_mb < 100, f"resident memory grew by {memory.growth_mb:.0f} MB"
    assert result.committed
    assert result.rows == rows
    assert counts(result) == (rows - 3, 0, 0, 3)
    assert problems(result) == [
        (
            5_000,
            "category",
            "unknown category; use a key such as gpu, cpu, ssd or a zh/en name such as 显卡",
        ),
        (40_000, "sku", "duplicate SKU: already in row 8"),
        (60_000, "price", "must not be negative"),
    ]
    assert await scalar(db, select(func.count()).select_from(Product)) == rows - 3
    async with db.sessions() as session:
        last = await session.scalar(select(Product).where(Product.sku == f"SKU-{rows:07d}"))
    assert last is not None
    assert (last.category, last.specs["attribute_23"]) == ("gpu", f"value {rows} {'x' * 24}")
    print(
        f"100 MB import: {rows} rows in {time.perf_counter() - started:.1f} s, "
        f"RSS +{memory.growth_mb:.0f} MB"
    )
