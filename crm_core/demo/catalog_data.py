"""The demo catalog: ~180 products in all 16 categories, bilingual, priced in CNY.

Specs are close to the real products' published figures (board power, length, connectors,
clearances), so that the compatibility rules give the answers a sales person would give.
Warranty lengths follow the policy table (crm_core.catalog.service.policy_warranty_months).
"""

# ruff: noqa: E501  (a data table: one product per line reads best)

from __future__ import annotations

import zlib
from decimal import Decimal
from typing import Any

from crm_core.catalog.service import policy_warranty_months

# fmt: off
ALL4 = ["AM4", "AM5", "LGA1700", "LGA1851"]
P8 = "pcie_8pin"
H16 = "12V-2x6"
ATX3 = ["ATX", "Micro-ATX", "Mini-ITX"]
ATX4 = ["E-ATX", "ATX", "Micro-ATX", "Mini-ITX"]


def _p(
    sku: str, brand: str, en: str, zh: str, price: int, specs: dict[str, Any]
) -> dict[str, Any]:
    return {"sku": sku, "brand": brand, "name_en": en, "name_zh": zh, "price": price, "specs": specs}


def _gpu(
    sku: str,
    brand: str,
    en: str,
    zh: str,
    price: int,
    power: int,
    length: int,
    slots: float,
    plugs: list[str],
    vram: int,
    psu: int,
    chip: str,
) -> dict[str, Any]:
    specs = {
        "board_power_w": power,
        "length_mm": length,
        "slots": slots,
        "power_connectors": plugs,
        "vram_gb": vram,
        "recommended_psu_w": psu,
        "chip": chip,
    }
    return _p(sku, brand, en, zh, price, specs)


GPUS = [
    _gpu("GPU-ASUS-DUAL-4060TI-8G", "ASUS", "ASUS Dual GeForce RTX 4060 Ti 8GB",
         "华硕 DUAL GeForce RTX 4060 Ti 8G 雪豹", 3099, 160, 227, 2.5, [P8], 8, 550,
         "GeForce RTX 4060 Ti"),
    _gpu("GPU-COLORFUL-4060TI-ULTRA", "Colorful", "Colorful iGame GeForce RTX 4060 Ti Ultra W OC 8GB",
         "七彩虹 iGame GeForce RTX 4060 Ti Ultra W OC 8G", 3199, 165, 261, 2.5, [P8], 8, 550,
         "GeForce RTX 4060 Ti"),
    _gpu("GPU-GIGABYTE-5060TI-EAGLE", "Gigabyte", "Gigabyte GeForce RTX 5060 Ti EAGLE OC 16G",
         "技嘉 GeForce RTX 5060 Ti 猎鹰 OC 16G", 3599, 180, 210, 2.0, [P8], 16, 650,
         "GeForce RTX 5060 Ti"),
    _gpu("GPU-MSI-4070-VENTUS2X", "MSI", "MSI GeForce RTX 4070 VENTUS 2X 12G OC",
         "微星 GeForce RTX 4070 万图师 2X 12G OC", 4299, 200, 242, 2.5, [P8], 12, 650,
         "GeForce RTX 4070"),
    _gpu("GPU-GIGABYTE-4070S-WINDFORCE", "Gigabyte", "Gigabyte GeForce RTX 4070 SUPER WINDFORCE OC 12G",
         "技嘉 GeForce RTX 4070 SUPER 风魔 OC 12G", 4699, 220, 261, 2.5, [H16], 12, 750,
         "GeForce RTX 4070 SUPER"),
    _gpu("GPU-ZOTAC-4070S-TWINEDGE", "ZOTAC", "ZOTAC GAMING GeForce RTX 4070 SUPER Twin Edge OC",
         "索泰 GeForce RTX 4070 SUPER Twin Edge OC 12G", 4599, 220, 234, 2.2, [H16], 12, 650,
         "GeForce RTX 4070 SUPER"),
    _gpu("GPU-GALAX-5070-OC", "GALAX", "GALAX GeForce RTX 5070 1-Click OC 12GB",
         "影驰 GeForce RTX 5070 星曜 OC 12G", 4599, 250, 268, 2.5, [H16], 12, 650,
         "GeForce RTX 5070"),
    _gpu("GPU-ASUS-TUF-4070TIS", "ASUS", "ASUS TUF Gaming GeForce RTX 4070 Ti SUPER OC 16GB",
         "华硕 TUF GeForce RTX 4070 Ti SUPER O16G 电竞特工", 6799, 285, 305, 3.25, [H16], 16, 750,
         "GeForce RTX 4070 Ti SUPER"),
    _gpu("GPU-ASUS-PRIME-5070TI", "ASUS", "ASUS Prime GeForce RTX 5070 Ti OC 16GB",
         "华硕 PRIME GeForce RTX 5070 Ti O16G", 6299, 300, 304, 2.5, [H16], 16, 750,
         "GeForce RTX 5070 Ti"),
    _gpu("GPU-MSI-5070TI-GAMINGTRIO", "MSI", "MSI GeForce RTX 5070 Ti 16G GAMING TRIO OC",
         "微星 GeForce RTX 5070 Ti 魔龙 16G OC", 6799, 300, 338, 3.0, [H16], 16, 850,
         "GeForce RTX 5070 Ti"),
    _gpu("GPU-MSI-4080S-GAMINGX", "MSI", "MSI GeForce RTX 4080 SUPER 16G GAMING X SLIM",
         "微星 GeForce RTX 4080 SUPER 魔龙 X SLIM 16G", 8499, 320, 322, 3.0, [H16], 16, 850,
         "GeForce RTX 4080 SUPER"),
    _gpu("GPU-GIGABYTE-5080-GAMING", "Gigabyte", "Gigabyte GeForce RTX 5080 GAMING OC 16G",
         "技嘉 GeForce RTX 5080 魔鹰 OC 16G", 8999, 360, 340, 3.5, [H16], 16, 850,
         "GeForce RTX 5080"),
    _gpu("GPU-MSI-4090-SUPRIMX", "MSI", "MSI GeForce RTX 4090 SUPRIM X 24G",
         "微星 GeForce RTX 4090 超龙 X 24G", 15999, 450, 336, 3.5, [H16], 24, 1000,
         "GeForce RTX 4090"),
    _gpu("GPU-ASUS-ROG-4090", "ASUS", "ASUS ROG Strix GeForce RTX 4090 OC 24GB",
         "华硕 ROG STRIX GeForce RTX 4090 O24G 猛禽", 17999, 450, 358, 3.5, [H16], 24, 1000,
         "GeForce RTX 4090"),
    _gpu("GPU-ZOTAC-5090-SOLID", "ZOTAC", "ZOTAC GAMING GeForce RTX 5090 SOLID OC 32GB",
         "索泰 GeForce RTX 5090 SOLID OC 32G", 19999, 575, 332, 3.5, [H16], 32, 1000,
         "GeForce RTX 5090"),
    _gpu("GPU-COLORFUL-5090-VULCAN", "Colorful", "Colorful iGame GeForce RTX 5090 Vulcan OC 32GB",
         "七彩虹 iGame GeForce RTX 5090 火神 OC 32G", 20999, 575, 360, 3.5, [H16], 32, 1000,
         "GeForce RTX 5090"),
    _gpu("GPU-SAPPHIRE-7600-PULSE", "Sapphire", "Sapphire PULSE Radeon RX 7600 8GB",
         "蓝宝石 Radeon RX 7600 白金版 8G", 1999, 165, 240, 2.0, [P8], 8, 550, "Radeon RX 7600"),
    _gpu("GPU-POWERCOLOR-7700XT-HELLHOUND", "PowerColor", "PowerColor Hellhound Radeon RX 7700 XT 12GB",
         "撼讯 Radeon RX 7700 XT 地狱犬 12G", 3299, 245, 322, 2.5, [P8, P8], 12, 700,
         "Radeon RX 7700 XT"),
    _gpu("GPU-SAPPHIRE-7800XT-NITRO", "Sapphire", "Sapphire NITRO+ Radeon RX 7800 XT 16GB",
         "蓝宝石 Radeon RX 7800 XT 超白金 16G", 3999, 263, 320, 3.0, [P8, P8], 16, 750,
         "Radeon RX 7800 XT"),
    _gpu("GPU-XFX-7900GRE-QICK", "XFX", "XFX Speedster QICK 319 Radeon RX 7900 GRE 16GB",
         "讯景 Radeon RX 7900 GRE 海外版 16G", 4199, 260, 335, 3.0, [P8, P8], 16, 750,
         "Radeon RX 7900 GRE"),
    _gpu("GPU-SAPPHIRE-9070-PULSE", "Sapphire", "Sapphire PULSE Radeon RX 9070 16GB",
         "蓝宝石 Radeon RX 9070 白金版 16G", 4499, 220, 280, 2.5, [P8, P8], 16, 650,
         "Radeon RX 9070"),
    _gpu("GPU-ASUS-TUF-7900XT", "ASUS", "ASUS TUF Gaming Radeon RX 7900 XT OC 20GB",
         "华硕 TUF Radeon RX 7900 XT O20G 电竞特工", 5499, 315, 353, 3.5, [P8, P8, P8], 20, 850,
         "Radeon RX 7900 XT"),
    _gpu("GPU-POWERCOLOR-9070XT-REDDEVIL", "PowerColor", "PowerColor Red Devil Radeon RX 9070 XT 16GB",
         "撼讯 Radeon RX 9070 XT 红魔 16G", 5499, 340, 340, 3.5, [P8, P8, P8], 16, 900,
         "Radeon RX 9070 XT"),
    _gpu("GPU-SAPPHIRE-7900XTX-NITRO", "Sapphire", "Sapphire NITRO+ Radeon RX 7900 XTX Vapor-X 24GB",
         "蓝宝石 Radeon RX 7900 XTX 超白金 24G", 7299, 355, 320, 3.5, [P8, P8, P8], 24, 850,
         "Radeon RX 7900 XTX"),
    _gpu("GPU-ASROCK-B580-STEELLEGEND", "ASRock", "ASRock Intel Arc B580 Steel Legend 12GB",
         "华擎 Intel Arc B580 钢铁传奇 12G", 2099, 190, 272, 2.5, [P8], 12, 600, "Arc B580"),
]


