"""Catalog DTOs and the structured product specs, one pydantic model per category.

Specs are stored as JSON on `Product.specs`; every write goes through `validate_specs`, so the
compatibility rules (crm_core.catalog.compatibility) can rely on the keys and units below.
Unknown keys are rejected (a typo such as `board_power` instead of `board_power_w` would
otherwise silently disable a compatibility rule).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)

from crm_core.catalog.categories import CATEGORY_KEYS, canonical_category
from crm_core.errors import ValidationFailed

# --- shared value types -------------------------------------------------------------------

RamType = Literal["DDR4", "DDR5"]
MotherboardFormFactor = Literal["E-ATX", "ATX", "Micro-ATX", "Mini-ITX"]
PsuFormFactor = Literal["ATX", "SFX"]
GpuPowerConnector = Literal["12V-2x6", "pcie_8pin", "pcie_6pin"]
PsuConnectorKey = Literal["12V-2x6", "pcie_8pin", "eps_8pin", "sata"]
PSU_CONNECTOR_KEYS: tuple[str, ...] = ("12V-2x6", "pcie_8pin", "eps_8pin", "sata")

_FORM_FACTOR_ALIASES = {
    "eatx": "E-ATX",
    "e-atx": "E-ATX",
    "atx": "ATX",
    "matx": "Micro-ATX",
    "m-atx": "Micro-ATX",
    "microatx": "Micro-ATX",
    "micro-atx": "Micro-ATX",
    "micro atx": "Micro-ATX",
    "itx": "Mini-ITX",
    "mini-itx": "Mini-ITX",
    "miniitx": "Mini-ITX",
    "mini itx": "Mini-ITX",
}
# 12VHPWR (ATX 3.0) and 12V-2x6 (ATX 3.1) are the same 16-pin plug family; we store one name.
_CONNECTOR_ALIASES = {
    "12v-2x6": "12V-2x6",
    "12vhpwr": "12V-2x6",
    "16pin": "12V-2x6",
    "16-pin": "12V-2x6",
    "pcie_8pin": "pcie_8pin",
    "pcie8pin": "pcie_8pin",
    "8pin": "pcie_8pin",
    "8-pin": "pcie_8pin",
    "pcie_6pin": "pcie_6pin",
    "6pin": "pcie_6pin",
    "6-pin": "pcie_6pin",
    "eps_8pin": "eps_8pin",
    "eps": "eps_8pin",
    "sata": "sata",
}


def _norm_form_factor(value: Any) -> Any:
    if isinstance(value, str):
        return _FORM_FACTOR_ALIASES.get(value.strip().lower(), value.strip())
    return value


def _norm_socket(value: Any) -> Any:
    # "lga 1700" / "Lga1700" / "am5" -> "LGA1700" / "AM5"
    if isinstance(value, str):
        return re.sub(r"[\s_-]+", "", value).upper()
    return value


def _norm_connector(value: Any) -> Any:
    if isinstance(value, str):
        return _CONNECTOR_ALIASES.get(value.strip().lower(), value.strip())
    return value


def _norm_upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


Socket = Annotated[str, BeforeValidator(_norm_socket), Field(pattern=r"^[A-Z0-9]{2,12}$")]
FormFactor = Annotated[MotherboardFormFactor, BeforeValidator(_norm_form_factor)]
PsuFF = Annotated[PsuFormFactor, BeforeValidator(_norm_upper)]
Ram = Annotated[RamType, BeforeValidator(_norm_upper)]
Connector = Annotated[GpuPowerConnector, BeforeValidator(_norm_connector)]


class SpecModel(BaseModel):
    """Base of every spec model: unknown keys are an error, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --- one spec model per category ------------------------------------------------------------


class GpuSpecs(SpecModel):
    """Graphics card. Power connectors are listed once per plug on the card."""

    board_power_w: int = Field(ge=30, le=1200, description="Total board power (TBP/TGP), W")
    length_mm: int = Field(ge=100, le=450)
    slots: float = Field(ge=1, le=5, description="Thickness in expansion slots (2.5, 3.5, ...)")
    power_connectors: list[Connector] = Field(
        default_factory=list, description='e.g. ["12V-2x6"] or ["pcie_8pin", "pcie_8pin"]'
    )
    vram_gb: PositiveInt
    recommended_psu_w: int = Field(ge=200, le=3000)
    chip: str | None = Field(default=None, description="GPU chip, e.g. 'GeForce RTX 4090'")


