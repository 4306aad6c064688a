"""Evaluate NLU backends on any Rasa-format data set (ours, Banking77, CLINC150, ...).

Each backend is trained on the training data, optionally tuned on validation data (the
out-of-scope threshold), and then parses every test message one at a time, the way the
bot does, so the latency numbers are per message. Reported per backend: accuracy, macro-F1,
per-intent precision/recall, in-scope accuracy and out-of-scope recall separately (as in
Larson et al. 2019), per-language accuracy, the most confused pairs and latency p50/p95.
"""

from __future__ import annotations

import asyncio
import math
import secrets
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from knowledge_base.embedders import Embedder
from nlu.breaker import CircuitBreaker
from nlu.embedded import (
    EmbeddedConfig,
    choose_threshold,
    decide,
    nlu_embedder,
    oos_scores,
    train_embedded,
)
from nlu.rasa_client import RasaClient, RetryPolicy
from nlu.rasa_data import NluData, load_nlu_data, nlu_files
from nlu.rasa_service import RasaServer, train_rasa
from nlu.text import detect_language, prepare_text

Say = Callable[[str], None]

BACKENDS = ("embedded", "rasa")


@dataclass
class BackendReport:
    """Scores of one backend on one test set (fractions 0–1, latencies in ms)."""

    backend: str
    n: int
    accuracy: float
    macro_f1: float
    in_scope_accuracy: float
    oos_recall: float | None
    latency_ms_p50: float
    latency_ms_p95: float
    per_language: dict[str, dict[str, float]] = field(default_factory=dict)
    per_intent: dict[str, dict[str, float]] = field(default_factory=dict)
    confused: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0
    threshold: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _round(value: float) -> float:
    return round(float(value), 4)


def score(
    backend: str,
    gold: Sequence[str],
    predicted: Sequence[str],
    latencies_ms: Sequence[float],
    texts: Sequence[str],
    oos_label: str | None,
) -> BackendReport:
    """Compute every metric of a :class:`BackendReport` from gold and predicted intents."""
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    n = len(gold)
    if n == 0:
        raise ValueError("the test set is empty")
    labels = sorted(set(gold))
    accuracy = sum(g == p for g, p in zip(gold, predicted, strict=True)) / n
    macro_f1 = float(f1_score(gold, predicted, labels=labels, average="macro", zero_division=0))
    precision, recall, f1, support = precision_recall_fscore_support(
        gold, predicted, labels=labels, zero_division=0
    )
    per_intent = {
        label: {
            "precision": _round(precision[i]),
            "recall": _round(recall[i]),
            "f1": _round(f1[i]),
            "support": int(support[i]),
        }
        for i, label in enumerate(labels)
    }
    has_oos = oos_label is not None and oos_label in gold
    in_scope = [(g, p) for g, p in zip(gold, predicted, strict=True) if g != oos_label]
    in_scope_accuracy = sum(g == p for g, p in in_scope) / len(in_scope) if in_scope else math.nan
    oos_recall: float | None = None
    if has_oos:
        oos = [p for g, p in zip(gold, predicted, strict=True) if g == oos_label]
        oos_recall = sum(p == oos_label for p in oos) / len(oos)
    confused = Counter((g, p) for g, p in zip(gold, predicted, strict=True) if g != p)
    per_language: dict[str, dict[str, float]] = {}
    for lang in ("zh", "en"):
        pairs = [
            (g, p)
            for g, p, t in zip(gold, predicted, texts, strict=True)
            if detect_language(t) == lang
        ]
        if pairs:
            per_language[lang] = {
                "n": len(pairs),
                "accuracy": _round(sum(g == p for g, p in pairs) / len(pairs)),
            }
    lat = np.asarray(latencies_ms, dtype=np.float64) if latencies_ms else np.zeros(1)
    return BackendReport(
        backend=backend,
        n=n,
        accuracy=_round(accuracy),
        macro_f1=_round(macro_f1),
        in_scope_accuracy=_round(in_scope_accuracy),
        oos_recall=None if oos_recall is None else _round(oos_recall),
        latency_ms_p50=_round(np.percentile(lat, 50)),
        latency_ms_p95=_round(np.percentile(lat, 95)),
        per_language=per_language,
        per_intent=per_intent,
        confused=[
            {"gold": g, "predicted": p, "count": c} for (g, p), c in confused.most_common(10)
        ],
    )