def _cpu(
    sku: str,
    brand: str,
    en: str,
    zh: str,
    price: int,
    socket: str,
    tdp: int,
    cores: int,
    threads: int,
    ram: list[str],
    igpu: bool,
) -> dict[str, Any]:
    specs = {
        "socket": socket,
        "tdp_w": tdp,
        "cores": cores,
        "threads": threads,
        "ram_types": ram,
        "has_igpu": igpu,
    }
    return _p(sku, brand, en, zh, price, specs)


D4, D5, D45 = ["DDR4"], ["DDR5"], ["DDR4", "DDR5"]
CPUS = [
    _cpu("CPU-AMD-R5-5600", "AMD", "AMD Ryzen 5 5600", "AMD 锐龙 5 5600", 699, "AM4", 65, 6, 12, D4, False),
    _cpu("CPU-AMD-R7-5700X3D", "AMD", "AMD Ryzen 7 5700X3D", "AMD 锐龙 7 5700X3D", 1299, "AM4", 105, 8, 16, D4, False),
    _cpu("CPU-AMD-R5-7500F", "AMD", "AMD Ryzen 5 7500F", "AMD 锐龙 5 7500F", 899, "AM5", 65, 6, 12, D5, False),
    _cpu("CPU-AMD-R5-9600X", "AMD", "AMD Ryzen 5 9600X", "AMD 锐龙 5 9600X", 1499, "AM5", 65, 6, 12, D5, True),
    _cpu("CPU-AMD-R7-7800X3D", "AMD", "AMD Ryzen 7 7800X3D", "AMD 锐龙 7 7800X3D", 2399, "AM5", 120, 8, 16, D5, True),
    _cpu("CPU-AMD-R7-9800X3D", "AMD", "AMD Ryzen 7 9800X3D", "AMD 锐龙 7 9800X3D", 3599, "AM5", 120, 8, 16, D5, True),
    _cpu("CPU-AMD-R9-9950X", "AMD", "AMD Ryzen 9 9950X", "AMD 锐龙 9 9950X", 4599, "AM5", 170, 16, 32, D5, True),
    _cpu("CPU-INTEL-I5-12400F", "Intel", "Intel Core i5-12400F", "英特尔 酷睿 i5-12400F", 699, "LGA1700", 65, 6, 12, D45, False),
    _cpu("CPU-INTEL-I5-13400F", "Intel", "Intel Core i5-13400F", "英特尔 酷睿 i5-13400F", 999, "LGA1700", 65, 10, 16, D45, False),
    _cpu("CPU-INTEL-I5-14600KF", "Intel", "Intel Core i5-14600KF", "英特尔 酷睿 i5-14600KF", 1699, "LGA1700", 125, 14, 20, D45, False),
    _cpu("CPU-INTEL-I7-14700K", "Intel", "Intel Core i7-14700K", "英特尔 酷睿 i7-14700K", 2699, "LGA1700", 125, 20, 28, D45, True),
    _cpu("CPU-INTEL-I9-14900K", "Intel", "Intel Core i9-14900K", "英特尔 酷睿 i9-14900K", 3799, "LGA1700", 125, 24, 32, D45, True),
    _cpu("CPU-INTEL-U5-245K", "Intel", "Intel Core Ultra 5 245K", "英特尔 酷睿 Ultra 5 245K", 1899, "LGA1851", 125, 14, 14, D5, True),
    _cpu("CPU-INTEL-U7-265K", "Intel", "Intel Core Ultra 7 265K", "英特尔 酷睿 Ultra 7 265K", 2699, "LGA1851", 125, 20, 20, D5, True),
    _cpu("CPU-INTEL-U9-285K", "Intel", "Intel Core Ultra 9 285K", "英特尔 酷睿 Ultra 9 285K", 4199, "LGA1851", 125, 24, 24, D5, True),
]


def _mb(
    sku: str,
    brand: str,
    en: str,
    zh: str,
    price: int,
    socket: str,
    chipset: str,
    ff: str,
    ram: str,
    m2: int,
    max_gb: int,
    wifi: bool,
) -> dict[str, Any]:
    specs = {
        "socket": socket,
        "chipset": chipset,
        "form_factor": ff,
        "ram_type": ram,
        "m2_slots": m2,
        "max_ram_gb": max_gb,
        "wifi": wifi,
    }
    return _p(sku, brand, en, zh, price, specs)


