"""CLINC150 (Larson et al. 2019) → Rasa NLU YAML: train.yml, val.yml, test.yml.

    .venv/bin/python benchmarks/datasets/clinc150_to_rasa.py --out var/bench/clinc150

Uses ``data_full.json``: train 15,000 + 100 ``oos``, val 3,000 + 100 ``oos``, test 4,500 +
1,000 ``oos``. The splits are kept as published (in-scope and out-of-scope examples of a
split go to the same file); the data set's ``oos`` label is renamed to ``--oos-label``
(default ``out_of_scope``, the contract's name), so the evaluation reports in-scope
accuracy and out-of-scope recall separately, as the paper does.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from nlu.rasa_data import Example, dump_nlu_yaml

DEFAULT_SOURCE = Path(__file__).resolve().parents[3] / "shared" / "data" / "clinc150"
CLINC_OOS = "oos"


def convert(source: Path, out: Path, oos_label: str = "out_of_scope") -> dict[str, int]:
    """Write train.yml, val.yml and test.yml into `out`; returns the example counts."""
    data = json.loads((source / "data_full.json").read_text(encoding="utf-8"))
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split in ("train", "val", "test"):
        rows = data[split] + data[f"oos_{split}"]
        examples = [
            Example(text=text.strip(), intent=oos_label if intent == CLINC_OOS else intent)
            for text, intent in rows
            if text.strip()
        ]
        (out / f"{split}.yml").write_text(dump_nlu_yaml(examples), encoding="utf-8")
        counts[split] = len(examples)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="clinc150 folder")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--oos-label", default="out_of_scope")
    args = parser.parse_args()
    counts = convert(args.source, args.out, args.oos_label)
    print(", ".join(f"{k}: {v}" for k, v in counts.items()), f"→ {args.out}")


if __name__ == "__main__":
    main()