def threshold_sweep(
    probs: np.ndarray[Any, np.dtype[np.float64]],
    labels: Sequence[str],
    gold: Sequence[str],
    oos_label: str | None,
) -> list[dict[str, float]]:
    """In-scope accuracy and oos recall on the test set at fixed thresholds (for reporting
    the trade-off only: the threshold used is always chosen on validation data)."""
    if oos_label is None or oos_label not in gold:
        return []
    out = []
    for threshold in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
        in_acc, recall = oos_scores(gold, decide(probs, labels, oos_label, threshold), oos_label)
        out.append(
            {
                "threshold": threshold,
                "in_scope_accuracy": _round(in_acc),
                "oos_recall": _round(recall),
            }
        )
    return out


def _texts_and_gold(data: NluData) -> tuple[list[str], list[str]]:
    return [e.text for e in data.examples], [e.intent for e in data.examples]


def evaluate_embedded(
    train: NluData,
    test: NluData,
    *,
    validation: NluData | None = None,
    refit_with_validation: bool = False,
    oos_label: str | None = "out_of_scope",
    embedder: Embedder | str = "use-multilingual",
    config: EmbeddedConfig | None = None,
    cache_dir: Path | None = None,
    say: Say = lambda _: None,
) -> BackendReport:
    """Train the embedded classifier on `train` and score it on `test`, one message at a time.

    With `cache_dir`, training/validation embeddings go through the knowledge base's on-disk
    :class:`~knowledge_base.cache.CachingEmbedder`; test messages never do (their latency
    includes embedding them with the real model).
    """
    if isinstance(embedder, str):
        embedder = nlu_embedder(embedder)
    train_embedder: Embedder = embedder
    if cache_dir is not None:
        from knowledge_base.cache import CachingEmbedder

        train_embedder = CachingEmbedder(embedder, cache_dir)
    # A closed-set benchmark (oos_label None, e.g. Banking77) gets no built-in negatives:
    # nothing in its test set is out of scope.
    config = config or EmbeddedConfig(
        embedder=embedder.name,
        oos_label=oos_label or "out_of_scope",
        builtin_negatives=oos_label is not None,
    )
    started = time.perf_counter()
    model = train_embedded(
        train,
        config,
        validation=validation,
        refit_with_validation=refit_with_validation,
        embedder=train_embedder,
        progress=say,
    )
    train_seconds = time.perf_counter() - started
    if train_embedder is not embedder:
        save = getattr(train_embedder, "save", None)
        if save is not None:
            save()
        model.use_embedder(embedder)
    texts, gold = _texts_and_gold(test)
    model.parse("warm-up")  # first-call costs (lazy loads) are not per-message latency
    say(f"embedded: parsing {len(texts)} test messages one by one")
    predicted: list[str] = []
    latencies: list[float] = []
    cpu: list[float] = []
    for text in texts:
        t0, c0 = time.perf_counter(), time.thread_time()
        result = model.parse(text)
        cpu.append((time.thread_time() - c0) * 1000)
        latencies.append((time.perf_counter() - t0) * 1000)
        predicted.append(result.intent)
    report = score("embedded", gold, predicted, latencies, texts, oos_label)
    sweep: list[dict[str, float]] = []
    if oos_label is not None and oos_label in gold:
        probs = model.predict_proba([prepare_text(t).text or " " for t in texts])
        sweep = threshold_sweep(probs, model.labels, gold, oos_label)
    report.train_seconds = round(train_seconds, 1)
    report.threshold = round(model.threshold, 4)
    report.details = {
        "embedder": embedder.name,
        "feature_set": model.report.feature_set,
        "c": model.report.c,
        "validation": model.report.validation,
        "validation_accuracy": round(model.report.validation_accuracy, 4),
        "temperature": round(model.temperature, 4),
        "n_train": model.report.n_train,
        "builtin_negatives": model.report.negatives,
        "threshold_sweep_on_test": sweep,
        # CPU time of this thread per message: what a parse costs without waiting for a core
        # (wall-clock latency on a shared machine includes the wait).
        "cpu_ms_p50": _round(float(np.percentile(cpu, 50))),
        "cpu_ms_p95": _round(float(np.percentile(cpu, 95))),
    }
    return report


