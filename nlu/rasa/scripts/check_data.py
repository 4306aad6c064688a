"""Check the Rasa NLU YAML against the contract and print per-intent zh/en counts.

Run with the product's Python from the repository root::

    python nlu/rasa/scripts/check_data.py [--fix-categories]

``--fix-categories`` rewrites ``[显卡](product_category)`` into
``[显卡]{"entity": "product_category", "value": "gpu"}`` (the canonical key) in data/ and
tests/. It fails on any intent or entity name that is not in :mod:`nlu.contract`, on a
category word it cannot map, and on order/serial annotations that do not match crm_core.ids.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from nlu.contract import (  # noqa: E402
    ENTITIES,
    INTENTS,
    canonical_category,
    normalize_order_number,
    normalize_serial_number,
)

RASA_DIR = ROOT / "nlu" / "rasa"
# Plurals and slang that are not in the shared synonym list but are clear in context.
EXTRA_CATEGORY_WORDS = {
    "card": "gpu",
    "monitors": "monitor",
    "motherboards": "motherboard",
    "laptops": "laptop",
    "cards": "gpu",
    "ssds": "ssd",
    "gpus": "gpu",
}
ANNOT = re.compile(r"\[([^\]]+)\](?:\(([a-z_]+)\)|\{([^}]*)\})")
CJK = re.compile(r"[\u4e00-\u9fff]")


def category_value(text: str) -> str:
    key = canonical_category(text) or EXTRA_CATEGORY_WORDS.get(text.strip().lower())
    if key is None:
        raise SystemExit(f"unknown category word: {text!r}")
    return key


def fix_line(line: str) -> str:
    def repl(m: re.Match[str]) -> str:
        text, ent = m.group(1), m.group(2)
        if ent == "product_category":
            key = category_value(text)
            if key != text:
                return f'[{text}]{{"entity": "product_category", "value": "{key}"}}'
        return m.group(0)

    return ANNOT.sub(repl, line)


def main() -> None:
    fix = "--fix-categories" in sys.argv
    files = sorted((RASA_DIR / "data").glob("*.yml")) + sorted((RASA_DIR / "tests").glob("*.yml"))
    problems: list[str] = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        if fix:
            new = "\n".join(fix_line(line) for line in text.split("\n"))
            if new != text:
                path.write_text(new, encoding="utf-8")
                text = new
        doc = yaml.safe_load(text) or {}
        counts: dict[str, Counter[str]] = {}
        for block in doc.get("nlu", []):
            if "intent" not in block:
                continue
            intent = block["intent"]
            if intent not in INTENTS:
                problems.append(f"{path.name}: unknown intent {intent}")
            for ex in block["examples"].splitlines():
                ex = ex.strip()[2:]
                if not ex:
                    continue
                lang = "zh" if CJK.search(ANNOT.sub(lambda m: m.group(1), ex)) else "en"
                counts.setdefault(intent, Counter())[lang] += 1
                for m in ANNOT.finditer(ex):
                    value, ent = m.group(1), m.group(2)
                    if ent is None:
                        spec = yaml.safe_load("{" + m.group(3) + "}")
                        ent = spec["entity"]
                        if ent == "product_category" and spec["value"] != category_value(value):
                            problems.append(f"{path.name}: {value} -> {spec['value']}")
                    if ent not in ENTITIES:
                        problems.append(f"{path.name}: unknown entity {ent} in {ex}")
                    if ent == "order_number" and not normalize_order_number(value):
                        problems.append(f"{path.name}: bad order number {value}")
                    if ent == "serial_number" and not normalize_serial_number(value):
                        problems.append(f"{path.name}: bad serial number {value}")
        for intent, c in counts.items():
            print(f"{path.name:22} {intent:18} zh={c['zh']:3} en={c['en']:3}")
    if problems:
        print("\n".join(problems))
        raise SystemExit(1)


if __name__ == "__main__":
    main()
