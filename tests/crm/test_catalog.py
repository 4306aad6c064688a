"""Catalog specs, catalog service and compatibility rules, on SQLite and PostgreSQL.

Compatibility is checked with the real demo products (crm_core/demo/catalog_data.py), so the
answers are the ones the bot gives: an RTX 4090-class card (450 W, 336 mm) needs a 1000 W+
power supply with a native 12V-2x6 plug and a case with at least 346 mm of GPU clearance.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.catalog.compatibility import (
    DEFAULT_RULES,
    CompatibilityService,
    evaluate,
    required_psu_watts,
    seed_default_rules,
)
from crm_core.catalog.models import CompatibilityRule, Product
from crm_core.catalog.schemas import SPEC_MODELS, GpuSpecs, validate_specs
from crm_core.catalog.service import CatalogService, policy_warranty_months
from crm_core.demo.catalog_data import demo_products
from crm_core.errors import NotFound, ValidationFailed

# The session fixtures migrate with asyncio.run(); they must be set up outside the event loop.
pytestmark = pytest.mark.usefixtures("sqlite_template", "pg_schema_url")

GPU_4090 = "GPU-MSI-4090-SUPRIMX"  # 450 W, 336 mm, 1× 12V-2x6, maker recommends 1000 W
GPU_5090 = "GPU-ZOTAC-5090-SOLID"  # 575 W, 332 mm → (575 + 250) × 1.3 → 1100 W


def _gpu(**overrides: Any) -> dict[str, Any]:
    specs: dict[str, Any] = {
        "board_power_w": 200,
        "length_mm": 242,
        "slots": 2.5,
        "power_connectors": ["pcie_8pin"],
        "vram_gb": 12,
        "recommended_psu_w": 650,
    }
    specs.update(overrides)
    return specs


@pytest.fixture
async def catalog(session: AsyncSession) -> CatalogService:
    """The demo catalog (specs validated like upsert does) and the default rules."""
    session.add_all(
        Product(**{**p, "specs": validate_specs(p["category"], p["specs"])})
        for p in demo_products()
    )
    await seed_default_rules(session)
    await session.commit()
    return CatalogService(session)


async def test_the_whole_demo_catalog_goes_through_upsert(session: AsyncSession) -> None:
    service = CatalogService(session)
    for product in demo_products():
        dto = await service.upsert(product)
        assert dto.warranty_months == product["warranty_months"]
    assert sum((await service.count_by_category()).values()) == len(demo_products())


@pytest.fixture
def compat(session: AsyncSession, catalog: CatalogService) -> CompatibilityService:
    return CompatibilityService(session)


def _skus(results: list[Any]) -> list[str]:
    return [r.product.sku for r in results]


# --- spec validation ------------------------------------------------------------------------


def test_every_category_has_a_spec_model_and_every_demo_product_validates() -> None:
    assert set(SPEC_MODELS) == {p["category"] for p in demo_products()}
    for product in demo_products():
        assert validate_specs(product["category"], product["specs"])


def test_gpu_specs_missing_a_field_name_the_field() -> None:
    specs = _gpu()
    del specs["board_power_w"]
    with pytest.raises(ValidationFailed, match=r"specs\.board_power_w: Field required"):
        validate_specs("gpu", specs)


def test_gpu_specs_with_a_wrong_type_name_the_field() -> None:
    with pytest.raises(ValidationFailed, match=r"specs\.length_mm"):
        validate_specs("gpu", _gpu(length_mm="very long"))


def test_a_misspelt_spec_key_is_rejected_instead_of_silently_ignored() -> None:
    specs = _gpu()
    specs["board_power"] = specs.pop("board_power_w")
    with pytest.raises(ValidationFailed, match=r"specs\.board_power"):
        validate_specs("gpu", specs)


def test_unknown_gpu_power_connector_is_rejected() -> None:
    with pytest.raises(ValidationFailed, match=r"specs\.power_connectors\.0"):
        validate_specs("gpu", _gpu(power_connectors=["molex"]))


def test_12vhpwr_is_stored_as_12v_2x6_and_psu_connectors_get_every_key() -> None:
    gpu = validate_specs("gpu", _gpu(power_connectors=["12VHPWR"]))
    assert gpu["power_connectors"] == ["12V-2x6"]
    psu = validate_specs(
        "psu",
        {
            "wattage_w": 850,
            "form_factor": "atx",
            "connectors": {"12VHPWR": 1, "pcie_8pin": 3},
            "efficiency": "gold",
            "atx_version": "3.1",
        },
    )
    assert psu["form_factor"] == "ATX"
    assert psu["connectors"] == {"12V-2x6": 1, "pcie_8pin": 3, "eps_8pin": 0, "sata": 0}


def test_psu_with_a_negative_connector_count_is_rejected() -> None:
    with pytest.raises(ValidationFailed, match=r"specs\.connectors\.pcie_8pin"):
        validate_specs(
            "psu",
            {
                "wattage_w": 650,
                "form_factor": "ATX",
                "connectors": {"pcie_8pin": -1},
                "efficiency": "bronze",
                "atx_version": "2.52",
            },
        )


def test_air_cooler_needs_a_height_and_aio_a_radiator_size() -> None:
    base = {"sockets": ["am5"], "tdp_rating_w": 200}
    with pytest.raises(ValidationFailed, match="height_mm is required"):
        validate_specs("cooler", {**base, "type": "air"})
    with pytest.raises(ValidationFailed, match="radiator_mm is required"):
        validate_specs("cooler", {**base, "type": "aio"})
    assert validate_specs("cooler", {**base, "type": "air", "height_mm": 155})["sockets"] == ["AM5"]


def test_motherboard_form_factor_and_socket_aliases_are_normalised() -> None:
    specs = validate_specs(
        "motherboard",
        {
            "socket": "lga 1700",
            "chipset": "B760",
            "form_factor": "mATX",
            "ram_type": "ddr5",
            "m2_slots": 2,
            "max_ram_gb": 192,
            "wifi": True,
        },
    )
    assert (specs["socket"], specs["form_factor"], specs["ram_type"]) == (
        "LGA1700",
        "Micro-ATX",
        "DDR5",
    )


def test_cpu_with_fewer_threads_than_cores_is_rejected() -> None:
    with pytest.raises(ValidationFailed, match="threads must be at least cores"):
        validate_specs(
            "cpu",
            {
                "socket": "AM5",
                "tdp_w": 65,
                "cores": 8,
                "threads": 4,
                "ram_types": ["DDR5"],
                "has_igpu": True,
            },
        )


def test_unknown_category_is_rejected_and_synonyms_are_accepted() -> None:
    with pytest.raises(ValidationFailed, match="unknown product category 'toaster'"):
        validate_specs("toaster", {})
    assert validate_specs("显卡", _gpu())["board_power_w"] == 200


# --- catalog service ------------------------------------------------------------------------


async def test_upsert_creates_a_product_with_the_policy_warranty_and_updates_it_by_sku(
    session: AsyncSession,
) -> None:
    service = CatalogService(session)
    created = await service.upsert(
        {
            "sku": "gpu-test-1",
            "name_en": "Test GPU",
            "name_zh": "测试显卡",
            "category": "graphics card",
            "brand": "TestBrand",
            "price": "1999.00",
            "specs": _gpu(),
        }
    )
    assert (created.sku, created.category, created.warranty_months) == ("GPU-TEST-1", "gpu", 36)
    updated = await service.upsert(
        {
            "sku": "GPU-TEST-1",
            "name_en": "Test GPU v2",
            "name_zh": "测试显卡二代",
            "category": "gpu",
            "brand": "TestBrand",
            "price": Decimal("1899"),
            "warranty_months": 48,
            "specs": _gpu(board_power_w=220),
        }
    )
    assert updated.id == created.id
    assert (updated.name_en, updated.price, updated.warranty_months) == (
        "Test GPU v2",
        Decimal("1899.00"),
        48,
    )
    assert updated.specs["board_power_w"] == 220
    await session.commit()
    assert (await service.get("gpu-test-1")).name_zh == "测试显卡二代"


async def test_upsert_with_invalid_specs_names_the_field_and_writes_nothing(
    session: AsyncSession,
) -> None:
    service = CatalogService(session)
    with pytest.raises(ValidationFailed, match=r"specs\.vram_gb"):
        await service.upsert(
            {
                "sku": "GPU-BAD",
                "name_en": "Bad",
                "name_zh": "坏",
                "category": "gpu",
                "brand": "X",
                "price": 1,
                "specs": _gpu(vram_gb=0),
            }
        )
    with pytest.raises(ValidationFailed, match="price"):
        await service.upsert(
            {
                "sku": "GPU-BAD",
                "name_en": "Bad",
                "name_zh": "坏",
                "category": "gpu",
                "brand": "X",
                "price": -5,
                "specs": _gpu(),
            }
        )
    assert await service.search("bad") == []


def test_policy_warranty_lengths_follow_the_knowledge_base_policy() -> None:
    assert policy_warranty_months("gpu") == 36
    assert policy_warranty_months("psu") == 60
    assert policy_warranty_months("case") == 12
    assert policy_warranty_months("headset") == 12
    assert policy_warranty_months("cooler", {"type": "air"}) == 24
    assert policy_warranty_months("cooler", {"type": "aio"}) == 60


async def test_get_by_sku_is_case_insensitive_and_unknown_sku_is_not_found(
    catalog: CatalogService,
) -> None:
    product = await catalog.get("gpu-msi-4090-suprimx")
    assert product.name_zh == "微星 GeForce RTX 4090 超龙 X 24G"
    assert product.name("en") == "MSI GeForce RTX 4090 SUPRIM X 24G"
    with pytest.raises(NotFound, match="GPU-NOPE"):
        await catalog.get("GPU-NOPE")


async def test_search_matches_every_word_in_english_or_chinese_case_insensitively(
    catalog: CatalogService,
) -> None:
    assert set(_dto_skus(await catalog.search("rtx 4090"))) == {GPU_4090, "GPU-ASUS-ROG-4090"}
    assert _dto_skus(await catalog.search("微星 4090")) == [GPU_4090]
    assert "PSU-CORSAIR-RM750E" in _dto_skus(await catalog.search("海盗船 750W"))
    cheap_first = await catalog.search("4070", category="显卡")
    assert [p.price for p in cheap_first] == sorted(p.price for p in cheap_first)
    assert all(p.category == "gpu" for p in cheap_first)


async def test_search_by_category_and_brand(catalog: CatalogService) -> None:
    coolers = await catalog.search(category="cooler", brand="noctua")
    assert _dto_skus(coolers) == ["COOLER-NOCTUA-NHL9I", "COOLER-NOCTUA-NHD15G2"]
    assert len(await catalog.search(category="psu", limit=500)) == 17
    with pytest.raises(ValidationFailed, match="unknown product category"):
        await catalog.search(category="toaster")


async def test_inactive_products_are_hidden_from_search_unless_asked(
    catalog: CatalogService,
) -> None:
    await catalog.set_active("HDD-SEAGATE-EXOS-16T", False)
    assert await catalog.search("exos") == []
    assert _dto_skus(await catalog.search("exos", active_only=False)) == ["HDD-SEAGATE-EXOS-16T"]


def _dto_skus(products: list[Any]) -> list[str]:
    return [p.sku for p in products]


# --- compatibility: psu_for_gpu ---------------------------------------------------------------


def test_required_psu_watts_follow_the_formula_and_the_makers_recommendation() -> None:
    params = {"base_system_w": 250, "headroom": 1.3, "round_to_w": 50}
    gpu_4090 = GpuSpecs.model_validate(
        next(p for p in demo_products() if p["sku"] == GPU_4090)["specs"]
    )
    assert required_psu_watts(gpu_4090, params) == (1000, 950)
    # (250 + 250) × 1.3 is exactly 650 (not 700 from floating-point noise).
    assert required_psu_watts(GpuSpecs.model_validate(_gpu(board_power_w=250)), params) == (
        650,
        650,
    )


async def test_rtx_4090_class_card_gets_only_1000w_plus_psus_with_a_native_12v_2x6(
    compat: CompatibilityService, catalog: CatalogService
) -> None:
    results = await compat.compatible(GPU_4090, "psu", limit=50)
    skus = _skus(results)
    assert skus[0] == "PSU-MSI-A1000GL"  # the cheapest adequate one first
    for result in results:
        assert result.product.specs["wattage_w"] >= 1000
        assert result.product.specs["connectors"]["12V-2x6"] >= 1
    assert "PSU-ANTEC-HCG1000" not in skus  # 1000 W but no 16-pin plug
    assert "PSU-SEASONIC-FOCUSGX-850" not in skus
    assert [r.product.price for r in results] == sorted(r.product.price for r in results)
    assert "1000 W ≥ 1000 W needed" in results[0].explanation_en
    assert "所需 1000 W" in results[0].explanation_zh
    assert "12V-2x6" in results[0].explanation("zh")


async def test_psu_to_gpus_it_can_power_is_the_same_rule_backwards(
    compat: CompatibilityService,
) -> None:
    gpus = _skus(await compat.compatible("PSU-CORSAIR-RM750E", "gpu", limit=100))
    assert "GPU-MSI-4070-VENTUS2X" in gpus  # 650 W, one 8-pin
    assert "GPU-SAPPHIRE-7800XT-NITRO" in gpus  # 750 W, two 8-pin
    assert "GPU-ASUS-TUF-4070TIS" in gpus  # (285 + 250) × 1.3 → 700, maker says 750
    assert GPU_4090 not in gpus
    assert "GPU-SAPPHIRE-7900XTX-NITRO" not in gpus  # 850 W and three 8-pin plugs
    # A 16-pin card on an ATX 2.x PSU without a 16-pin plug: refused even with enough watts.
    assert "GPU-GIGABYTE-4070S-WINDFORCE" not in _skus(
        await compat.compatible("PSU-GREATWALL-X8-850", "gpu", limit=100)
    )


async def test_check_names_the_missing_connector_and_the_missing_watts(
    compat: CompatibilityService,
) -> None:
    no_plug = await compat.check(GPU_4090, "PSU-ANTEC-HCG1000")
    assert not no_plug.ok
    assert no_plug.rules == ["psu_for_gpu"]
    assert "12V-2x6" in no_plug.reasons_en[0] and "has 0" in no_plug.reasons_en[0]
    assert "12V-2x6" in no_plug.reasons_zh[0]
    too_weak = await compat.check("PSU-MSI-A1000GL", GPU_5090)  # either order works
    assert not too_weak.ok
    assert "below the 1100 W needed" in too_weak.reasons_en[0]
    assert (await compat.check(GPU_5090, "PSU-CORSAIR-HX1200I")).ok


# --- case_for_gpu ---------------------------------------------------------------------------


async def test_rtx_4090_class_card_gets_cases_with_at_least_346mm_clearance(
    compat: CompatibilityService,
) -> None:
    results = await compat.compatible(GPU_4090, "case", limit=50)
    assert results
    assert all(r.product.specs["max_gpu_length_mm"] >= 346 for r in results)
    skus = _skus(results)
    assert "CASE-FRACTAL-NORTH" in skus  # 355 mm
    assert "CASE-ASUS-AP201" not in skus  # 338 mm: fits the card, not the 10 mm margin
    assert "336 mm card + 10 mm margin" in results[0].explanation_en


async def test_small_case_gets_only_cards_short_enough_including_the_exact_fit(
    compat: CompatibilityService,
) -> None:
    gpus = _skus(await compat.compatible("CASE-COOLERMASTER-NR200P", "gpu", limit=100))  # 330
    assert "GPU-SAPPHIRE-7800XT-NITRO" in gpus  # 320 + 10 = 330 exactly
    assert "GPU-MSI-4080S-GAMINGX" not in gpus  # 322 mm
    assert GPU_4090 not in gpus


# --- cooler_for_cpu -------------------------------------------------------------------------


async def test_cpu_gets_coolers_for_its_socket_rated_for_its_tdp(
    compat: CompatibilityService,
) -> None:
    for_14900k = _skus(await compat.compatible("CPU-INTEL-I9-14900K", "cooler", limit=50))
    assert "COOLER-DEEPCOOL-AK400" in for_14900k
    assert "COOLER-IDCOOLING-IS55" in for_14900k  # 125 W rating = 125 W TDP
    assert "COOLER-NOCTUA-NHL9I" not in for_14900k  # 95 W
    for_285k = _skus(await compat.compatible("CPU-INTEL-U9-285K", "cooler", limit=50))
    assert "COOLER-IDCOOLING-IS55" not in for_285k  # no LGA1851 bracket
    assert "COOLER-DEEPCOOL-LT720" not in for_285k


async def test_cooler_gets_only_cpus_it_mounts_on_and_can_cool(
    compat: CompatibilityService,
) -> None:
    cpus = _skus(await compat.compatible("COOLER-NOCTUA-NHL9I", "cpu", limit=50))
    assert set(cpus) == {"CPU-INTEL-I5-12400F", "CPU-INTEL-I5-13400F"}
    result = await compat.check("COOLER-NOCTUA-NHL9I", "CPU-AMD-R7-9800X3D")
    assert not result.ok
    assert "does not mount on AM5" in result.reasons_en[0]
    assert "AM5" in result.reasons_zh[0]


# --- motherboard_for_cpu --------------------------------------------------------------------


async def test_cpu_gets_boards_with_its_socket_and_back(compat: CompatibilityService) -> None:
    boards = await compat.compatible("CPU-AMD-R7-9800X3D", "motherboard", limit=50)
    assert boards and all(r.product.specs["socket"] == "AM5" for r in boards)
    cpus = _skus(await compat.compatible("MB-MSI-B760M-MORTAR-D4", "cpu", limit=50))
    assert set(cpus) == {
        "CPU-INTEL-I5-12400F",
        "CPU-INTEL-I5-13400F",
        "CPU-INTEL-I5-14600KF",
        "CPU-INTEL-I7-14700K",
        "CPU-INTEL-I9-14900K",
    }
    mismatch = await compat.check("CPU-AMD-R5-5600", "MB-MSI-B650-TOMAHAWK")
    assert not mismatch.ok and "socket mismatch: the CPU is AM4" in mismatch.reasons_en[0]


# --- ram_for_motherboard --------------------------------------------------------------------


async def test_board_gets_memory_of_its_type_and_memory_gets_boards_of_its_type(
    compat: CompatibilityService,
) -> None:
    kits = await compat.compatible("MB-MSI-B550-TOMAHAWK", "ram", limit=50)
    assert kits and all(r.product.specs["type"] == "DDR4" for r in kits)
    boards = await compat.compatible("RAM-GSKILL-TZ5NEO-D5-6000-32", "motherboard", limit=50)
    assert boards and all(r.product.specs["ram_type"] == "DDR5" for r in boards)
    result = await compat.check("RAM-CORSAIR-VENG-D4-3600-32", "MB-ASUS-X870E-HERO")
    assert not result.ok and "not interchangeable" in result.reasons_en[0]
    assert "不能混用" in result.reasons_zh[0]


# --- case_for_motherboard -------------------------------------------------------------------


async def test_e_atx_board_gets_e_atx_cases_and_itx_case_gets_itx_boards(
    compat: CompatibilityService,
) -> None:
    cases = _skus(await compat.compatible("MB-GIGABYTE-X870E-MASTER", "case", limit=50))
    assert set(cases) == {
        "CASE-MONTECH-AIR903",
        "CASE-LIANLI-LANCOOL216",
        "CASE-LIANLI-O11EVO",
        "CASE-PHANTEKS-NV7",
    }
    boards = await compat.compatible("CASE-COOLERMASTER-NR200P", "motherboard", limit=50)
    assert boards and all(r.product.specs["form_factor"] == "Mini-ITX" for r in boards)


# --- cooler_for_case ------------------------------------------------------------------------


async def test_small_case_gets_low_coolers_and_the_radiator_sizes_it_mounts(
    compat: CompatibilityService,
) -> None:
    coolers = await compat.compatible("CASE-LIANLI-A4H2O", "cooler", limit=50)
    skus = _skus(coolers)
    assert "COOLER-NOCTUA-NHL9I" in skus  # 37 mm ≤ 55 mm
    assert "COOLER-ARCTIC-LF3-240" in skus
    assert "COOLER-DEEPCOOL-AK400" not in skus  # 155 mm
    assert "COOLER-ARCTIC-LF3-360" not in skus
    tall = _skus(await compat.compatible("COOLER-NOCTUA-NHD15G2", "case", limit=50))  # 168 mm
    assert "CASE-LIANLI-LANCOOL216" in tall and "CASE-NZXT-H5FLOW" not in tall  # 180 / 165


# --- psu_for_case ---------------------------------------------------------------------------


async def test_sfx_case_gets_sfx_psus_and_sfx_psu_gets_sfx_cases(
    compat: CompatibilityService,
) -> None:
    psus = await compat.compatible("CASE-COOLERMASTER-NR200P", "psu", limit=50)
    assert psus and all(r.product.specs["form_factor"] == "SFX" for r in psus)
    cases = _skus(await compat.compatible("PSU-CORSAIR-SF750", "case", limit=50))
    assert set(cases) == {"CASE-COOLERMASTER-NR200P", "CASE-LIANLI-A4H2O"}


# --- rule configuration and edge cases ------------------------------------------------------


async def test_a_pair_checked_by_two_rules_lists_both(compat: CompatibilityService) -> None:
    # A case and a cooler: one rule; a GPU and a case: one rule; every default rule relates
    # a distinct pair of categories, so `rules` names exactly the rule of that pair.
    pairs = {frozenset((r.source_category, r.target_category)) for r in DEFAULT_RULES}
    assert len(pairs) == len(DEFAULT_RULES)
    result = await compat.check("CASE-PHANTEKS-NV7", "COOLER-NZXT-KRAKEN-ELITE-360")
    assert result.ok and result.rules == ["cooler_for_case"]


async def test_products_without_a_rule_between_them_are_ok_with_no_rules(
    compat: CompatibilityService,
) -> None:
    result = await compat.check("MOUSE-RAZER-DAV3PRO", GPU_4090)
    assert result.ok and result.rules == []
    with pytest.raises(
        ValidationFailed, match="no active compatibility rule between gpu and mouse"
    ):
        await compat.compatible(GPU_4090, "mouse")
    with pytest.raises(NotFound):
        await compat.compatible("GPU-NOPE", "psu")


async def test_switching_a_rule_off_removes_it_and_params_tune_it(
    session: AsyncSession, compat: CompatibilityService
) -> None:
    assert "PSU-MSI-A1000GL" not in _skus(await compat.compatible(GPU_5090, "psu", limit=50))
    await session.execute(
        update(CompatibilityRule)
        .where(CompatibilityRule.rule == "psu_for_gpu")
        .values(params={"base_system_w": 250, "headroom": 1.0, "round_to_w": 50})
    )
    # (575 + 250) × 1.0 = 825 → 850, the maker's 1000 W now decides.
    assert "PSU-MSI-A1000GL" in _skus(await compat.compatible(GPU_5090, "psu", limit=50))
    await session.execute(
        update(CompatibilityRule)
        .where(CompatibilityRule.rule == "psu_for_gpu")
        .values(active=False)
    )
    with pytest.raises(ValidationFailed, match="no active compatibility rule"):
        await compat.compatible(GPU_5090, "psu")
    assert await compat.related_categories("gpu") == ["case"]


async def test_seeding_the_default_rules_is_idempotent(session: AsyncSession) -> None:
    assert await seed_default_rules(session) == len(DEFAULT_RULES)
    assert await seed_default_rules(session) == 0
    rows = (await session.scalars(select(CompatibilityRule))).all()
    assert {r.rule for r in rows} == {r.name for r in DEFAULT_RULES}
    assert all(r.description_en and r.description_zh for r in rows)


def test_evaluate_reports_incomplete_specs_instead_of_crashing() -> None:
    outcome = evaluate("case_for_gpu", {"length_mm": 300}, {"max_gpu_length_mm": 350})
    assert not outcome.ok
    assert "specs incomplete" in outcome.en and "规格信息不完整" in outcome.zh