async def _parse_all(
    client: RasaClient, texts: Sequence[str], say: Say, what: str
) -> tuple[list[list[tuple[str, float]]], list[float]]:
    rankings: list[list[tuple[str, float]]] = []
    latencies: list[float] = []
    for index, text in enumerate(texts):
        cleaned = prepare_text(text).text or " "
        t0 = time.perf_counter()
        result = await client.parse(cleaned)
        latencies.append((time.perf_counter() - t0) * 1000)
        ranking = [(r.name, r.confidence) for r in result.ranking] or [
            (result.intent, result.confidence)
        ]
        if ranking[0][0] != result.intent:
            ranking.insert(0, (result.intent, result.confidence))
        rankings.append(ranking)
        if (index + 1) % 1000 == 0:
            say(f"rasa: parsed {index + 1}/{len(texts)} {what} messages")
    return rankings, latencies


def _rankings_to_probs(
    rankings: Sequence[Sequence[tuple[str, float]]], labels: Sequence[str]
) -> np.ndarray[Any, np.dtype[np.float64]]:
    index = {name: i for i, name in enumerate(labels)}
    probs = np.zeros((len(rankings), len(labels)), dtype=np.float64)
    for row, ranking in enumerate(rankings):
        for name, confidence in ranking:
            if name in index and probs[row, index[name]] == 0:
                probs[row, index[name]] = confidence
    return probs


def evaluate_rasa(
    train_sources: Sequence[Path],
    test: NluData,
    *,
    venv: Path,
    config_path: Path,
    work_dir: Path,
    validation_sources: Sequence[Path] = (),
    refit_with_validation: bool = False,
    oos_label: str | None = "out_of_scope",
    epochs: int | None = None,
    say: Say = lambda _: None,
    startup_timeout_s: float = 300.0,
) -> BackendReport:
    """Train Rasa (our pipeline config) on the training files, serve it on a free loopback
    port, and parse the test set through the application's client.

    With validation data that contains the out-of-scope label, a confidence threshold is
    chosen on it (like the embedded backend's); otherwise Rasa's own top intent is used.
    """
    sources = list(train_sources) + (list(validation_sources) if refit_with_validation else [])
    model = train_rasa(
        venv,
        config_path.parent,
        work_dir,
        config_path=config_path,
        data=sources,
        epochs=epochs,
        say=say,
        timeout_s=6 * 3600,
    )
    texts, gold = _texts_and_gold(test)
    token = secrets.token_urlsafe(24)
    server = RasaServer(venv, model.path, token=token, log_path=work_dir / "rasa-eval-server.log")
    say(f"rasa: starting the server on {server.url}")
    with server:
        waited = server.wait_ready(timeout_s=startup_timeout_s)
        say(f"rasa: model loaded after {waited:.0f}s")

        async def run() -> tuple[
            list[list[tuple[str, float]]], list[float], list[list[tuple[str, float]]]
        ]:
            async with RasaClient(
                server.url,
                token,
                timeout_s=30.0,
                retry=RetryPolicy(attempts=3, backoff_s=0.2),
                breaker=CircuitBreaker(failure_threshold=50, cooldown_s=1.0),
            ) as client:
                await client.parse("warm up")
                val_rankings: list[list[tuple[str, float]]] = []
                if validation_sources and oos_label is not None:
                    val_data = load_nlu_data(list(validation_sources))
                    if oos_label in {e.intent for e in val_data.examples}:
                        val_rankings, _ = await _parse_all(
                            client, [e.text for e in val_data.examples], say, "validation"
                        )
                rankings, latencies = await _parse_all(client, texts, say, "test")
                return rankings, latencies, val_rankings

        rankings, latencies, val_rankings = asyncio.run(run())
    threshold = 0.0
    if val_rankings and oos_label is not None:
        val_gold = [e.intent for e in load_nlu_data(list(validation_sources)).examples]
        labels = sorted(
            set(val_gold)
            | {n for r in val_rankings for n, _ in r}
            | {n for r in rankings for n, _ in r}
        )
        threshold, _ = choose_threshold(
            _rankings_to_probs(val_rankings, labels), labels, val_gold, oos_label
        )
    labels = sorted({n for r in rankings for n, _ in r} | set(gold))
    test_probs = _rankings_to_probs(rankings, labels)
    predicted = decide(test_probs, labels, oos_label, threshold)
    report = score("rasa", gold, predicted, latencies, texts, oos_label)
    report.train_seconds = round(model.seconds, 1)
    report.threshold = round(threshold, 4)
    report.details = {
        "epochs": epochs if epochs is not None else "config",
        "model": model.path.name,
        "cached_model": not model.trained,
        "config": str(config_path),
        "threshold_sweep_on_test": threshold_sweep(test_probs, labels, gold, oos_label),
    }
    return report


