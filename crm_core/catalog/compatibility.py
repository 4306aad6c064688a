"""Compatibility between products, evaluated on their structured specs.

A rule says "a <target_category> fits a <source_category> when ..."; rows of
`CompatibilityRule` switch rules on and off and tune their parameters (staff can change them
without a code change). Every rule works in both directions: from a GPU to the PSUs that can
power it, and from a PSU to the GPUs it can power.

The checks themselves are pure functions (`evaluate`), so the demo-data generator and tests
use exactly the logic the bot uses.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.catalog.categories import CATEGORY_KEYS, canonical_category
from crm_core.catalog.models import CompatibilityRule, Product
from crm_core.catalog.schemas import (
    CaseSpecs,
    CompatibilityResult,
    CompatibleProduct,
    CoolerSpecs,
    CpuSpecs,
    GpuSpecs,
    MotherboardSpecs,
    ProductDTO,
    PsuSpecs,
    RamSpecs,
    SpecModel,
    parse_specs,
)
from crm_core.errors import NotFound, ValidationFailed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RuleOutcome:
    """The verdict of one rule on one pair, with a one-sentence reason in both languages."""

    ok: bool
    en: str
    zh: str


RuleCheck = Callable[[Any, Any, Mapping[str, Any]], RuleOutcome]


@dataclass(frozen=True)
class RuleDefinition:
    """A named check between two categories and its default parameters."""

    name: str
    source_category: str
    target_category: str
    check: RuleCheck
    default_params: dict[str, Any] = field(default_factory=dict)
    description_en: str = ""
    description_zh: str = ""


# --- the checks (source specs, target specs, params) -----------------------------------------


def required_psu_watts(gpu: GpuSpecs, params: Mapping[str, Any]) -> tuple[int, int]:
    """(needed watts, formula watts): max(maker's recommendation, (board + system) × headroom)."""
    base = int(params.get("base_system_w", 250))
    headroom = float(params.get("headroom", 1.3))
    step = int(params.get("round_to_w", 50))
    raw = (gpu.board_power_w + base) * headroom
    # round() first: (250 + 250) * 1.3 is 650.0000000000001 in binary floating point.
    formula = math.ceil(round(raw / step, 6)) * step
    return max(gpu.recommended_psu_w, formula), formula


def _psu_for_gpu(gpu: GpuSpecs, psu: PsuSpecs, params: Mapping[str, Any]) -> RuleOutcome:
    needed, formula = required_psu_watts(gpu, params)
    base = int(params.get("base_system_w", 250))
    headroom = float(params.get("headroom", 1.3))
    why_en = (
        f"{gpu.board_power_w} W card + {base} W rest of system, ×{headroom:g} headroom → "
        f"{formula} W; maker recommends {gpu.recommended_psu_w} W"
    )
    why_zh = (
        f"显卡 {gpu.board_power_w} W + 其余系统 {base} W，×{headroom:g} 余量 → {formula} W；"
        f"厂商建议 {gpu.recommended_psu_w} W"
    )
    need_16 = sum(1 for c in gpu.power_connectors if c == "12V-2x6")
    need_8 = sum(1 for c in gpu.power_connectors if c in ("pcie_8pin", "pcie_6pin"))
    have_16 = psu.connectors.get("12V-2x6", 0)
    have_8 = psu.connectors.get("pcie_8pin", 0)
    problems_en: list[str] = []
    problems_zh: list[str] = []
    if psu.wattage_w < needed:
        problems_en.append(f"{psu.wattage_w} W is below the {needed} W needed ({why_en})")
        problems_zh.append(f"{psu.wattage_w} W 低于所需的 {needed} W（{why_zh}）")
    if have_16 < need_16:
        problems_en.append(
            f"the card needs {need_16}× native 12V-2x6 (16-pin) but the PSU has {have_16}"
        )
        problems_zh.append(
            f"显卡需要 {need_16} 个原生 12V-2x6（16-pin）接口，电源只有 {have_16} 个"
        )
    if have_8 < need_8:
        problems_en.append(f"the card needs {need_8}× PCIe 8-pin but the PSU has {have_8}")
        problems_zh.append(f"显卡需要 {need_8} 个 PCIe 8-pin 接口，电源只有 {have_8} 个")
    if problems_en:
        return RuleOutcome(False, "; ".join(problems_en), "；".join(problems_zh))
    plugs_en = _connector_text_en(need_16, need_8)
    plugs_zh = _connector_text_zh(need_16, need_8)
    return RuleOutcome(
        True,
        f"{psu.wattage_w} W ≥ {needed} W needed ({why_en}); native {plugs_en}",
        f"{psu.wattage_w} W ≥ 所需 {needed} W（{why_zh}）；原生{plugs_zh}",
    )


def _connector_text_en(n16: int, n8: int) -> str:
    parts = []
    if n16:
        parts.append(f"{n16}× 12V-2x6")
    if n8:
        parts.append(f"{n8}× PCIe 8-pin")
    return " + ".join(parts) if parts else "slot power only (no cable needed)"


def _connector_text_zh(n16: int, n8: int) -> str:
    parts = []
    if n16:
        parts.append(f" {n16} 个 12V-2x6")
    if n8:
        parts.append(f" {n8} 个 PCIe 8-pin")
    return " + ".join(parts) + " 接口" if parts else "无需供电线（插槽供电）"


def _case_for_gpu(gpu: GpuSpecs, case: CaseSpecs, params: Mapping[str, Any]) -> RuleOutcome:
    margin = int(params.get("margin_mm", 10))
    needed = gpu.length_mm + margin
    if case.max_gpu_length_mm >= needed:
        return RuleOutcome(
            True,
            f"the case takes cards up to {case.max_gpu_length_mm} mm ≥ {gpu.length_mm} mm card "
            f"+ {margin} mm margin",
            f"机箱显卡限长 {case.max_gpu_length_mm} mm ≥ "
            f"显卡长 {gpu.length_mm} mm + {margin} mm 余量",
        )
    return RuleOutcome(
        False,
        f"the case takes cards up to {case.max_gpu_length_mm} mm, the card needs {needed} mm "
        f"({gpu.length_mm} mm + {margin} mm margin)",
        f"机箱显卡限长 {case.max_gpu_length_mm} mm，显卡需要 {needed} mm"
        f"（{gpu.length_mm} mm + {margin} mm 余量）",
    )


def _cooler_for_cpu(cpu: CpuSpecs, cooler: CoolerSpecs, params: Mapping[str, Any]) -> RuleOutcome:
    problems_en: list[str] = []
    problems_zh: list[str] = []
    if cpu.socket not in cooler.sockets:
        problems_en.append(
            f"the cooler does not mount on {cpu.socket} (supports {', '.join(cooler.sockets)})"
        )
        problems_zh.append(f"散热器不支持 {cpu.socket} 插槽（支持 {'、'.join(cooler.sockets)}）")
    if cooler.tdp_rating_w < cpu.tdp_w:
        problems_en.append(f"rated for {cooler.tdp_rating_w} W, below the CPU's {cpu.tdp_w} W TDP")
        problems_zh.append(f"散热能力 {cooler.tdp_rating_w} W 低于处理器 TDP {cpu.tdp_w} W")
    if problems_en:
        return RuleOutcome(False, "; ".join(problems_en), "；".join(problems_zh))
    return RuleOutcome(
        True,
        f"mounts on {cpu.socket}; rated {cooler.tdp_rating_w} W ≥ {cpu.tdp_w} W TDP",
        f"支持 {cpu.socket} 插槽；散热能力 {cooler.tdp_rating_w} W ≥ TDP {cpu.tdp_w} W",
    )


def _motherboard_for_cpu(
    cpu: CpuSpecs, board: MotherboardSpecs, params: Mapping[str, Any]
) -> RuleOutcome:
    if cpu.socket != board.socket:
        return RuleOutcome(
            False,
            f"socket mismatch: the CPU is {cpu.socket}, the board is {board.socket}",
            f"插槽不匹配：处理器为 {cpu.socket}，主板为 {board.socket}",
        )
    if board.ram_type not in cpu.ram_types:
        return RuleOutcome(
            False,
            f"the board takes {board.ram_type}, the CPU supports {'/'.join(cpu.ram_types)}",
            f"主板使用 {board.ram_type} 内存，处理器支持 {'/'.join(cpu.ram_types)}",
        )
    return RuleOutcome(
        True,
        f"same socket {cpu.socket} ({board.chipset}, {board.ram_type})",
        f"插槽相同 {cpu.socket}（{board.chipset}，{board.ram_type}）",
    )


def _ram_for_motherboard(
    board: MotherboardSpecs, ram: RamSpecs, params: Mapping[str, Any]
) -> RuleOutcome:
    if board.ram_type != ram.type:
        return RuleOutcome(
            False,
            f"the board takes {board.ram_type}, this kit is {ram.type} (not interchangeable)",
            f"主板使用 {board.ram_type}，这套内存是 {ram.type}（不能混用）",
        )
    return RuleOutcome(
        True,
        f"{ram.type} matches the board's memory type",
        f"{ram.type} 与主板内存类型一致",
    )


def _case_for_motherboard(
    board: MotherboardSpecs, case: CaseSpecs, params: Mapping[str, Any]
) -> RuleOutcome:
    if board.form_factor in case.form_factors:
        return RuleOutcome(
            True,
            f"the case supports {board.form_factor} boards",
            f"机箱支持 {board.form_factor} 主板",
        )
    return RuleOutcome(
        False,
        f"the case takes {', '.join(case.form_factors)} boards, not {board.form_factor}",
        f"机箱支持 {'、'.join(case.form_factors)} 主板，不支持 {board.form_factor}",
    )


def _cooler_for_case(
    case: CaseSpecs, cooler: CoolerSpecs, params: Mapping[str, Any]
) -> RuleOutcome:
    if cooler.type == "air":
        height = cooler.height_mm or 0
        if height <= case.max_cooler_height_mm:
            return RuleOutcome(
                True,
                f"{height} mm tall ≤ {case.max_cooler_height_mm} mm cooler clearance",
                f"高度 {height} mm ≤ 机箱散热器限高 {case.max_cooler_height_mm} mm",
            )
        return RuleOutcome(
            False,
            f"{height} mm tall, the case allows {case.max_cooler_height_mm} mm",
            f"散热器高 {height} mm，机箱限高 {case.max_cooler_height_mm} mm",
        )
    radiator = cooler.radiator_mm
    supported = "/".join(str(r) for r in case.radiator_support_mm) or "none"
    if radiator in case.radiator_support_mm:
        return RuleOutcome(
            True,
            f"the case mounts a {radiator} mm radiator (supports {supported} mm)",
            f"机箱支持 {radiator} mm 冷排（支持 {supported} mm）",
        )
    return RuleOutcome(
        False,
        f"the case does not mount a {radiator} mm radiator (supports {supported} mm)",
        f"机箱不支持 {radiator} mm 冷排（支持 {supported} mm）",
    )


def _psu_for_case(case: CaseSpecs, psu: PsuSpecs, params: Mapping[str, Any]) -> RuleOutcome:
    fits = psu.form_factor == case.psu_form_factor or (
        bool(params.get("sfx_fits_atx_case", False))
        and psu.form_factor == "SFX"
        and case.psu_form_factor == "ATX"
    )
    if fits:
        return RuleOutcome(
            True,
            f"{psu.form_factor} power supply fits the case's {case.psu_form_factor} bay",
            f"{psu.form_factor} 电源适配机箱的 {case.psu_form_factor} 电源位",
        )
    return RuleOutcome(
        False,
        f"the case takes an {case.psu_form_factor} power supply, this one is {psu.form_factor}",
        f"机箱使用 {case.psu_form_factor} 电源，这款是 {psu.form_factor}",
    )


DEFAULT_RULES: tuple[RuleDefinition, ...] = (
    RuleDefinition(
        "psu_for_gpu",
        "gpu",
        "psu",
        _psu_for_gpu,
        {"base_system_w": 250, "headroom": 1.3, "round_to_w": 50},
        "PSU wattage ≥ max(card maker's recommendation, (board power + 250 W) × 1.3 rounded up "
        "to 50 W), and the PSU has the card's power connectors natively (12V-2x6 / PCIe 8-pin).",
        "电源功率 ≥ max(厂商建议功率，(显卡功耗 + 250 W) × 1.3 向上取整到 50 W)，"
        "并且电源原生提供显卡所需的供电接口（12V-2x6 / PCIe 8-pin）。",
    ),
    RuleDefinition(
        "case_for_gpu",
        "gpu",
        "case",
        _case_for_gpu,
        {"margin_mm": 10},
        "Case maximum GPU length ≥ card length + 10 mm.",
        "机箱显卡限长 ≥ 显卡长度 + 10 mm。",
    ),
    RuleDefinition(
        "cooler_for_cpu",
        "cpu",
        "cooler",
        _cooler_for_cpu,
        {},
        "The cooler supports the CPU socket and is rated for at least the CPU's TDP.",
        "散热器支持处理器插槽，且散热能力不低于处理器 TDP。",
    ),
    RuleDefinition(
        "motherboard_for_cpu",
        "cpu",
        "motherboard",
        _motherboard_for_cpu,
        {},
        "The motherboard has the CPU's socket (and a memory type the CPU supports).",
        "主板插槽与处理器一致（且内存类型为处理器所支持）。",
    ),
    RuleDefinition(
        "ram_for_motherboard",
        "motherboard",
        "ram",
        _ram_for_motherboard,
        {},
        "The memory kit is the board's memory type (DDR4 and DDR5 are not interchangeable).",
        "内存类型与主板一致（DDR4 与 DDR5 不能混用）。",
    ),
    RuleDefinition(
        "case_for_motherboard",
        "motherboard",
        "case",
        _case_for_motherboard,
        {},
        "The case supports the motherboard's form factor.",
        "机箱支持主板的板型。",
    ),
    RuleDefinition(
        "cooler_for_case",
        "case",
        "cooler",
        _cooler_for_case,
        {},
        "Air cooler height ≤ the case's cooler clearance; AIO radiator size supported by the case.",
        "风冷高度 ≤ 机箱散热器限高；水冷冷排尺寸为机箱所支持。",
    ),
    RuleDefinition(
        "psu_for_case",
        "case",
        "psu",
        _psu_for_case,
        {"sfx_fits_atx_case": False},
        "The power supply's form factor matches the case's PSU bay (ATX / SFX).",
        "电源规格与机箱电源位一致（ATX / SFX）。",
    ),
)
RULES_BY_NAME: dict[str, RuleDefinition] = {r.name: r for r in DEFAULT_RULES}


def evaluate(
    rule_name: str,
    source_specs: Mapping[str, Any] | SpecModel,
    target_specs: Mapping[str, Any] | SpecModel,
    params: Mapping[str, Any] | None = None,
) -> RuleOutcome:
    """Evaluate one rule on a (source, target) pair of specs, with default params filled in."""
    rule = RULES_BY_NAME[rule_name]
    merged = {**rule.default_params, **(params or {})}
    try:
        source = _as_model(rule.source_category, source_specs)
        target = _as_model(rule.target_category, target_specs)
    except ValidationFailed as exc:
        return RuleOutcome(False, f"specs incomplete: {exc}", f"规格信息不完整：{exc}")
    return rule.check(source, target, merged)


def _as_model(category: str, specs: Mapping[str, Any] | SpecModel) -> SpecModel:
    if isinstance(specs, SpecModel):
        return specs
    return parse_specs(category, dict(specs))


# --- rows -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ActiveRule:
    """A rule as configured: its definition and the effective parameters."""

    definition: RuleDefinition
    params: dict[str, Any]

    @property
    def name(self) -> str:
        return self.definition.name


async def seed_default_rules(session: AsyncSession) -> int:
    """Insert the default rules that are not in the table yet; returns how many were added."""
    existing = {
        (r.rule, r.source_category, r.target_category)
        for r in (await session.scalars(select(CompatibilityRule))).all()
    }
    added = 0
    for rule in DEFAULT_RULES:
        if (rule.name, rule.source_category, rule.target_category) in existing:
            continue
        session.add(
            CompatibilityRule(
                source_category=rule.source_category,
                target_category=rule.target_category,
                rule=rule.name,
                params=dict(rule.default_params),
                description_en=rule.description_en,
                description_zh=rule.description_zh,
                active=True,
            )
        )
        added += 1
    await session.flush()
    return added


def default_rule_rows() -> list[dict[str, Any]]:
    """The default rules as plain rows (for bulk loaders such as the demo seeder)."""
    return [
        {
            "source_category": r.source_category,
            "target_category": r.target_category,
            "rule": r.name,
            "params": dict(r.default_params),
            "description_en": r.description_en,
            "description_zh": r.description_zh,
            "active": True,
        }
        for r in DEFAULT_RULES
    ]


# --- service ----------------------------------------------------------------------------------


class CompatibilityService:
    """Which products fit a given product, and whether two products fit together."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def active_rules(self) -> list[ActiveRule]:
        """The active configured rules; an empty rule table means the defaults apply."""
        rows = (await self.session.scalars(select(CompatibilityRule))).all()
        if not rows:
            return [ActiveRule(r, dict(r.default_params)) for r in DEFAULT_RULES]
        rules: list[ActiveRule] = []
        for row in rows:
            if not row.active:
                continue
            definition = RULES_BY_NAME.get(row.rule)
            if definition is None:
                log.warning("compatibility rule %r (id %s) is unknown; skipped", row.rule, row.id)
                continue
            if (row.source_category, row.target_category) != (
                definition.source_category,
                definition.target_category,
            ):
                log.warning(
                    "compatibility rule %r (id %s) is configured for %s→%s, expected %s→%s; "
                    "skipped",
                    row.rule,
                    row.id,
                    row.source_category,
                    row.target_category,
                    definition.source_category,
                    definition.target_category,
                )
                continue
            rules.append(
                ActiveRule(definition, {**definition.default_params, **(row.params or {})})
            )
        return rules

    async def related_categories(self, category: str) -> list[str]:
        """Categories that have at least one active rule with `category` (either direction)."""
        key = _category(category)
        related: set[str] = set()
        for rule in await self.active_rules():
            d = rule.definition
            if d.source_category == key:
                related.add(d.target_category)
            elif d.target_category == key:
                related.add(d.source_category)
        return [c for c in CATEGORY_KEYS if c in related]

    async def compatible(
        self, product_sku: str, target_category: str, limit: int = 10
    ) -> list[CompatibleProduct]:
        """Active products of `target_category` that fit the product, cheapest first.

        Raises NotFound for an unknown SKU and ValidationFailed when no active rule relates the
        two categories (so "no rule" is never mistaken for "nothing fits").
        """
        anchor = await self._product(product_sku)
        target = _category(target_category)
        rules = self._between(await self.active_rules(), anchor.category, target)
        if not rules:
            raise ValidationFailed(
                f"no active compatibility rule between {anchor.category} and {target}"
            )
        candidates = (
            await self.session.scalars(
                select(Product)
                .where(Product.category == target, Product.active.is_(True))
                .order_by(Product.price, Product.sku)
            )
        ).all()
        anchor_model = _safe_model(anchor)
        if anchor_model is None:
            raise ValidationFailed(f"{anchor.sku} has incomplete {anchor.category} specs")
        result: list[CompatibleProduct] = []
        for candidate in candidates:
            model = _safe_model(candidate)
            if model is None:
                continue
            outcomes = _run(rules, anchor.category, anchor_model, model)
            if all(o.ok for o in outcomes):
                result.append(
                    CompatibleProduct(
                        product=ProductDTO.model_validate(candidate),
                        explanation_en="; ".join(o.en for o in outcomes),
                        explanation_zh="；".join(o.zh for o in outcomes),
                    )
                )
                if len(result) >= limit:
                    break
        return result

    async def check(self, sku_a: str, sku_b: str) -> CompatibilityResult:
        """Do the two products fit together? `ok` with one reason per rule in zh and en.

        Two products without any rule between their categories are `ok` (nothing known
        against it) with `rules` empty.
        """
        a = await self._product(sku_a)
        b = await self._product(sku_b)
        rules = self._between(await self.active_rules(), a.category, b.category)
        if not rules:
            return CompatibilityResult(
                ok=True,
                reasons_en=[f"no compatibility rule between {a.category} and {b.category}"],
                reasons_zh=[f"{a.category} 与 {b.category} 之间没有兼容性规则"],
                rules=[],
            )
        a_model, b_model = _safe_model(a), _safe_model(b)
        if a_model is None or b_model is None:
            bad = a if a_model is None else b
            return CompatibilityResult(
                ok=False,
                reasons_en=[f"{bad.sku} has incomplete {bad.category} specs"],
                reasons_zh=[f"{bad.sku} 的{bad.category}规格信息不完整"],
                rules=[r.name for r in rules],
            )
        outcomes = _run(rules, a.category, a_model, b_model)
        return CompatibilityResult(
            ok=all(o.ok for o in outcomes),
            reasons_en=[o.en for o in outcomes],
            reasons_zh=[o.zh for o in outcomes],
            rules=[r.name for r in rules],
        )

    async def _product(self, sku: str) -> Product:
        product = await self.session.scalar(
            select(Product).where(Product.sku == sku.strip().upper())
        )
        if product is None:
            raise NotFound(f"no product with SKU {sku!r}")
        return product

    @staticmethod
    def _between(rules: Sequence[ActiveRule], cat_a: str, cat_b: str) -> list[ActiveRule]:
        return [
            r
            for r in rules
            if {r.definition.source_category, r.definition.target_category} == {cat_a, cat_b}
            and cat_a != cat_b
        ]


def _category(value: str) -> str:
    key = canonical_category(value)
    if key is None:
        raise ValidationFailed(
            f"unknown product category {value!r}; use one of {', '.join(CATEGORY_KEYS)}"
        )
    return key


def _safe_model(product: Product) -> SpecModel | None:
    try:
        return parse_specs(product.category, product.specs or {})
    except ValidationFailed:
        log.warning("product %s has invalid %s specs", product.sku, product.category)
        return None


def _run(
    rules: Sequence[ActiveRule], anchor_category: str, anchor: SpecModel, other: SpecModel
) -> list[RuleOutcome]:
    outcomes = []
    for rule in rules:
        d = rule.definition
        source, target = (
            (anchor, other) if d.source_category == anchor_category else (other, anchor)
        )
        outcomes.append(d.check(cast(Any, source), cast(Any, target), rule.params))
    return outcomes
