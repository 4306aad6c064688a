"""NLU benchmark: Banking77 and CLINC150 (public) and our held-out set, Rasa vs embedded.

    .venv/bin/python benchmarks/nlu_eval.py                                # everything (hours)
    .venv/bin/python benchmarks/nlu_eval.py --only ours                    # our zh/en held-out set
    .venv/bin/python benchmarks/nlu_eval.py --only clinc150 --backends embedded
    nohup .venv/bin/python benchmarks/nlu_eval.py > var/bench/nlu_eval.log 2>&1 &   # background

Each backend is trained and scored with :mod:`nlu.evaluation`, exactly like
``hwcrm nlu evaluate``: every test message is parsed one at a time (the embedded backend
in-process, Rasa over HTTP through the application's client), so the latencies are per
message.

- Banking77 (Casanueva et al. 2020): 77 intents, no out-of-scope class. Model selection on
  a 10 % stratified validation split of the training data, then both backends are trained on
  the full training split (``--refit-with-val``), like the published results. Anchor: fine-tuned
  BERT 93.66 % accuracy.
- CLINC150 (Larson et al. 2019): 150 intents + ``oos`` (renamed ``out_of_scope``). Trained on
  the train split (with its 100 oos examples); the out-of-scope threshold of each backend is
  chosen on the validation split, then in-scope accuracy and oos recall are reported on the
  untouched test split at that same threshold. Anchors: BERT 96.9 / 40.3, BERT + threshold
  96.2 / 52.3, Rasa 91.5 / 45.3.
- Ours: ``nlu/rasa/data`` → ``nlu/rasa/tests/test_nlu.yml``, per language; Rasa uses the
  production config (its DIET epochs), and the model is shared with ``hwcrm nlu train``.

Rasa on the public sets runs with ``--rasa-epochs`` DIET epochs (default 20, instead of the
config's 100: DIET trains ~60 s per epoch on Banking77's 10k examples on 2 cores); trained
models are cached by fingerprint under ``--work-dir``, so a rerun does not retrain.
Goals for the default (embedded) backend: Banking77 accuracy ≥ 93.7; CLINC150 in-scope
accuracy ≥ 96 with oos recall ≥ 75 at one threshold; ≤ 10 ms per message on 2 cores.
Output: a table, plus one JSON line per (data set, backend) with machine and date, appended
to ``--output``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from benchmarks.datasets import banking77_to_rasa, clinc150_to_rasa  # noqa: E402
from nlu.evaluation import BackendReport, evaluate_embedded, evaluate_rasa  # noqa: E402
from nlu.rasa_data import NluData, dump_nlu_yaml, load_nlu_data, nlu_files  # noqa: E402

SHARED = Path(os.environ.get("HWCRM_SHARED_DATA", ROOT.parent / "shared" / "data"))
OOS = "out_of_scope"
DATASETS = ("banking77", "clinc150", "ours")
GOALS = {
    "banking77": "goal (embedded): accuracy ≥ 93.7",
    "clinc150": "goal (embedded): in-scope ≥ 96, oos recall ≥ 75",
    "ours": "CI floor: ≥ 85 per language",
}
console = Console()


def machine() -> dict[str, Any]:
    model = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        nproc = len(os.sched_getaffinity(0))
    except AttributeError:
        nproc = os.cpu_count() or 0
    return {
        "nproc": nproc,
        "cpu_model": model,
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _say(message: str) -> None:
    console.print(f"[dim]{time.strftime('%H:%M:%S')} {message}[/dim]")


def prepare(name: str, out_dir: Path) -> dict[str, Path]:
    """Convert a public data set to Rasa YAML (once) and return its split files."""
    folder = out_dir / name
    files = {split: folder / f"{split}.yml" for split in ("train", "val", "test")}
    if not all(p.is_file() for p in files.values()):
        if name == "banking77":
            banking77_to_rasa.convert(SHARED / "banking77", folder)
        else:
            clinc150_to_rasa.convert(SHARED / "clinc150", folder, OOS)
    return files


def run_one(dataset: str, backend: str, args: argparse.Namespace) -> BackendReport:
    """Evaluate one backend on one data set."""
    cache = args.work_dir / "embedding-cache"
    if dataset == "ours":
        train_sources = [ROOT / "nlu" / "rasa" / "data"]
        test = load_nlu_data(ROOT / "nlu" / "rasa" / "tests" / "test_nlu.yml")
        if backend == "embedded":
            return evaluate_embedded(
                load_nlu_data(train_sources), test, oos_label=OOS, embedder=args.embedder, say=_say
            )
        return evaluate_rasa(
            [f for s in train_sources for f in nlu_files(s)],
            test,
            venv=args.rasa_venv,
            config_path=ROOT / "nlu" / "rasa" / "config.yml",
            work_dir=ROOT / "var" / "nlu" / "rasa",  # the model `hwcrm nlu train` makes
            oos_label=OOS,
            say=_say,
        )
    files = prepare(dataset, args.work_dir)
    refit = dataset == "banking77"  # final model on the full training split
    oos = OOS if dataset == "clinc150" else None
    test = load_nlu_data(files["test"])
    if args.subsample > 1:
        test = replace(test, examples=test.examples[:: args.subsample])
    train, val = load_nlu_data(files["train"]), load_nlu_data(files["val"])
    if args.drop_oos_train and oos is not None:
        # A vendor's data has no out-of-scope examples: neither training nor validation
        # keeps any (the test split keeps its 1,000). The embedded backend falls back on
        # its built-in off-topic negatives (nlu/off_topic.txt).
        train, val = _without(train, oos), _without(val, oos)
        _say(f"--drop-oos-train: {len(train.examples)} train, {len(val.examples)} val, no {oos}")
        if backend == "rasa":
            folder = args.work_dir / f"{dataset}-no-oos"
            folder.mkdir(parents=True, exist_ok=True)
            for split, data in (("train", train), ("val", val)):
                files[split] = folder / f"{split}.yml"
                files[split].write_text(dump_nlu_yaml(data.examples), encoding="utf-8")
    if backend == "embedded":
        return evaluate_embedded(
            train,
            test,
            validation=val,
            refit_with_validation=refit,
            oos_label=oos,
            embedder=args.embedder,
            cache_dir=cache,
            say=_say,
        )
    return evaluate_rasa(
        [files["train"]],
        test,
        venv=args.rasa_venv,
        config_path=ROOT / "nlu" / "rasa" / "config.yml",
        work_dir=args.work_dir / f"rasa-{dataset}",
        validation_sources=[files["val"]],
        refit_with_validation=refit,
        oos_label=oos,
        epochs=args.rasa_epochs,
        say=_say,
    )


def _without(data: NluData, intent: str) -> NluData:
    """A copy of `data` without the examples of `intent`."""
    return replace(data, examples=[e for e in data.examples if e.intent != intent])


def _pct(value: float | None) -> str:
    return "—" if value is None or value != value else f"{value * 100:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description="NLU benchmark: Rasa vs embedded")
    parser.add_argument("--only", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument(
        "--backends", nargs="+", choices=("embedded", "rasa"), default=["embedded", "rasa"]
    )
    parser.add_argument("--rasa-epochs", type=int, default=20, help="DIET epochs on public sets")
    parser.add_argument("--embedder", default="use-multilingual")
    parser.add_argument(
        "--drop-oos-train",
        action="store_true",
        help="CLINC150: remove the oos examples from train and validation (test keeps them)",
    )
    parser.add_argument(
        "--subsample",
        type=int,
        default=0,
        help="score only every N-th test message (quick development runs; 0 = all)",
    )
    parser.add_argument("--rasa-venv", type=Path, default=ROOT / ".venv-rasa")
    parser.add_argument("--work-dir", type=Path, default=ROOT / "var" / "bench" / "nlu")
    parser.add_argument("--output", type=Path, default=ROOT / "var" / "bench" / "nlu_eval.jsonl")
    args = parser.parse_args()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)

    rows: list[dict[str, Any]] = []
    # Embedded first: its latency is then measured without our own Rasa training next to it.
    for backend in args.backends:
        for dataset in args.only:
            _say(f"=== {dataset} / {backend} ===")
            started = machine()
            report = run_one(dataset, backend, args)
            row = {
                "benchmark": "nlu_eval",
                "dataset": dataset,
                "backend": backend,
                "drop_oos_train": bool(args.drop_oos_train and dataset == "clinc150"),
                "subsample": args.subsample or None,
                **{k: v for k, v in report.to_json().items() if k not in ("per_intent",)},
                "rasa_epochs": (
                    args.rasa_epochs if backend == "rasa" and dataset != "ours" else None
                ),
                "machine": {**started, "load_avg_1m_end": round(os.getloadavg()[0], 2)},
            }
            rows.append(row)
            line = json.dumps(row, ensure_ascii=False)
            with args.output.open("a", encoding="utf-8") as handle:
                handle.write(line + "\n")
            print(line, flush=True)

    table = Table(title=f"NLU benchmark ({machine()['nproc']} cores, {machine()['date'][:10]})")
    for column in (
        "data set",
        "backend",
        "n",
        "accuracy",
        "macro-F1",
        "in-scope acc",
        "oos recall",
        "zh acc",
        "en acc",
        "p50 ms",
        "p95 ms",
        "CPU p50 ms",
        "train s",
        "note",
    ):
        table.add_column(
            column, justify="left" if column in ("data set", "backend", "note") else "right"
        )
    for row in sorted(rows, key=lambda r: (DATASETS.index(r["dataset"]), r["backend"])):
        note = (
            GOALS[row["dataset"]]
            if row["backend"] == "embedded"
            else (
                f"DIET epochs {row['rasa_epochs']}" if row["rasa_epochs"] else "production config"
            )
        )
        table.add_row(
            row["dataset"],
            row["backend"],
            str(row["n"]),
            _pct(row["accuracy"]),
            _pct(row["macro_f1"]),
            _pct(row["in_scope_accuracy"]),
            _pct(row["oos_recall"]),
            _pct(row["per_language"].get("zh", {}).get("accuracy")),
            _pct(row["per_language"].get("en", {}).get("accuracy")),
            f"{row['latency_ms_p50']:.1f}",
            f"{row['latency_ms_p95']:.1f}",
            f"{row['details']['cpu_ms_p50']:.1f}" if "cpu_ms_p50" in row["details"] else "—",
            f"{row['train_seconds']:.0f}",
            note,
        )
    console.print(table)


if __name__ == "__main__":
    main()