MOTHERBOARDS = [
    _mb("MB-MSI-B550-TOMAHAWK", "MSI", "MSI MAG B550 TOMAHAWK", "微星 MAG B550 TOMAHAWK 战斧导弹",
        899, "AM4", "B550", "ATX", "DDR4", 2, 128, False),
    _mb("MB-ASUS-B550M-PLUS-WIFI", "ASUS", "ASUS TUF GAMING B550M-PLUS WIFI II",
        "华硕 TUF GAMING B550M-PLUS WIFI II 重炮手", 799, "AM4", "B550", "Micro-ATX", "DDR4", 2, 128, True),
    _mb("MB-GIGABYTE-B650M-AORUS-ELITE", "Gigabyte", "Gigabyte B650M AORUS ELITE AX",
        "技嘉 B650M AORUS ELITE AX 小雕", 1199, "AM5", "B650", "Micro-ATX", "DDR5", 2, 192, True),
    _mb("MB-MSI-B650-TOMAHAWK", "MSI", "MSI MAG B650 TOMAHAWK WIFI", "微星 MAG B650 TOMAHAWK WIFI 战斧导弹",
        1399, "AM5", "B650", "ATX", "DDR5", 3, 256, True),
    _mb("MB-ASUS-B850-TUF", "ASUS", "ASUS TUF GAMING B850-PLUS WIFI", "华硕 TUF GAMING B850-PLUS WIFI 重炮手",
        1499, "AM5", "B850", "ATX", "DDR5", 4, 256, True),
    _mb("MB-ASROCK-B850I-LIGHTNING", "ASRock", "ASRock B850I Lightning WiFi", "华擎 B850I Lightning WiFi",
        1599, "AM5", "B850", "Mini-ITX", "DDR5", 2, 128, True),
    _mb("MB-ASUS-X870E-HERO", "ASUS", "ASUS ROG CROSSHAIR X870E HERO", "华硕 ROG CROSSHAIR X870E HERO",
        5299, "AM5", "X870E", "ATX", "DDR5", 5, 256, True),
    _mb("MB-GIGABYTE-X870E-MASTER", "Gigabyte", "Gigabyte X870E AORUS MASTER", "技嘉 X870E AORUS MASTER 大雕",
        3999, "AM5", "X870E", "E-ATX", "DDR5", 4, 256, True),
    _mb("MB-MSI-B760M-MORTAR-D4", "MSI", "MSI MAG B760M MORTAR WIFI DDR4",
        "微星 MAG B760M MORTAR WIFI DDR4 迫击炮", 999, "LGA1700", "B760", "Micro-ATX", "DDR4", 2, 128, True),
    _mb("MB-ASUS-B760M-PLUS-WIFI", "ASUS", "ASUS TUF GAMING B760M-PLUS WIFI",
        "华硕 TUF GAMING B760M-PLUS WIFI 重炮手", 1199, "LGA1700", "B760", "Micro-ATX", "DDR5", 2, 192, True),
    _mb("MB-ASROCK-B760-PRO-RS", "ASRock", "ASRock B760 Pro RS", "华擎 B760 Pro RS",
        899, "LGA1700", "B760", "ATX", "DDR5", 3, 192, False),
    _mb("MB-GIGABYTE-Z790-AORUS-ELITE", "Gigabyte", "Gigabyte Z790 AORUS ELITE AX", "技嘉 Z790 AORUS ELITE AX 小雕",
        1799, "LGA1700", "Z790", "ATX", "DDR5", 4, 192, True),
    _mb("MB-ASUS-Z790I-STRIX", "ASUS", "ASUS ROG STRIX Z790-I GAMING WIFI", "华硕 ROG STRIX Z790-I GAMING WIFI",
        2999, "LGA1700", "Z790", "Mini-ITX", "DDR5", 2, 96, True),
    _mb("MB-MSI-Z890-TOMAHAWK", "MSI", "MSI MAG Z890 TOMAHAWK WIFI", "微星 MAG Z890 TOMAHAWK WIFI 战斧导弹",
        2399, "LGA1851", "Z890", "ATX", "DDR5", 4, 256, True),
    _mb("MB-ASUS-B860M-A-WIFI", "ASUS", "ASUS PRIME B860M-A WIFI", "华硕 PRIME B860M-A WIFI",
        1099, "LGA1851", "B860", "Micro-ATX", "DDR5", 2, 256, True),
    _mb("MB-GIGABYTE-B860I-AORUS", "Gigabyte", "Gigabyte B860I AORUS PRO ICE", "技嘉 B860I AORUS PRO ICE 冰雕",
        1699, "LGA1851", "B860", "Mini-ITX", "DDR5", 2, 128, True),
]


def _ram(
    sku: str, brand: str, en: str, zh: str, price: int, kind: str, speed: int, gb: int, n: int,
    profile: str,
) -> dict[str, Any]:
    specs = {"type": kind, "speed_mts": speed, "capacity_gb": gb, "modules": n, "profile": profile}
    return _p(sku, brand, en, zh, price, specs)


RAMS = [
    _ram("RAM-KINGSTON-FURY-D4-3200-16", "Kingston", "Kingston FURY Beast DDR4 3200 16GB (2×8GB)",
         "金士顿 FURY Beast 野兽 DDR4 3200 16GB (8GB×2)", 299, "DDR4", 3200, 16, 2, "XMP"),
    _ram("RAM-GLOWAY-D4-3600-16", "Gloway", "Gloway Abyss DDR4 3600 16GB (2×8GB)",
         "光威 深渊 DDR4 3600 16GB (8GB×2)", 259, "DDR4", 3600, 16, 2, "XMP"),
    _ram("RAM-KINGBANK-D4-3200-32", "KingBank", "KingBank Silver Armor DDR4 3200 32GB (2×16GB)",
         "金百达 银爵 DDR4 3200 32GB (16GB×2)", 399, "DDR4", 3200, 32, 2, "XMP"),
    _ram("RAM-CORSAIR-VENG-D4-3600-32", "Corsair", "Corsair Vengeance LPX DDR4 3600 32GB (2×16GB)",
         "海盗船 复仇者 LPX DDR4 3600 32GB (16GB×2)", 549, "DDR4", 3600, 32, 2, "XMP"),
    _ram("RAM-CRUCIAL-D5-5600-32", "Crucial", "Crucial DDR5 5600 32GB (2×16GB)",
         "英睿达 DDR5 5600 32GB (16GB×2)", 549, "DDR5", 5600, 32, 2, "none"),
    _ram("RAM-KINGBANK-D5-6000-32", "KingBank", "KingBank Blade DDR5 6000 32GB (2×16GB)",
         "金百达 刃 DDR5 6000 32GB (16GB×2)", 599, "DDR5", 6000, 32, 2, "XMP"),
    _ram("RAM-KINGSTON-FURY-D5-6000-32", "Kingston", "Kingston FURY Beast DDR5 6000 32GB (2×16GB)",
         "金士顿 FURY Beast 野兽 DDR5 6000 32GB (16GB×2)", 699, "DDR5", 6000, 32, 2, "XMP"),
    _ram("RAM-GSKILL-TZ5NEO-D5-6000-32", "G.Skill", "G.Skill Trident Z5 Neo RGB DDR5 6000 CL30 32GB (2×16GB)",
         "芝奇 幻锋戟 Neo RGB DDR5 6000 C30 32GB (16GB×2)", 899, "DDR5", 6000, 32, 2, "EXPO"),
    _ram("RAM-GLOWAY-D5-6400-48", "Gloway", "Gloway Shenwu DDR5 6400 48GB (2×24GB)",
         "光威 神武 DDR5 6400 48GB (24GB×2)", 899, "DDR5", 6400, 48, 2, "XMP"),
    _ram("RAM-TEAMGROUP-D5-7200-32", "TeamGroup", "TeamGroup T-Force Delta RGB DDR5 7200 32GB (2×16GB)",
         "十铨 T-Force Delta 炫光 DDR5 7200 32GB (16GB×2)", 999, "DDR5", 7200, 32, 2, "XMP"),
    _ram("RAM-CORSAIR-DOM-D5-6600-32", "Corsair", "Corsair Dominator Titanium DDR5 6600 32GB (2×16GB)",
         "海盗船 统治者 钛金 DDR5 6600 32GB (16GB×2)", 1199, "DDR5", 6600, 32, 2, "XMP"),
    _ram("RAM-GSKILL-TZ5-D5-6400-64", "G.Skill", "G.Skill Trident Z5 RGB DDR5 6400 64GB (2×32GB)",
         "芝奇 幻锋戟 RGB DDR5 6400 64GB (32GB×2)", 1699, "DDR5", 6400, 64, 2, "XMP"),
]