class PsuSpecs(SpecModel):
    """Power supply. `connectors` counts the native plugs (adapters do not count)."""

    wattage_w: int = Field(ge=150, le=3000)
    form_factor: PsuFF
    connectors: dict[PsuConnectorKey, NonNegativeInt]
    efficiency: Literal["standard", "bronze", "silver", "gold", "platinum", "titanium"]
    atx_version: str = Field(pattern=r"^[23]\.\d{1,2}$", description="ATX spec, e.g. '3.1'")
    modular: Literal["full", "semi", "none"] | None = None

    @field_validator("connectors", mode="before")
    @classmethod
    def _connector_names(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {_norm_connector(k): v for k, v in value.items()}
        return value

    @field_validator("connectors")
    @classmethod
    def _all_connector_keys(cls, value: dict[str, int]) -> dict[str, int]:
        # Store every key (0 when absent) so stored specs have one shape.
        return {key: int(value.get(key, 0)) for key in PSU_CONNECTOR_KEYS}


class MotherboardSpecs(SpecModel):
    socket: Socket
    chipset: str = Field(min_length=2, max_length=16)
    form_factor: FormFactor
    ram_type: Ram
    m2_slots: NonNegativeInt
    max_ram_gb: PositiveInt
    wifi: bool


class CpuSpecs(SpecModel):
    socket: Socket
    tdp_w: int = Field(ge=5, le=500, description="Rated TDP / base power, W")
    cores: PositiveInt
    threads: PositiveInt
    ram_types: list[Ram] = Field(min_length=1)
    has_igpu: bool

    @model_validator(mode="after")
    def _threads_at_least_cores(self) -> CpuSpecs:
        if self.threads < self.cores:
            raise ValueError("threads must be at least cores")
        return self


class RamSpecs(SpecModel):
    """A memory kit: `capacity_gb` is the kit total, split over `modules` sticks."""

    type: Ram
    speed_mts: int = Field(ge=800, le=12000)
    capacity_gb: PositiveInt
    modules: int = Field(ge=1, le=8)
    profile: Literal["XMP", "EXPO", "none"]


class CoolerSpecs(SpecModel):
    """CPU cooler: `height_mm` for air coolers, `radiator_mm` for AIO liquid coolers."""

    type: Literal["air", "aio"]
    sockets: list[Socket] = Field(min_length=1)
    tdp_rating_w: int = Field(ge=20, le=500)
    height_mm: int | None = Field(default=None, ge=20, le=200)
    radiator_mm: Literal[120, 140, 240, 280, 360, 420] | None = None

    @model_validator(mode="after")
    def _size_for_type(self) -> CoolerSpecs:
        if self.type == "air" and self.height_mm is None:
            raise ValueError("height_mm is required for an air cooler")
        if self.type == "aio" and self.radiator_mm is None:
            raise ValueError("radiator_mm is required for an AIO cooler")
        return self


class CaseSpecs(SpecModel):
    form_factors: list[FormFactor] = Field(min_length=1, description="Motherboards that fit")
    max_gpu_length_mm: int = Field(ge=150, le=600)
    max_cooler_height_mm: int = Field(ge=20, le=250)
    radiator_support_mm: list[Literal[120, 140, 240, 280, 360, 420]] = Field(default_factory=list)
    psu_form_factor: PsuFF


class SsdSpecs(SpecModel):
    interface: Literal["PCIe 3.0 x4", "PCIe 4.0 x4", "PCIe 5.0 x4", "SATA III"]
    form_factor: Literal["M.2 2280", "M.2 2230", "M.2 2242", '2.5"']
    capacity_gb: PositiveInt
    tbw: PositiveInt = Field(description="Rated endurance, terabytes written")


class HddSpecs(SpecModel):
    capacity_gb: PositiveInt
    rpm: int = Field(ge=4200, le=15000)
    interface: Literal["SATA III", "SAS"]
    form_factor: Literal['3.5"', '2.5"'] = '3.5"'


class MonitorSpecs(SpecModel):
    size_in: float = Field(ge=10, le=100)
    resolution: str = Field(pattern=r"^\d{3,5}x\d{3,5}$", description="e.g. '2560x1440'")
    refresh_hz: int = Field(ge=30, le=1000)
    panel: Literal["IPS", "VA", "TN", "OLED", "Mini-LED"]
    inputs: list[str] = Field(min_length=1, description="e.g. ['HDMI 2.1', 'DP 1.4', 'USB-C']")


class LaptopSpecs(SpecModel):
    cpu: str
    gpu: str | None = None
    ram_gb: PositiveInt
    storage_gb: PositiveInt
    screen_in: float = Field(ge=10, le=20)
    resolution: str = Field(pattern=r"^\d{3,5}x\d{3,5}$")
    refresh_hz: int = Field(ge=30, le=500)
    weight_kg: float = Field(gt=0, le=6)


Connection = Literal["wired", "2.4GHz", "bluetooth", "3.5mm", "USB"]


class KeyboardSpecs(SpecModel):
    layout: Literal["full", "tkl", "75%", "65%", "60%"]
    switches: str = Field(description="e.g. 'Gateron Brown', 'optical', 'membrane'")
    connection: list[Connection] = Field(min_length=1)
    hot_swap: bool = False


class MouseSpecs(SpecModel):
    dpi: int = Field(ge=400, le=50000)
    weight_g: int = Field(ge=20, le=200)
    connection: list[Connection] = Field(min_length=1)
    buttons: int = Field(ge=2, le=20)


class HeadsetSpecs(SpecModel):
    connection: list[Connection] = Field(min_length=1)
    microphone: bool = True
    surround: bool = False
    anc: bool = False


class RouterSpecs(SpecModel):
    wifi_standard: Literal["Wi-Fi 5", "Wi-Fi 6", "Wi-Fi 6E", "Wi-Fi 7"]
    bands: list[Literal["2.4GHz", "5GHz", "6GHz"]] = Field(min_length=1)
    max_speed_mbps: PositiveInt
    lan_ports: NonNegativeInt
    mesh: bool = False


class UpsSpecs(SpecModel):
    va: int = Field(ge=200, le=20000)
    watts: int = Field(ge=100, le=20000)
    runtime_min_half_load: float = Field(gt=0, le=600)
    topology: Literal["offline", "line-interactive", "online"] = "line-interactive"

    @model_validator(mode="after")
    def _watts_not_above_va(self) -> UpsSpecs:
        if self.watts > self.va:
            raise ValueError("watts cannot exceed va")
        return self


SPEC_MODELS: dict[str, type[SpecModel]] = {
    "gpu": GpuSpecs,
    "cpu": CpuSpecs,
    "motherboard": MotherboardSpecs,
    "ram": RamSpecs,
    "ssd": SsdSpecs,
    "hdd": HddSpecs,
    "psu": PsuSpecs,
    "cooler": CoolerSpecs,
    "case": CaseSpecs,
    "monitor": MonitorSpecs,
    "laptop": LaptopSpecs,
    "keyboard": KeyboardSpecs,
    "mouse": MouseSpecs,
    "headset": HeadsetSpecs,
    "router": RouterSpecs,
    "ups": UpsSpecs,
}
assert set(SPEC_MODELS) == set(CATEGORY_KEYS), "one spec model per product category"


def describe_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """One readable line per problem, each naming the field (`specs.board_power_w: ...`)."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        where = f"{prefix}{loc}" if loc else prefix.rstrip(".") or "value"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def validate_specs(category: str, specs: dict[str, Any]) -> dict[str, Any]:
    """Validate `specs` for `category` and return them normalised (JSON-ready).

    Raises ValidationFailed naming the bad field, e.g. ``specs.board_power_w: Field required``.
    """
    key = canonical_category(category)
    if key is None:
        raise ValidationFailed(
            f"unknown product category {category!r}; use one of {', '.join(CATEGORY_KEYS)}"
        )
    try:
        model = SPEC_MODELS[key].model_validate(specs)
    except ValidationError as exc:
        raise ValidationFailed(
            f"invalid {key} specs: {describe_validation_error(exc, 'specs.')}"
        ) from None
    return model.model_dump(mode="json", exclude_none=True)


def parse_specs(category: str, specs: dict[str, Any]) -> SpecModel:
    """The typed spec model of a stored product (ValidationFailed when they are incomplete)."""
    try:
        return SPEC_MODELS[category].model_validate(specs)
    except (ValidationError, KeyError) as exc:
        raise ValidationFailed(f"invalid {category} specs: {exc}") from None


# --- DTOs ------------------------------------------------------------------------------------


class ProductDTO(BaseModel):
    """A product as services return it to the bot, the console and the CLI."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    sku: str
    name_en: str
    name_zh: str
    category: str
    brand: str
    price: Decimal
    currency: str
    warranty_months: int
    specs: dict[str, Any]
    active: bool
    stock_qty: int | None = None
    """Units on hand; None when the catalog does not track stock (then it counts as available)."""

    @property
    def in_stock(self) -> bool:
        """Available to sell now: stock not tracked, or at least one unit on hand."""
        return self.stock_qty is None or self.stock_qty > 0

    def name(self, language: str) -> str:
        """The product name in `language` ("zh" or "en")."""
        return self.name_zh if language == "zh" else self.name_en


class ProductUpsert(BaseModel):
    """Input for creating or updating a product (matched by SKU)."""

    model_config = ConfigDict(str_strip_whitespace=True)

    sku: str = Field(pattern=r"^[A-Z0-9][A-Z0-9._-]{1,63}$", description="Upper-case SKU")
    name_en: str = Field(min_length=1, max_length=200)
    name_zh: str = Field(min_length=1, max_length=200)
    category: str
    brand: str = Field(min_length=1, max_length=64)
    price: Decimal = Field(ge=0, max_digits=12, decimal_places=2)
    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$")
    warranty_months: int | None = Field(
        default=None, ge=0, le=240, description="Default: the policy length for the category"
    )
    specs: dict[str, Any] = Field(default_factory=dict)
    active: bool = True
    stock_qty: int | None = Field(
        default=None, ge=0, description="Units on hand; omitted keeps the stored value"
    )

    @field_validator("sku", mode="before")
    @classmethod
    def _upper_sku(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("category")
    @classmethod
    def _known_category(cls, value: str) -> str:
        key = canonical_category(value)
        if key is None:
            raise ValueError(f"unknown category; use one of {', '.join(CATEGORY_KEYS)}")
        return key


class CompatibilityRuleDTO(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    source_category: str
    target_category: str
    rule: str
    params: dict[str, Any]
    description_en: str
    description_zh: str
    active: bool


class CompatibleProduct(BaseModel):
    """A product that fits, with why (one sentence per rule) in both languages."""

    product: ProductDTO
    explanation_en: str
    explanation_zh: str

    def explanation(self, language: str) -> str:
        return self.explanation_zh if language == "zh" else self.explanation_en


class CompatibilityResult(BaseModel):
    """The verdict on two products: `ok` and the reasons (one per rule checked)."""

    ok: bool
    reasons_en: list[str] = Field(default_factory=list)
    reasons_zh: list[str] = Field(default_factory=list)
    rules: list[str] = Field(default_factory=list, description="Names of the rules evaluated")

    def reasons(self, language: str) -> list[str]:
        return self.reasons_zh if language == "zh" else self.reasons_en


# --- accessories (crm_core.catalog.accessories) -----------------------------------------------


class AccessorySuggestion(BaseModel):
    """An accessory that fits the device: every rule passed, with one reason per rule."""

    product: ProductDTO
    device_sku: str
    rules: list[str] = Field(default_factory=list, description="Rules checked, in order")
    reasons_en: list[str] = Field(default_factory=list)
    reasons_zh: list[str] = Field(default_factory=list)
    score: float | None = Field(default=None, description="The caller's rank_by score, if any")

    @property
    def price(self) -> Decimal:
        return self.product.price

    @property
    def currency(self) -> str:
        return self.product.currency

    @property
    def stock_qty(self) -> int | None:
        return self.product.stock_qty

    @property
    def in_stock(self) -> bool:
        return self.product.in_stock

    def reasons(self, language: str) -> list[str]:
        return self.reasons_zh if language == "zh" else self.reasons_en

    def reason(self, language: str) -> str:
        """The reasons as one line in `language`."""
        return ("；" if language == "zh" else "; ").join(self.reasons(language))


class AccessoryMiss(BaseModel):
    """A candidate that does not fit, with the checks it failed (for an honest "nothing fits")."""

    product: ProductDTO
    device_sku: str
    failed: int
    problems_en: list[str] = Field(default_factory=list)
    problems_zh: list[str] = Field(default_factory=list)

    def problem(self, language: str) -> str:
        return ("；" if language == "zh" else "; ").join(
            self.problems_zh if language == "zh" else self.problems_en
        )


class AccessoryMatch(BaseModel):
    """The accessories of `category` for `device` within `budget`, and what to offer instead
    when there are none: `nearest` (compatible, over budget) or `closest_misfit`."""

    device: ProductDTO
    category: str
    budget: Decimal | None = None
    suggestions: list[AccessorySuggestion] = Field(default_factory=list)
    compatible_count: int = Field(0, description="Compatible items at any price")
    nearest: AccessorySuggestion | None = None
    closest_misfit: AccessoryMiss | None = None
