"""Accessories for a device (crm_core.catalog.accessories), on SQLite and PostgreSQL.

The whole-catalog tests re-check every suggestion with the rule written out here (wattage,
connectors, socket, TDP, RAM type, GPU length), independently of the rule code, and check that
nothing that fits is left out.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.catalog.accessories import AccessoryService
from crm_core.catalog.compatibility import seed_default_rules
from crm_core.catalog.models import CompatibilityRule, Product
from crm_core.catalog.schemas import ProductDTO, validate_specs
from crm_core.catalog.service import CatalogService
from crm_core.demo.catalog_data import demo_products
from crm_core.errors import NotFound, ValidationFailed

pytestmark = pytest.mark.usefixtures("sqlite_template", "pg_schema_url")

ALL = 10_000
GPU_4070 = "GPU-MSI-4070-VENTUS2X"  # 200 W, 242 mm, 1× PCIe 8-pin, maker: 650 W


@pytest.fixture
async def svc(session: AsyncSession) -> AccessoryService:
    """The demo catalog (specs validated like upsert does), the default rules, the service."""
    session.add_all(
        Product(**{**p, "specs": validate_specs(p["category"], p["specs"])})
        for p in demo_products()
    )
    await seed_default_rules(session)
    await session.commit()
    return AccessoryService(session)


async def _all(session: AsyncSession, category: str) -> list[ProductDTO]:
    return await CatalogService(session).search(category=category, limit=500)


# --- the rules, written out independently ---------------------------------------------------


def psu_fits_gpu(gpu: dict[str, Any], psu: dict[str, Any]) -> bool:
    formula = -(-((gpu["board_power_w"] + 250) * 13) // (10 * 50)) * 50  # ceil to 50 W
    needed = max(gpu["recommended_psu_w"], formula)
    plugs = gpu.get("power_connectors", [])
    need_16 = plugs.count("12V-2x6")
    need_8 = plugs.count("pcie_8pin") + plugs.count("pcie_6pin")
    return (
        psu["wattage_w"] >= needed
        and psu["connectors"].get("12V-2x6", 0) >= need_16
        and psu["connectors"].get("pcie_8pin", 0) >= need_8
    )


def cooler_fits_cpu(cpu: dict[str, Any], cooler: dict[str, Any]) -> bool:
    return cpu["socket"] in cooler["sockets"] and cooler["tdp_rating_w"] >= cpu["tdp_w"]


def ram_fits_board(board: dict[str, Any], ram: dict[str, Any]) -> bool:
    return bool(board["ram_type"] == ram["type"])


def case_fits_gpu(gpu: dict[str, Any], case: dict[str, Any]) -> bool:
    return bool(case["max_gpu_length_mm"] >= gpu["length_mm"] + 10)


WHOLE_CATALOG = [
    ("gpu", "psu", psu_fits_gpu, "W"),
    ("cpu", "cooler", cooler_fits_cpu, "TDP"),
    ("motherboard", "ram", ram_fits_board, "DDR"),
    ("gpu", "case", case_fits_gpu, "mm"),
]


@pytest.mark.parametrize(("device_cat", "accessory_cat", "fits", "word"), WHOLE_CATALOG)
async def test_every_demo_device_gets_exactly_the_accessories_that_satisfy_the_rule(
    svc: AccessoryService,
    session: AsyncSession,
    device_cat: str,
    accessory_cat: str,
    fits: Any,
    word: str,
) -> None:
    devices = await _all(session, device_cat)
    candidates = await _all(session, accessory_cat)
    assert devices and candidates
    for device in devices:
        got = await svc.compatible_accessories(device, accessory_cat, limit=ALL)
        expected = {c.sku for c in candidates if fits(device.specs, c.specs)}
        assert {s.product.sku for s in got} == expected, device.sku
        assert got, f"the demo catalog has no {accessory_cat} for {device.sku}"
        for s in got:
            assert fits(device.specs, s.product.specs), (device.sku, s.product.sku)
            assert s.product.category == accessory_cat and s.device_sku == device.sku
            assert s.reasons_en and s.reasons_zh and len(s.reasons_en) == len(s.rules)
            assert word in s.reason("en") and word in s.reason("zh")


async def test_every_suggested_psu_within_a_budget_fits_and_costs_at_most_the_budget(
    svc: AccessoryService, session: AsyncSession
) -> None:
    for gpu in await _all(session, "gpu"):
        for budget in (Decimal(500), Decimal(800), Decimal(1500)):
            got = await svc.compatible_accessories(gpu, "psu", budget=budget, limit=ALL)
            assert all(s.price <= budget and psu_fits_gpu(gpu.specs, s.product.specs) for s in got)


async def test_a_psu_for_an_rtx_4070_says_why_in_watts_and_connectors_in_both_languages(
    svc: AccessoryService,
) -> None:
    got = await svc.compatible_accessories(GPU_4070, "psu", limit=3)
    assert got
    first = got[0]
    assert first.rules == ["psu_for_gpu"]
    assert "650 W needed" in first.reason("en") and "PCIe 8-pin" in first.reason("en")
    assert "所需" in first.reason("zh")
    # Cheapest first (no ranking given), in stock first.
    prices = [s.price for s in got]
    assert prices == sorted(prices)


async def test_nothing_within_budget_gives_the_cheapest_compatible_as_the_nearest_option(
    svc: AccessoryService,
) -> None:
    gpu = "GPU-ZOTAC-5090-SOLID"  # needs 1100 W and a native 12V-2x6
    match = await svc.match(gpu, "psu", budget=Decimal(300))
    assert match.suggestions == []
    assert match.compatible_count > 0
    assert match.nearest is not None and match.nearest.price > Decimal(300)
    everything = await svc.compatible_accessories(gpu, "psu", limit=ALL)
    assert match.nearest.price == min(s.price for s in everything if s.in_stock)


async def test_when_nothing_fits_at_all_the_closest_misfit_says_what_is_wrong(
    svc: AccessoryService, session: AsyncSession
) -> None:
    monster = await CatalogService(session).upsert(
        {
            "sku": "GPU-TEST-MONSTER",
            "name_en": "Test Monster GPU",
            "name_zh": "测试巨兽显卡",
            "category": "gpu",
            "brand": "Test",
            "price": 99999,
            "specs": {
                "board_power_w": 1100,
                "length_mm": 440,
                "slots": 4,
                "power_connectors": ["12V-2x6", "12V-2x6"],
                "vram_gb": 48,
                "recommended_psu_w": 2000,
            },
        }
    )
    match = await svc.match(monster, "psu")
    assert match.suggestions == [] and match.compatible_count == 0 and match.nearest is None
    assert match.closest_misfit is not None
    assert "needed" in match.closest_misfit.problem("en")
    assert "所需" in match.closest_misfit.problem("zh")


async def test_owned_products_sold_out_items_and_ranking_are_honoured(
    svc: AccessoryService, session: AsyncSession
) -> None:
    everything = await svc.compatible_accessories(GPU_4070, "psu", limit=ALL)
    assert len(everything) >= 3
    owned, sold_out = everything[0], everything[1]
    favourite = [s for s in everything if s.in_stock][-1]  # the dearest in stock
    assert favourite not in (owned, sold_out)
    await CatalogService(session).set_stock(sold_out.product.sku, 0)
    got = await svc.compatible_accessories(
        GPU_4070,
        "psu",
        exclude_product_ids={owned.product.id},
        in_stock_only=True,
        rank_by={favourite.product.id: 0.9},
        limit=ALL,
    )
    skus = [s.product.sku for s in got]
    assert owned.product.sku not in skus and sold_out.product.sku not in skus
    assert skus[0] == favourite.product.sku and got[0].score == 0.9
    # Without in_stock_only a sold-out item is still listed, after those in stock.
    listed = await svc.compatible_accessories(GPU_4070, "psu", limit=ALL)
    tail = [s for s in listed if not s.in_stock]
    assert sold_out.product.sku in {s.product.sku for s in tail}
    assert listed[-len(tail) :] == tail and all(s.stock_qty == 0 for s in tail)


async def test_a_psu_for_my_gpu_that_must_also_fit_my_sfx_case_is_an_sfx_unit(
    svc: AccessoryService, session: AsyncSession
) -> None:
    cases = [c for c in await _all(session, "case") if c.specs["psu_form_factor"] == "SFX"]
    assert cases, "the demo catalog has an SFX case"
    got = await svc.compatible_accessories(GPU_4070, "psu", also_fits=[cases[0]], limit=ALL)
    assert got
    assert all(s.product.specs["form_factor"] == "SFX" for s in got)
    assert all(s.rules == ["psu_for_gpu", "psu_for_case"] for s in got)


async def test_a_disabled_rule_is_an_error_not_an_empty_list_and_tuned_params_apply(
    svc: AccessoryService, session: AsyncSession
) -> None:
    before = await svc.compatible_accessories(GPU_4070, "psu", limit=ALL)
    await session.execute(
        update(CompatibilityRule)
        .where(CompatibilityRule.rule == "psu_for_gpu")
        .values(params={"base_system_w": 250, "headroom": 2.0, "round_to_w": 50})
    )
    stricter = await AccessoryService(session).compatible_accessories(GPU_4070, "psu", limit=ALL)
    assert {s.product.sku for s in stricter} < {s.product.sku for s in before}
    await session.execute(
        update(CompatibilityRule)
        .where(CompatibilityRule.rule == "psu_for_gpu")
        .values(active=False)
    )
    with pytest.raises(ValidationFailed, match="no active compatibility rule between gpu and psu"):
        await AccessoryService(session).compatible_accessories(GPU_4070, "psu")


async def test_bad_input_gets_a_clear_error(svc: AccessoryService) -> None:
    with pytest.raises(NotFound):
        await svc.compatible_accessories("NO-SUCH-SKU", "psu")
    with pytest.raises(ValidationFailed, match="unknown product category"):
        await svc.compatible_accessories(GPU_4070, "spaceship")
    with pytest.raises(ValidationFailed, match="no active compatibility rule"):
        await svc.compatible_accessories(GPU_4070, "mouse")


async def test_zh_and_en_category_words_work_as_the_accessory_category(
    svc: AccessoryService,
) -> None:
    en = await svc.compatible_accessories(GPU_4070, "power supply", limit=ALL)
    zh = await svc.compatible_accessories(GPU_4070, "电源", limit=ALL)
    assert [s.product.sku for s in en] == [s.product.sku for s in zh]


@pytest.mark.parametrize(
    ("said", "category", "expected"),
    [
        ("7800X3D", "cpu", "7800X3D"),
        ("RTX 4070", "gpu", "RTX 4070"),
        ("rtx4070", "gpu", "RTX 4070"),
    ],
)
async def test_a_model_the_customer_names_is_found_in_the_catalog(
    svc: AccessoryService, said: str, category: str, expected: str
) -> None:
    found = await svc.find_devices(said, category)
    assert found and expected in found[0].name_en and found[0].category == category
