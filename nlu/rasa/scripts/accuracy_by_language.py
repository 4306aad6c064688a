"""Per-language intent accuracy from a `rasa test nlu` run.

    python nlu/rasa/scripts/accuracy_by_language.py [nlu/rasa/tests/test_nlu.yml] [nlu/rasa/results]

A message counts as Chinese when it contains any CJK character, else English. Uses
results/intent_errors.json (only the misclassified messages) plus the test file.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

import yaml

RASA_DIR = Path(__file__).resolve().parents[1]
ANNOT = re.compile(r"\[([^\]]+)\](?:\([a-z_]+\)|\{[^}]*\})")
CJK = re.compile(r"[\u4e00-\u9fff]")


def lang(text: str) -> str:
    return "zh" if CJK.search(text) else "en"


def main() -> None:
    test_file = Path(sys.argv[1]) if len(sys.argv) > 1 else RASA_DIR / "tests" / "test_nlu.yml"
    results = Path(sys.argv[2]) if len(sys.argv) > 2 else RASA_DIR / "results"
    total: Counter[str] = Counter()
    for block in yaml.safe_load(test_file.read_text(encoding="utf-8"))["nlu"]:
        if "intent" in block:
            for line in block["examples"].splitlines():
                if line.strip().startswith("- "):
                    total[lang(ANNOT.sub(lambda m: m.group(1), line.strip()[2:]))] += 1
    errors = json.loads((results / "intent_errors.json").read_text(encoding="utf-8"))
    wrong: Counter[str] = Counter(lang(e["text"]) for e in errors)
    for key in ("zh", "en"):
        acc = 1 - wrong[key] / total[key]
        print(f"{key}: {total[key] - wrong[key]}/{total[key]} = {acc:.3f}")
    all_total = sum(total.values())
    print(f"all: {all_total - len(errors)}/{all_total} = {1 - len(errors) / all_total:.3f}")
    for e in errors:
        pred = e["intent_prediction"]
        print(
            f"  [{lang(e['text'])}] {e['intent']:17} -> {pred['name']:17} "
            f"{pred['confidence']:.2f}  {e['text']}"
        )


if __name__ == "__main__":
    main()