def _ssd(
    sku: str, brand: str, en: str, zh: str, price: int, iface: str, ff: str, gb: int, tbw: int
) -> dict[str, Any]:
    specs = {"interface": iface, "form_factor": ff, "capacity_gb": gb, "tbw": tbw}
    return _p(sku, brand, en, zh, price, specs)


G3, G4, G5, M2 = "PCIe 3.0 x4", "PCIe 4.0 x4", "PCIe 5.0 x4", "M.2 2280"
SSDS = [
    _ssd("SSD-KINGSTON-NV3-1T", "Kingston", "Kingston NV3 1TB NVMe SSD", "金士顿 NV3 1TB NVMe 固态硬盘", 379, G4, M2, 1000, 320),
    _ssd("SSD-CRUCIAL-P3PLUS-1T", "Crucial", "Crucial P3 Plus 1TB NVMe SSD", "英睿达 P3 Plus 1TB NVMe 固态硬盘", 399, G4, M2, 1000, 220),
    _ssd("SSD-WD-SN770-1T", "WD", "WD_BLACK SN770 1TB NVMe SSD", "西部数据 WD_BLACK SN770 1TB NVMe 固态硬盘", 449, G4, M2, 1000, 600),
    _ssd("SSD-ZHITAI-TIPLUS7100-1T", "ZhiTai", "ZhiTai TiPlus7100 1TB NVMe SSD", "致态 TiPlus7100 1TB NVMe 固态硬盘", 499, G4, M2, 1000, 600),
    _ssd("SSD-SAMSUNG-990EVOPLUS-1T", "Samsung", "Samsung 990 EVO Plus 1TB NVMe SSD", "三星 990 EVO Plus 1TB NVMe 固态硬盘", 599, G4, M2, 1000, 600),
    _ssd("SSD-SAMSUNG-870EVO-1T", "Samsung", "Samsung 870 EVO 1TB SATA SSD", "三星 870 EVO 1TB SATA 固态硬盘", 599, "SATA III", '2.5"', 1000, 600),
    _ssd("SSD-SAMSUNG-990PRO-1T", "Samsung", "Samsung 990 PRO 1TB NVMe SSD", "三星 990 PRO 1TB NVMe 固态硬盘", 899, G4, M2, 1000, 600),
    _ssd("SSD-WD-SN850X-2T", "WD", "WD_BLACK SN850X 2TB NVMe SSD", "西部数据 WD_BLACK SN850X 2TB NVMe 固态硬盘", 1199, G4, M2, 2000, 1200),
    _ssd("SSD-SAMSUNG-990PRO-2T", "Samsung", "Samsung 990 PRO 2TB NVMe SSD", "三星 990 PRO 2TB NVMe 固态硬盘", 1599, G4, M2, 2000, 1200),
    _ssd("SSD-ZHITAI-TIPRO9000-2T", "ZhiTai", "ZhiTai TiPro9000 2TB PCIe 5.0 SSD", "致态 TiPro9000 2TB PCIe 5.0 固态硬盘", 1799, G5, M2, 2000, 1200),
    _ssd("SSD-WD-SN5000-4T", "WD", "WD Blue SN5000 4TB NVMe SSD", "西部数据 WD Blue SN5000 4TB NVMe 固态硬盘", 1799, G4, M2, 4000, 2400),
    _ssd("SSD-CRUCIAL-T705-2T", "Crucial", "Crucial T705 2TB PCIe 5.0 SSD", "英睿达 T705 2TB PCIe 5.0 固态硬盘", 1999, G5, M2, 2000, 1200),
]


def _hdd(sku: str, brand: str, en: str, zh: str, price: int, gb: int, rpm: int) -> dict[str, Any]:
    specs = {"capacity_gb": gb, "rpm": rpm, "interface": "SATA III", "form_factor": '3.5"'}
    return _p(sku, brand, en, zh, price, specs)


HDDS = [
    _hdd("HDD-SEAGATE-BARRACUDA-2T", "Seagate", "Seagate BarraCuda 2TB HDD", "希捷 酷鱼 BarraCuda 2TB 机械硬盘", 429, 2000, 7200),
    _hdd("HDD-WD-BLUE-4T", "WD", "WD Blue 4TB HDD", "西部数据 蓝盘 4TB 机械硬盘", 699, 4000, 5400),
    _hdd("HDD-SEAGATE-IRONWOLF-8T", "Seagate", "Seagate IronWolf 8TB NAS HDD", "希捷 酷狼 IronWolf 8TB NAS 硬盘", 1399, 8000, 7200),
    _hdd("HDD-WD-REDPLUS-8T", "WD", "WD Red Plus 8TB NAS HDD", "西部数据 红盘 Plus 8TB NAS 硬盘", 1499, 8000, 5640),
    _hdd("HDD-TOSHIBA-N300-12T", "Toshiba", "Toshiba N300 12TB NAS HDD", "东芝 N300 12TB NAS 硬盘", 1899, 12000, 7200),
    _hdd("HDD-SEAGATE-EXOS-16T", "Seagate", "Seagate Exos X16 16TB HDD", "希捷 银河 Exos X16 16TB 硬盘", 2199, 16000, 7200),
]


