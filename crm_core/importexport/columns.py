"""The columns of each file layout, their header aliases (English variants and the Chinese
names Chinese ERPs export) and which of them a file must have. FORMATS.md documents them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from crm_core.importexport.schemas import Entity


@dataclass(frozen=True)
class Column:
    name: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Layout:
    """The columns of one entity's files.

    `required` lists groups: a file must have at least one column of every group (for example
    customers need `name` and one of `phone`/`email`).
    """

    entity: Entity
    columns: tuple[Column, ...]
    required: tuple[tuple[str, ...], ...]
    _lookup: dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for column in self.columns:
            for alias in (column.name, *column.aliases):
                self._lookup[normalize_header(alias)] = column.name

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def resolve(self, header: str) -> str | None:
        """The canonical column for a header as written in a file (any case, zh alias), or None."""
        return self._lookup.get(normalize_header(header))

    def missing(self, present: set[str]) -> list[str]:
        """Required column groups not covered by `present`, as readable names (`phone or email`)."""
        return [" or ".join(group) for group in self.required if not present.intersection(group)]


_SEPARATORS = re.compile(r"[\s\-./]+")
_FULLWIDTH = str.maketrans({"（": "(", "）": ")", "：": ":", "\u3000": " "})


def normalize_header(header: str) -> str:
    """`" E-Mail "` → `e_mail`; `保修期（月）` → `保修期(月)`; a stray BOM is dropped."""
    cleaned = header.replace("\ufeff", "").translate(_FULLWIDTH).strip().lower()
    return _SEPARATORS.sub("_", cleaned).strip("_")


CUSTOMERS = Layout(
    Entity.CUSTOMERS,
    (
        Column(
            "name", ("customer_name", "full_name", "姓名", "客户姓名", "客户名称", "客户", "名称")
        ),
        Column(
            "phone",
            ("mobile", "phone_number", "tel", "手机", "手机号", "手机号码", "电话", "联系电话"),
        ),
        Column("email", ("e_mail", "mail", "邮箱", "电子邮件", "电子邮箱", "邮件")),
        Column("telegram_user_id", ("telegram", "telegram_id", "tg_id", "电报id")),
        Column("language", ("lang", "语言")),
        Column("timezone", ("time_zone", "tz", "时区")),
        Column("customer_type", ("type", "客户类型", "类型")),
        Column("company", ("company_name", "公司", "公司名称", "单位", "单位名称")),
        Column("company_tax_id", ("tax_id", "税号", "纳税人识别号", "统一社会信用代码")),
        Column("tags", ("标签",)),
        Column("marketing_consent", ("consent", "营销同意", "同意营销", "营销许可")),
        Column("consent_source", ("同意来源",)),
        Column("anonymous_id", ("匿名id", "匿名编号")),
    ),
    required=(("name",), ("phone", "email")),
)

PRODUCTS = Layout(
    Entity.PRODUCTS,
    (
        Column("sku", ("商品编码", "物料编码", "货号", "编码", "sku编码")),
        Column("name_en", ("english_name", "英文名称", "英文名")),
        Column("name_zh", ("chinese_name", "中文名称", "中文名", "品名", "商品名称")),
        Column("category", ("类别", "分类", "品类", "类目")),
        Column("brand", ("品牌",)),
        Column("price", ("售价", "价格", "销售价")),
        Column("currency", ("币种", "货币")),
        Column(
            "warranty_months",
            ("warranty", "保修期", "保修月数", "保修期(月)", "质保期", "质保期(月)"),
        ),
        Column("specs", ("规格", "参数", "规格参数")),
        Column("active", ("在售", "启用", "上架")),
    ),
    required=(("sku",), ("name_en",), ("category",), ("brand",), ("price",), ("warranty_months",)),
)

ORDERS = Layout(
    Entity.ORDERS,
    (
        Column("order_number", ("order_no", "订单号", "订单编号", "单号")),
        Column(
            "customer_phone", ("phone", "mobile", "客户手机", "手机", "手机号", "电话", "联系电话")
        ),
        Column("customer_email", ("email", "客户邮箱", "邮箱", "电子邮箱")),
        Column("customer_anonymous_id", ("客户匿名id",)),
        Column("channel", ("销售渠道", "渠道")),
        Column("status", ("订单状态", "状态")),
        Column("placed_at", ("order_date", "下单时间", "下单日期", "订单日期")),
        Column("delivered_at", ("delivery_date", "签收时间", "送达时间", "收货时间", "交付日期")),
        Column("currency", ("币种", "货币")),
        Column("sku", ("商品编码", "物料编码", "货号", "编码")),
        Column("quantity", ("qty", "数量")),
        Column("unit_price", ("price", "单价")),
        Column("serial_numbers", ("serials", "serial_number", "sn", "序列号", "序列号列表")),
    ),
    required=(
        ("order_number",),
        ("customer_phone", "customer_email", "customer_anonymous_id"),
        ("placed_at",),
        ("sku",),
        ("quantity",),
        ("unit_price",),
    ),
)

LAYOUTS: dict[Entity, Layout] = {
    Entity.CUSTOMERS: CUSTOMERS,
    Entity.PRODUCTS: PRODUCTS,
    Entity.ORDERS: ORDERS,
}
