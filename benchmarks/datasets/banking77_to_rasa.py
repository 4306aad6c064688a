"""Banking77 (Casanueva et al. 2020) → Rasa NLU YAML: train.yml, val.yml, test.yml.

    .venv/bin/python benchmarks/datasets/banking77_to_rasa.py --out var/bench/banking77

Banking77 ships train (10,003) and test (3,080) only. A stratified validation split
(``--val-fraction``, default 10 %, fixed seed) is carved out of the training split for model
selection; ``train.yml`` + ``val.yml`` together are exactly the original training split
(evaluate with ``--refit-with-val`` to train the final models on all of it, as the published
results do). The test split is written untouched, every example in its original order.
Intent names are the data set's category names (``card_arrival``, ...); there is no
out-of-scope class.
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from nlu.rasa_data import Example, dump_nlu_yaml

DEFAULT_SOURCE = Path(__file__).resolve().parents[3] / "shared" / "data" / "banking77"


def read_split(path: Path) -> list[Example]:
    """Examples of one CSV split (``text,category``)."""
    with path.open(encoding="utf-8", newline="") as handle:
        return [
            Example(text=row["text"].strip(), intent=row["category"].strip())
            for row in csv.DictReader(handle)
            if row["text"].strip()
        ]


def stratified_split(
    examples: list[Example], fraction: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """(train, validation): `fraction` of each intent (at least one) goes to validation."""
    by_intent: dict[str, list[int]] = defaultdict(list)
    for index, example in enumerate(examples):
        by_intent[example.intent].append(index)
    rng = random.Random(seed)
    val_ids: set[int] = set()
    for intent in sorted(by_intent):
        ids = by_intent[intent]
        take = max(1, round(len(ids) * fraction)) if len(ids) > 1 else 0
        val_ids.update(rng.sample(ids, take))
    train = [e for i, e in enumerate(examples) if i not in val_ids]
    val = [e for i, e in enumerate(examples) if i in val_ids]
    return train, val


def convert(source: Path, out: Path, val_fraction: float = 0.1, seed: int = 0) -> dict[str, int]:
    """Write train.yml, val.yml and test.yml into `out`; returns the example counts."""
    train_all = read_split(source / "train.csv")
    test = read_split(source / "test.csv")
    train, val = stratified_split(train_all, val_fraction, seed)
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, examples in (("train", train), ("val", val), ("test", test)):
        (out / f"{name}.yml").write_text(dump_nlu_yaml(examples), encoding="utf-8")
        counts[name] = len(examples)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="banking77 folder")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    counts = convert(args.source, args.out, args.val_fraction, args.seed)
    print(", ".join(f"{k}: {v}" for k, v in counts.items()), f"→ {args.out}")


if __name__ == "__main__":
    main()
