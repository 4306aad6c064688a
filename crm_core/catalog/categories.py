"""The fixed product categories (canonical keys) and their zh/en names and synonyms.

This is the single source of truth: the catalog validates against it, the NLU contract
re-exports it, and knowledge-base articles are tagged with these keys.
"""

from __future__ import annotations

from enum import StrEnum


class Category(StrEnum):
    GPU = "gpu"
    CPU = "cpu"
    MOTHERBOARD = "motherboard"
    RAM = "ram"
    SSD = "ssd"
    HDD = "hdd"
    PSU = "psu"
    COOLER = "cooler"
    CASE = "case"
    MONITOR = "monitor"
    LAPTOP = "laptop"
    KEYBOARD = "keyboard"
    MOUSE = "mouse"
    HEADSET = "headset"
    ROUTER = "router"
    UPS = "ups"


CATEGORY_KEYS: tuple[str, ...] = tuple(c.value for c in Category)

# Display names used in customer-facing text.
CATEGORY_NAMES: dict[str, dict[str, str]] = {
    "gpu": {"en": "Graphics card", "zh": "显卡"},
    "cpu": {"en": "Processor", "zh": "处理器"},
    "motherboard": {"en": "Motherboard", "zh": "主板"},
    "ram": {"en": "Memory", "zh": "内存"},
    "ssd": {"en": "SSD", "zh": "固态硬盘"},
    "hdd": {"en": "Hard drive", "zh": "机械硬盘"},
    "psu": {"en": "Power supply", "zh": "电源"},
    "cooler": {"en": "CPU cooler", "zh": "散热器"},
    "case": {"en": "PC case", "zh": "机箱"},
    "monitor": {"en": "Monitor", "zh": "显示器"},
    "laptop": {"en": "Laptop", "zh": "笔记本电脑"},
    "keyboard": {"en": "Keyboard", "zh": "键盘"},
    "mouse": {"en": "Mouse", "zh": "鼠标"},
    "headset": {"en": "Headset", "zh": "耳机"},
    "router": {"en": "Router", "zh": "路由器"},
    "ups": {"en": "UPS", "zh": "不间断电源"},
}

# Words customers use for each category, in both languages (lower case). Used by the NLU
# lookup tables/synonyms and by the entity normaliser.
CATEGORY_SYNONYMS: dict[str, tuple[str, ...]] = {
    "gpu": (
        "gpu",
        "graphics card",
        "video card",
        "graphic card",
        "vga",
        "显卡",
        "独显",
        "图形卡",
        "graphics",
        "显示卡",
    ),
    "cpu": ("cpu", "processor", "处理器", "中央处理器", "芯片"),
    "motherboard": ("motherboard", "mobo", "mainboard", "main board", "主板", "母板"),
    "ram": ("ram", "memory", "memory stick", "dimm", "内存", "内存条", "运存"),
    "ssd": ("ssd", "solid state drive", "nvme", "m.2", "固态", "固态硬盘", "固态盘"),
    "hdd": ("hdd", "hard drive", "hard disk", "harddisk", "机械硬盘", "机械盘", "硬盘"),
    "psu": ("psu", "power supply", "power supply unit", "电源", "电源供应器"),
    "cooler": (
        "cooler",
        "cpu cooler",
        "heatsink",
        "aio",
        "liquid cooler",
        "water cooler",
        "散热器",
        "风冷",
        "水冷",
        "散热",
    ),
    "case": ("case", "chassis", "pc case", "tower", "机箱", "机壳"),
    "monitor": ("monitor", "display", "screen", "显示器", "屏幕", "显示屏"),
    "laptop": ("laptop", "notebook", "笔记本", "笔记本电脑", "本子"),
    "keyboard": ("keyboard", "键盘", "机械键盘"),
    "mouse": ("mouse", "mice", "鼠标"),
    "headset": ("headset", "headphones", "earphones", "耳机", "耳麦"),
    "router": ("router", "wifi router", "wi-fi router", "路由器", "路由"),
    "ups": ("ups", "battery backup", "uninterruptible power supply", "不间断电源", "ups电源"),
}


def canonical_category(text: str) -> str | None:
    """Map a category word in zh or en (any case) onto its canonical key, or None."""
    needle = text.strip().lower()
    if needle in CATEGORY_KEYS:
        return needle
    for key, words in CATEGORY_SYNONYMS.items():
        if needle in words:
            return key
    return None