@dataclass
class EvaluationRequest:
    """What ``hwcrm nlu evaluate`` was asked to do."""

    train: list[Path]
    test: list[Path]
    validation: list[Path] = field(default_factory=list)
    backends: tuple[str, ...] = BACKENDS
    oos_label: str | None = "out_of_scope"
    embedder: str = "use-multilingual"
    rasa_epochs: int | None = None
    refit_with_validation: bool = False
    rasa_venv: Path = Path(".venv-rasa")
    rasa_config: Path = Path("nlu/rasa/config.yml")
    work_dir: Path | None = None
    embedding_cache: Path | None = None


def run_evaluation(
    request: EvaluationRequest, say: Say = lambda _: None
) -> dict[str, BackendReport]:
    """Evaluate each requested backend; returns reports keyed by backend name."""
    train = load_nlu_data(request.train)
    test = load_nlu_data(request.test)
    validation = load_nlu_data(request.validation) if request.validation else None
    if not train.examples:
        raise ValueError(f"no training examples in {', '.join(map(str, request.train))}")
    if not test.examples:
        raise ValueError(f"no test examples in {', '.join(map(str, request.test))}")
    say(
        f"train: {len(train.examples)} examples, {len(train.intents)} intents; "
        f"test: {len(test.examples)}"
        + (f"; validation: {len(validation.examples)}" if validation else "")
    )
    reports: dict[str, BackendReport] = {}
    for backend in request.backends:
        if backend == "embedded":
            reports[backend] = evaluate_embedded(
                train,
                test,
                validation=validation,
                refit_with_validation=request.refit_with_validation,
                oos_label=request.oos_label,
                embedder=request.embedder,
                cache_dir=request.embedding_cache,
                say=say,
            )
        elif backend == "rasa":
            with tempfile.TemporaryDirectory(prefix="hwcrm-nlu-eval-") as tmp:
                work_dir = request.work_dir or Path(tmp)
                reports[backend] = evaluate_rasa(
                    [f for source in request.train for f in nlu_files(source)],
                    test,
                    venv=request.rasa_venv,
                    config_path=request.rasa_config,
                    work_dir=work_dir,
                    validation_sources=[f for s in request.validation for f in nlu_files(s)],
                    refit_with_validation=request.refit_with_validation,
                    oos_label=request.oos_label,
                    epochs=request.rasa_epochs,
                    say=say,
                )
        else:
            raise ValueError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")
    return reports