def _psu(
    sku: str, brand: str, en: str, zh: str, price: int, watts: int, ff: str, h16: int, p8: int,
    eff: str, atx: str,
) -> dict[str, Any]:
    specs = {
        "wattage_w": watts,
        "form_factor": ff,
        "connectors": {"12V-2x6": h16, "pcie_8pin": p8, "eps_8pin": 2 if watts >= 650 else 1,
                       "sata": 4 if ff == "SFX" else (6 if watts < 850 else 8 + (watts - 850) // 150)},
        "efficiency": eff,
        "atx_version": atx,
        "modular": "full" if watts >= 750 else "none",
    }
    return _p(sku, brand, en, zh, price, specs)


PSUS = [
    _psu("PSU-GREATWALL-G5-550", "Great Wall", "Great Wall G5 550W 80 PLUS Gold", "长城 G5 550W 金牌电源",
         349, 550, "ATX", 0, 2, "gold", "2.52"),
    _psu("PSU-MSI-A650BN", "MSI", "MSI MAG A650BN 650W 80 PLUS Bronze", "微星 MAG A650BN 650W 铜牌电源",
         369, 650, "ATX", 0, 2, "bronze", "2.52"),
    _psu("PSU-SEGOTEP-KL750", "Segotep", "Segotep KL-750G ATX 3.1 750W Gold", "鑫谷 昆仑 KL-750G ATX3.1 750W 金牌全模组",
         499, 750, "ATX", 1, 2, "gold", "3.1"),
    _psu("PSU-CORSAIR-RM750E", "Corsair", "Corsair RM750e ATX 3.1 750W Gold", "海盗船 RM750e ATX3.1 750W 金牌全模组",
         699, 750, "ATX", 1, 2, "gold", "3.1"),
    _psu("PSU-GREATWALL-X8-850", "Great Wall", "Great Wall X8 850W 80 PLUS Gold (ATX 2.x)", "长城 X8 850W 金牌全模组 (ATX 2.x)",
         599, 850, "ATX", 0, 4, "gold", "2.52"),
    _psu("PSU-SUPERFLOWER-LEADEX7-850", "Super Flower", "Super Flower LEADEX VII XG 850W Gold ATX 3.1",
         "振华 LEADEX VII XG 850W 金牌 ATX3.1", 899, 850, "ATX", 1, 4, "gold", "3.1"),
    _psu("PSU-SEASONIC-FOCUSGX-850", "Seasonic", "Seasonic FOCUS GX-850 ATX 3.1 Gold", "海韵 FOCUS GX-850 ATX3.1 金牌全模组",
         999, 850, "ATX", 1, 3, "gold", "3.1"),
    _psu("PSU-MSI-A1000GL", "MSI", "MSI MAG A1000GL PCIE5 1000W Gold", "微星 MAG A1000GL PCIE5 1000W 金牌",
         1099, 1000, "ATX", 1, 4, "gold", "3.1"),
    _psu("PSU-ANTEC-HCG1000", "Antec", "Antec HCG1000 Extreme 1000W Gold (ATX 2.4)", "安钛克 HCG1000 Extreme 1000W 金牌 (ATX 2.4)",
         1199, 1000, "ATX", 0, 6, "gold", "2.4"),
    _psu("PSU-THERMALTAKE-GF3-1000", "Thermaltake", "Thermaltake Toughpower GF3 1000W Gold ATX 3.0",
         "曜越 Toughpower GF3 1000W 金牌 ATX3.0", 1299, 1000, "ATX", 1, 4, "gold", "3.0"),
    _psu("PSU-BEQUIET-DP13-1000", "be quiet!", "be quiet! Dark Power 13 1000W Titanium", "be quiet! Dark Power 13 1000W 钛金",
         2299, 1000, "ATX", 1, 4, "titanium", "3.0"),
    _psu("PSU-CORSAIR-HX1200I", "Corsair", "Corsair HX1200i ATX 3.1 1200W Platinum", "海盗船 HX1200i ATX3.1 1200W 白金",
         2199, 1200, "ATX", 2, 4, "platinum", "3.1"),
    _psu("PSU-ASUS-ROG-THOR-1200", "ASUS", "ASUS ROG Thor 1200W Platinum III", "华硕 ROG THOR 雷神 III 1200W 白金",
         2999, 1200, "ATX", 1, 6, "platinum", "3.1"),
    _psu("PSU-SEASONIC-PRIME-TX1600", "Seasonic", "Seasonic PRIME TX-1600 ATX 3.1 Titanium", "海韵 PRIME TX-1600 ATX3.1 钛金",
         3999, 1600, "ATX", 2, 6, "titanium", "3.1"),
    _psu("PSU-CORSAIR-SF750", "Corsair", "Corsair SF750 SFX 750W Platinum", "海盗船 SF750 SFX 750W 白金",
         1099, 750, "SFX", 0, 4, "platinum", "2.52"),
    _psu("PSU-COOLERMASTER-V850SFX", "Cooler Master", "Cooler Master V850 SFX Gold ATX 3.1",
         "酷冷至尊 V850 SFX 金牌 ATX3.1", 1199, 850, "SFX", 1, 2, "gold", "3.1"),
    _psu("PSU-COOLERMASTER-V1100SFX", "Cooler Master", "Cooler Master V1100 SFX Platinum ATX 3.1",
         "酷冷至尊 V1100 SFX 白金 ATX3.1", 1799, 1100, "SFX", 1, 2, "platinum", "3.1"),
]


def _air(
    sku: str, brand: str, en: str, zh: str, price: int, sockets: list[str], tdp: int, height: int
) -> dict[str, Any]:
    specs = {"type": "air", "sockets": sockets, "tdp_rating_w": tdp, "height_mm": height}
    return _p(sku, brand, en, zh, price, specs)


def _aio(
    sku: str, brand: str, en: str, zh: str, price: int, sockets: list[str], tdp: int, rad: int
) -> dict[str, Any]:
    specs = {"type": "aio", "sockets": sockets, "tdp_rating_w": tdp, "radiator_mm": rad}
    return _p(sku, brand, en, zh, price, specs)


COOLERS = [
    _air("COOLER-DEEPCOOL-AK400", "DeepCool", "DeepCool AK400 CPU Air Cooler", "九州风神 AK400 风冷散热器", 149, ALL4, 220, 155),
    _air("COOLER-THERMALRIGHT-PA120SE", "Thermalright", "Thermalright Peerless Assassin 120 SE", "利民 PA120 SE 双塔风冷散热器", 169, ALL4, 245, 155),
    _air("COOLER-IDCOOLING-IS55", "ID-COOLING", "ID-COOLING IS-55 ARGB Low-Profile Cooler", "ID-COOLING IS-55 ARGB 下压式散热器", 169, ["AM4", "AM5", "LGA1700"], 125, 57),
    _air("COOLER-THERMALRIGHT-PS120EVO", "Thermalright", "Thermalright Phantom Spirit 120 EVO", "利民 PS120 EVO 双塔风冷散热器", 229, ALL4, 265, 157),
    _air("COOLER-DEEPCOOL-AK620", "DeepCool", "DeepCool AK620 CPU Air Cooler", "九州风神 AK620 双塔风冷散热器", 349, ALL4, 260, 160),
    _air("COOLER-NOCTUA-NHL9I", "Noctua", "Noctua NH-L9i-17xx Low-Profile Cooler", "猫头鹰 NH-L9i-17xx 下压式散热器", 399, ["LGA1700", "LGA1851"], 95, 37),
    _air("COOLER-BEQUIET-DRP5", "be quiet!", "be quiet! Dark Rock Pro 5", "be quiet! Dark Rock Pro 5 暗黑魔环风冷散热器", 699, ALL4, 270, 168),
    _air("COOLER-NOCTUA-NHD15G2", "Noctua", "Noctua NH-D15 G2", "猫头鹰 NH-D15 G2 双塔风冷散热器", 1099, ALL4, 280, 168),
    _aio("COOLER-ARCTIC-LF3-240", "Arctic", "Arctic Liquid Freezer III 240 AIO", "Arctic Liquid Freezer III 240 一体式水冷", 499, ALL4, 280, 240),
    _aio("COOLER-ARCTIC-LF3-360", "Arctic", "Arctic Liquid Freezer III 360 AIO", "Arctic Liquid Freezer III 360 一体式水冷", 699, ALL4, 320, 360),
    _aio("COOLER-DEEPCOOL-LT720", "DeepCool", "DeepCool LT720 360mm AIO", "九州风神 LT720 360 一体式水冷", 899, ["AM4", "AM5", "LGA1700"], 300, 360),
    _aio("COOLER-CORSAIR-H100I", "Corsair", "Corsair iCUE H100i ELITE CAPELLIX 240 AIO", "海盗船 iCUE H100i ELITE 240 一体式水冷", 899, ALL4, 250, 240),
    _aio("COOLER-LIANLI-GA2-280", "Lian Li", "Lian Li Galahad II Trinity 280 AIO", "联力 Galahad II Trinity 280 一体式水冷", 999, ALL4, 280, 280),
    _aio("COOLER-NZXT-KRAKEN-ELITE-360", "NZXT", "NZXT Kraken Elite 360 AIO", "恩杰 Kraken Elite 360 一体式水冷", 1999, ALL4, 300, 360),
]


def _case(
    sku: str, brand: str, en: str, zh: str, price: int, ffs: list[str], gpu: int, cooler: int,
    rads: list[int], psu: str,
) -> dict[str, Any]:
    specs = {
        "form_factors": ffs,
        "max_gpu_length_mm": gpu,
        "max_cooler_height_mm": cooler,
        "radiator_support_mm": rads,
        "psu_form_factor": psu,
    }
    return _p(sku, brand, en, zh, price, specs)


MITX, MATX = ["Mini-ITX"], ["Micro-ATX", "Mini-ITX"]
CASES = [
    _case("CASE-SAMA-M2", "SAMA", "SAMA M2 Micro-ATX Case", "先马 平头哥 M2 M-ATX 机箱", 159, MATX, 300, 155, [240], "ATX"),
    _case("CASE-DEEPCOOL-CH510", "DeepCool", "DeepCool CH510 Mid-Tower Case", "九州风神 CH510 中塔机箱", 299, ATX3, 380, 175, [240, 280, 360], "ATX"),
    _case("CASE-JONSBO-D31", "Jonsbo", "Jonsbo D31 MESH Micro-ATX Case", "乔思伯 D31 MESH M-ATX 机箱", 399, MATX, 400, 168, [240, 360], "ATX"),
    _case("CASE-ASUS-AP201", "ASUS", "ASUS Prime AP201 Micro-ATX Case", "华硕 Prime AP201 M-ATX 机箱", 499, MATX, 338, 170, [240, 280, 360], "ATX"),
    _case("CASE-MONTECH-AIR903", "Montech", "Montech AIR 903 MAX Case", "君主 AIR 903 MAX 机箱", 549, ATX4, 400, 180, [240, 280, 360, 420], "ATX"),
    _case("CASE-NZXT-H5FLOW", "NZXT", "NZXT H5 Flow (2024) Case", "恩杰 H5 Flow 2024 机箱", 599, ATX3, 365, 165, [120, 140, 240, 280, 360], "ATX"),
    _case("CASE-CORSAIR-4000D", "Corsair", "Corsair 4000D Airflow Case", "海盗船 4000D Airflow 机箱", 599, ATX3, 360, 170, [120, 140, 240, 280, 360], "ATX"),
    _case("CASE-LIANLI-LANCOOL216", "Lian Li", "Lian Li LANCOOL 216 Case", "联力 LANCOOL 216 机箱", 599, ATX4, 392, 180, [240, 280, 360], "ATX"),
    _case("CASE-COOLERMASTER-NR200P", "Cooler Master", "Cooler Master MasterBox NR200P Mini-ITX Case",
          "酷冷至尊 NR200P ITX 机箱", 599, MITX, 330, 155, [240, 280], "SFX"),
    _case("CASE-LIANLI-A4H2O", "Lian Li", "Lian Li A4-H2O Mini-ITX Case", "联力 A4-H2O ITX 机箱", 899, MITX, 322, 55, [240], "SFX"),
    _case("CASE-LIANLI-O11EVO", "Lian Li", "Lian Li O11 Dynamic EVO Case", "联力 包豪斯 O11 Dynamic EVO 机箱", 999, ATX4, 426, 167, [120, 140, 240, 280, 360], "ATX"),
    _case("CASE-FRACTAL-NORTH", "Fractal Design", "Fractal Design North Case", "Fractal Design North 机箱", 999, ATX3, 355, 170, [240, 280, 360], "ATX"),
    _case("CASE-PHANTEKS-NV7", "Phanteks", "Phanteks NV7 Full-Tower Case", "追风者 NV7 全塔机箱", 1499, ATX4, 450, 185, [240, 280, 360, 420], "ATX"),
]


def _mon(
    sku: str, brand: str, en: str, zh: str, price: int, size: float, res: str, hz: int,
    panel: str, inputs: list[str],
) -> dict[str, Any]:
    specs = {"size_in": size, "resolution": res, "refresh_hz": hz, "panel": panel, "inputs": inputs}
    return _p(sku, brand, en, zh, price, specs)


HD, DP = ["HDMI 2.0", "DP 1.4"], ["HDMI 2.1", "DP 1.4"]
MONITORS = [
    _mon("MON-XIAOMI-G27I", "Xiaomi", 'Xiaomi Gaming Monitor G27i 27" FHD 165Hz', "小米 G27i 27英寸 165Hz 电竞显示器", 699, 27, "1920x1080", 165, "IPS", HD),
    _mon("MON-KTC-H27T22", "KTC", 'KTC H27T22 27" QHD 170Hz Fast IPS', "KTC H27T22 27英寸 2K 170Hz 显示器", 899, 27, "2560x1440", 170, "IPS", HD),
    _mon("MON-AOC-Q27G2S", "AOC", 'AOC Q27G2S 27" QHD 165Hz IPS', "AOC Q27G2S 27英寸 2K 165Hz 显示器", 1099, 27, "2560x1440", 165, "IPS", HD),
    _mon("MON-DELL-S2725DS", "Dell", 'Dell 27 Plus S2725DS 27" QHD 100Hz', "戴尔 S2725DS 27英寸 2K 100Hz 显示器", 1299, 27, "2560x1440", 100, "IPS", ["HDMI 1.4", "DP 1.2"]),
    _mon("MON-MSI-MAG274QRF", "MSI", 'MSI MAG 274QRF-QD E2 27" QHD 180Hz', "微星 MAG 274QRF-QD E2 27英寸 2K 180Hz 显示器", 1499, 27, "2560x1440", 180, "IPS", HD),
    _mon("MON-SAMSUNG-G5-32", "Samsung", 'Samsung Odyssey G5 32" QHD 165Hz', "三星 玄龙骑士 G5 32英寸 2K 165Hz 曲面显示器", 1899, 32, "2560x1440", 165, "VA", HD),
    _mon("MON-LG-34GP83A", "LG", 'LG UltraGear 34GP83A-B 34" UWQHD 160Hz', "LG 34GP83A 34英寸 带鱼屏 160Hz 显示器", 2999, 34, "3440x1440", 160, "IPS", HD),
    _mon("MON-BENQ-PD2706U", "BenQ", 'BenQ PD2706U 27" 4K Designer Monitor', "明基 PD2706U 27英寸 4K 设计师显示器", 2999, 27, "3840x2160", 60, "IPS", ["HDMI 2.0", "DP 1.4", "USB-C"]),
    _mon("MON-LG-27GS95QE", "LG", 'LG UltraGear 27GS95QE 27" OLED 240Hz', "LG 27GS95QE 27英寸 OLED 240Hz 显示器", 4999, 27, "2560x1440", 240, "OLED", DP),
    _mon("MON-DELL-AW2725DF", "Dell", 'Alienware AW2725DF 27" QD-OLED 360Hz', "戴尔 外星人 AW2725DF 27英寸 QD-OLED 360Hz 显示器", 5999, 27, "2560x1440", 360, "OLED", DP),
    _mon("MON-ASUS-PG32UCDM", "ASUS", 'ASUS ROG Swift PG32UCDM 32" 4K QD-OLED 240Hz', "华硕 ROG 绝神 PG32UCDM 32英寸 4K OLED 240Hz 显示器", 8999, 32, "3840x2160", 240, "OLED", ["HDMI 2.1", "DP 1.4", "USB-C"]),
]


def _lap(
    sku: str, brand: str, en: str, zh: str, price: int, cpu: str, gpu: str | None, ram: int,
    ssd: int, screen: float, res: str, hz: int, kg: float,
) -> dict[str, Any]:
    specs: dict[str, Any] = {
        "cpu": cpu, "ram_gb": ram, "storage_gb": ssd, "screen_in": screen,
        "resolution": res, "refresh_hz": hz, "weight_kg": kg,
    }
    if gpu:
        specs["gpu"] = gpu
    return _p(sku, brand, en, zh, price, specs)


LAPTOPS = [
    _lap("LAP-XIAOMI-REDMIBOOK16", "Xiaomi", "Xiaomi RedmiBook 16 2024", "小米 RedmiBook 16 2024 笔记本电脑", 4299,
         "Core i5-13500H", None, 16, 512, 16.0, "2560x1600", 120, 1.75),
    _lap("LAP-HUAWEI-MATEBOOK14", "Huawei", "Huawei MateBook 14 2024", "华为 MateBook 14 2024 笔记本电脑", 5999,
         "Core Ultra 5 125H", None, 16, 1000, 14.2, "2880x1920", 120, 1.31),
    _lap("LAP-HP-VICTUS-16", "HP", "HP Victus 16 Gaming Laptop", "惠普 光影精灵 10 游戏本", 6499,
         "Core i7-13620H", "GeForce RTX 4060 Laptop", 16, 1000, 16.1, "1920x1080", 144, 2.3),
    _lap("LAP-LENOVO-R7000P", "Lenovo", "Lenovo Legion R7000P 2024", "联想 拯救者 R7000P 2024 游戏本", 7499,
         "Ryzen 7 8745H", "GeForce RTX 4060 Laptop", 16, 1000, 16.0, "2560x1600", 165, 2.4),
    _lap("LAP-ASUS-TIANXUAN5PRO", "ASUS", "ASUS TUF Gaming A16 (Tianxuan 5 Pro)", "华硕 天选5 Pro 游戏本", 7999,
         "Ryzen 9 7940HX", "GeForce RTX 4060 Laptop", 16, 1000, 16.0, "2560x1600", 165, 2.2),
    _lap("LAP-ASUS-ROG-STRIX-G16", "ASUS", "ASUS ROG Strix G16 Gaming Laptop", "华硕 ROG 枪神8 游戏本", 12999,
         "Core i9-14900HX", "GeForce RTX 4070 Laptop", 32, 1000, 16.0, "2560x1600", 240, 2.5),
    _lap("LAP-LENOVO-Y9000P-2025", "Lenovo", "Lenovo Legion Y9000P 2025", "联想 拯救者 Y9000P 2025 游戏本", 13999,
         "Core i9-14900HX", "GeForce RTX 5070 Ti Laptop", 32, 1000, 16.0, "2560x1600", 240, 2.6),
    _lap("LAP-DELL-XPS14", "Dell", "Dell XPS 14 9440", "戴尔 XPS 14 9440 笔记本电脑", 13999,
         "Core Ultra 7 155H", "GeForce RTX 4050 Laptop", 32, 1000, 14.5, "3200x2000", 120, 1.68),
]

KEYBOARDS = [
    _p("KB-RK-R75", "Royal Kludge", "Royal Kludge R75 Tri-mode Mechanical Keyboard", "RK R75 三模机械键盘", 249,
       {"layout": "75%", "switches": "RK Cyan", "connection": ["wired", "2.4GHz", "bluetooth"], "hot_swap": True}),
    _p("KB-AKKO-5075B", "Akko", "Akko 5075B Plus Mechanical Keyboard", "艾酷 Akko 5075B Plus 三模机械键盘", 399,
       {"layout": "75%", "switches": "Akko V3 Cream Yellow", "connection": ["wired", "2.4GHz", "bluetooth"], "hot_swap": True}),
    _p("KB-KEYCHRON-K8PRO", "Keychron", "Keychron K8 Pro QMK Wireless Keyboard", "Keychron K8 Pro 无线机械键盘", 699,
       {"layout": "tkl", "switches": "Gateron G Pro Brown", "connection": ["wired", "bluetooth"], "hot_swap": True}),
    _p("KB-CHERRY-MX30S", "Cherry", "Cherry MX 3.0S Mechanical Keyboard", "樱桃 Cherry MX 3.0S 机械键盘", 499,
       {"layout": "full", "switches": "Cherry MX Red", "connection": ["wired"], "hot_swap": False}),
    _p("KB-RAZER-BLACKWIDOW-V4-75", "Razer", "Razer BlackWidow V4 75% Keyboard", "雷蛇 黑寡妇蜘蛛 V4 75% 机械键盘", 1299,
       {"layout": "75%", "switches": "Razer Orange", "connection": ["wired"], "hot_swap": True}),
    _p("KB-LOGITECH-GPROX-TKL", "Logitech", "Logitech G PRO X TKL LIGHTSPEED Keyboard", "罗技 G PRO X TKL 无线机械键盘", 1499,
       {"layout": "tkl", "switches": "GX Brown Tactile", "connection": ["wired", "2.4GHz", "bluetooth"], "hot_swap": False}),
]

MICE = [
    _p("MOUSE-RAPOO-VT9PRO", "Rapoo", "Rapoo VT9 PRO Wireless Gaming Mouse", "雷柏 VT9 PRO 无线游戏鼠标", 199,
       {"dpi": 26000, "weight_g": 59, "connection": ["wired", "2.4GHz"], "buttons": 5}),
    _p("MOUSE-VGN-F1-MOBA", "VGN", "VGN Dragonfly F1 MOBA Wireless Mouse", "VGN 蜻蜓 F1 MOBA 无线鼠标", 169,
       {"dpi": 26000, "weight_g": 55, "connection": ["wired", "2.4GHz", "bluetooth"], "buttons": 5}),
    _p("MOUSE-ZOWIE-EC2CW", "Zowie", "Zowie EC2-CW Wireless Mouse", "卓威 EC2-CW 无线鼠标", 999,
       {"dpi": 3200, "weight_g": 77, "connection": ["wired", "2.4GHz"], "buttons": 5}),
    _p("MOUSE-LOGITECH-G502XPLUS", "Logitech", "Logitech G502 X PLUS Wireless Mouse", "罗技 G502 X PLUS 无线游戏鼠标", 899,
       {"dpi": 25600, "weight_g": 106, "connection": ["wired", "2.4GHz"], "buttons": 13}),
    _p("MOUSE-LOGITECH-GPROX-SL2", "Logitech", "Logitech G PRO X SUPERLIGHT 2", "罗技 G PRO X SUPERLIGHT 2 无线鼠标", 1099,
       {"dpi": 32000, "weight_g": 60, "connection": ["wired", "2.4GHz"], "buttons": 5}),
    _p("MOUSE-RAZER-DAV3PRO", "Razer", "Razer DeathAdder V3 Pro Wireless Mouse", "雷蛇 炼狱蝰蛇 V3 专业版 无线鼠标", 1099,
       {"dpi": 30000, "weight_g": 63, "connection": ["wired", "2.4GHz"], "buttons": 5}),
]

HEADSETS = [
    _p("HS-EDIFIER-G4", "EDIFIER", "EDIFIER HECATE G4 Gaming Headset", "漫步者 HECATE G4 游戏耳机", 299,
       {"connection": ["USB"], "microphone": True, "surround": True, "anc": False}),
    _p("HS-HYPERX-CLOUD3", "HyperX", "HyperX Cloud III Gaming Headset", "极度未知 HyperX Cloud III 飓风3 游戏耳机", 599,
       {"connection": ["3.5mm", "USB"], "microphone": True, "surround": True, "anc": False}),
    _p("HS-RAZER-BLACKSHARK-V2PRO", "Razer", "Razer BlackShark V2 Pro Wireless Headset", "雷蛇 旋风黑鲨 V2 专业版 无线耳机", 1299,
       {"connection": ["2.4GHz", "bluetooth"], "microphone": True, "surround": True, "anc": False}),
    _p("HS-STEELSERIES-NOVA7", "SteelSeries", "SteelSeries Arctis Nova 7 Wireless Headset", "赛睿 寒冰 Arctis Nova 7 无线耳机", 1299,
       {"connection": ["2.4GHz", "bluetooth"], "microphone": True, "surround": True, "anc": False}),
    _p("HS-LOGITECH-GPROX2", "Logitech", "Logitech G PRO X 2 LIGHTSPEED Headset", "罗技 G PRO X 2 LIGHTSPEED 无线耳机", 1599,
       {"connection": ["2.4GHz", "bluetooth", "3.5mm"], "microphone": True, "surround": True, "anc": False}),
    _p("HS-SONY-INZONE-H9", "Sony", "Sony INZONE H9 Wireless Gaming Headset", "索尼 INZONE H9 无线降噪游戏耳机", 1999,
       {"connection": ["2.4GHz", "bluetooth"], "microphone": True, "surround": True, "anc": True}),
]

ROUTERS = [
    _p("RT-HUAWEI-AX3PRO", "Huawei", "Huawei WiFi AX3 Pro Router", "华为路由 AX3 Pro 无线路由器", 299,
       {"wifi_standard": "Wi-Fi 6", "bands": ["2.4GHz", "5GHz"], "max_speed_mbps": 3000, "lan_ports": 3, "mesh": True}),
    _p("RT-XIAOMI-BE6500PRO", "Xiaomi", "Xiaomi Router BE6500 Pro", "小米路由器 BE6500 Pro", 599,
       {"wifi_standard": "Wi-Fi 7", "bands": ["2.4GHz", "5GHz"], "max_speed_mbps": 6500, "lan_ports": 3, "mesh": True}),
    _p("RT-TPLINK-XDR6088", "TP-Link", "TP-Link TL-XDR6088 AX6000 Router", "普联 TP-LINK TL-XDR6088 AX6000 无线路由器", 699,
       {"wifi_standard": "Wi-Fi 6", "bands": ["2.4GHz", "5GHz"], "max_speed_mbps": 6000, "lan_ports": 4, "mesh": True}),
    _p("RT-RUIJIE-X60PRO", "Ruijie", "Ruijie RG-X60 Pro Router", "锐捷 星耀 X60 Pro 无线路由器", 499,
       {"wifi_standard": "Wi-Fi 6", "bands": ["2.4GHz", "5GHz"], "max_speed_mbps": 5952, "lan_ports": 4, "mesh": True}),
    _p("RT-ASUS-RTBE88U", "ASUS", "ASUS RT-BE88U Wi-Fi 7 Router", "华硕 RT-BE88U Wi-Fi 7 无线路由器", 2999,
       {"wifi_standard": "Wi-Fi 7", "bands": ["2.4GHz", "5GHz"], "max_speed_mbps": 7200, "lan_ports": 8, "mesh": True}),
    _p("RT-NETGEAR-RS700S", "Netgear", "Netgear Nighthawk RS700S Wi-Fi 7 Router", "网件 Nighthawk RS700S Wi-Fi 7 无线路由器", 4999,
       {"wifi_standard": "Wi-Fi 7", "bands": ["2.4GHz", "5GHz", "6GHz"], "max_speed_mbps": 19000, "lan_ports": 4, "mesh": False}),
]

UPSES = [
    _p("UPS-SANTAK-TGBOX850", "SANTAK", "SANTAK TG-BOX 850 UPS", "山特 TG-BOX 850 UPS 不间断电源", 599,
       {"va": 850, "watts": 510, "runtime_min_half_load": 9, "topology": "line-interactive"}),
    _p("UPS-APC-BX1600MI", "APC", "APC Back-UPS BX1600MI", "施耐德 APC BX1600MI UPS 不间断电源", 1399,
       {"va": 1600, "watts": 900, "runtime_min_half_load": 10, "topology": "line-interactive"}),
    _p("UPS-CYBERPOWER-CP1500", "CyberPower", "CyberPower CP1500PFCLCD UPS", "CyberPower CP1500PFCLCD 正弦波 UPS", 1699,
       {"va": 1500, "watts": 1000, "runtime_min_half_load": 12, "topology": "line-interactive"}),
    _p("UPS-EATON-5E1500", "Eaton", "Eaton 5E 1500i UPS", "伊顿 5E 1500i UPS 不间断电源", 1499,
       {"va": 1500, "watts": 900, "runtime_min_half_load": 8, "topology": "line-interactive"}),
    _p("UPS-SANTAK-C1K", "SANTAK", "SANTAK C1K Online UPS", "山特 C1K 在线式 UPS 不间断电源", 1999,
       {"va": 1000, "watts": 800, "runtime_min_half_load": 11, "topology": "online"}),
]

# fmt: on

_BY_CATEGORY: dict[str, list[dict[str, Any]]] = {
    "gpu": GPUS,
    "cpu": CPUS,
    "motherboard": MOTHERBOARDS,
    "ram": RAMS,
    "ssd": SSDS,
    "hdd": HDDS,
    "psu": PSUS,
    "cooler": COOLERS,
    "case": CASES,
    "monitor": MONITORS,
    "laptop": LAPTOPS,
    "keyboard": KEYBOARDS,
    "mouse": MICE,
    "headset": HEADSETS,
    "router": ROUTERS,
    "ups": UPSES,
}


def demo_stock(sku: str) -> int:
    """Units on hand for a demo product: fixed per SKU (a hash, not the seeded RNG, so adding
    stock changed no other demo value); about one product in twelve is sold out."""
    bucket = zlib.crc32(sku.encode()) % 12
    return 0 if bucket == 0 else bucket * 4


def demo_products() -> list[dict[str, Any]]:
    """Every demo product as a plain row (sku, names, category, brand, price, warranty, specs).

    The order is fixed (category order above, then listing order): product ids are assigned
    in this order, which keeps seeding deterministic.
    """
    rows = []
    for category, items in _BY_CATEGORY.items():
        for item in items:
            rows.append(
                {
                    **item,
                    "category": category,
                    "price": Decimal(item["price"]).quantize(Decimal("0.01")),
                    "currency": "CNY",
                    "warranty_months": policy_warranty_months(category, item["specs"]),
                    "stock_qty": demo_stock(item["sku"]),
                }
            )
    return rows
