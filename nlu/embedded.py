"""The embedded intent classifier: sentence embeddings + a linear model, trained from Rasa YAML.

It is the fallback when the Rasa service is down or slow, and the default backend when no
Rasa service is configured. Trained from the same data as Rasa (``nlu/rasa/data``):

- features: the knowledge base's :class:`~knowledge_base.embedders.Embedder` (multilingual
  USE by default), optionally concatenated with TF-IDF character n-grams; which feature set
  and which regularisation strength ``C`` is chosen on validation data (cross-validated
  out-of-fold predictions for small data sets, a held-out split or a given validation set
  for large ones), never on test data;
- model: multinomial logistic regression; probabilities are temperature-scaled on the
  validation predictions so confidences are calibrated;
- out of scope: trained as a class when the data has ``out_of_scope`` examples, plus a
  confidence threshold chosen on the validation predictions (maximising the mean of
  in-scope accuracy and out-of-scope recall). A vendor's data usually has none: then the
  built-in bilingual off-topic messages (``nlu/off_topic.txt``) stand in for them — those
  close to a training example are dropped (the vendor's data says they are in scope), 70 %
  train the out-of-scope class and 30 % are held out as out-of-scope validation examples
  for the threshold (with cross-validation all of them take part in the folds);
- entities: :class:`~nlu.entities.RuleEntityExtractor` (regexes, lookup tables, synonyms,
  a symptom gazetteer from the annotations).

Persisted with joblib under ``nlu.model_dir`` together with a fingerprint (hash of the data
files, the configuration, the embedder name, the format and scikit-learn versions); loading a
model whose fingerprint does not match the current data retrains it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from knowledge_base.embedders import Embedder, UseMultilingualEmbedder, get_embedder
from nlu.contract import FALLBACK_INTENT
from nlu.entities import RuleEntityExtractor, entity_rules
from nlu.rasa_data import NluData, load_nlu_data, nlu_files
from nlu.schemas import IntentScore, ParseResult
from nlu.text import DEFAULT_MAX_CHARS, detect_language, prepare_text

log = logging.getLogger(__name__)

MODEL_FORMAT = 2
MODEL_FILE = "embedded.joblib"
FINGERPRINT_FILE = "embedded.fingerprint.json"
OFF_TOPIC_FILE = Path(__file__).resolve().parent / "off_topic.txt"

FloatArray = npt.NDArray[np.float64]

_CONTROLLER: Any = None
_CONTROLLER_LOCK = threading.Lock()


def single_threaded_blas() -> contextlib.AbstractContextManager[Any]:
    """BLAS limited to one thread for our small matrices.

    On a 2-core machine shared with other work, multi-threaded OpenBLAS spins and makes
    logistic regression ~10x slower than one thread; the embedder sets its own limit.
    """
    global _CONTROLLER
    try:
        if _CONTROLLER is None:
            with _CONTROLLER_LOCK:
                if _CONTROLLER is None:
                    from threadpoolctl import ThreadpoolController

                    _CONTROLLER = ThreadpoolController()
        return cast(
            contextlib.AbstractContextManager[Any], _CONTROLLER.limit(limits=1, user_api="blas")
        )
    except Exception:  # pragma: no cover - threadpoolctl missing or failing: run as is
        return contextlib.nullcontext()


@dataclass(frozen=True)
class EmbeddedConfig:
    """Training settings of the embedded classifier (part of the model fingerprint)."""

    embedder: str = "use-multilingual"
    oos_label: str = FALLBACK_INTENT
    feature_sets: tuple[str, ...] = ("embedding", "embedding+char")
    """Candidates chosen between on validation data."""
    c_grid: tuple[float, ...] = (3.0, 10.0, 30.0)
    char_ngram: tuple[int, int] = (1, 4)
    char_weight: float = 0.5
    """Scale of the TF-IDF block relative to the unit-length embedding."""
    cv_folds: int = 5
    max_cv_examples: int = 4000
    """Above this many training examples, a stratified hold-out replaces cross-validation."""
    holdout_fraction: float = 0.1
    seed: int = 13
    max_iter: int = 2000
    threshold: float | None = None
    """Fixed out-of-scope threshold; None = chosen on validation data."""
    builtin_negatives: bool = True
    """Use ``nlu/off_topic.txt`` as out-of-scope examples when the data has none."""
    negatives_holdout: float = 0.3
    """Share of the built-in negatives held out for the threshold (given validation data)."""
    negatives_conflict: float = 0.8
    """Built-in negatives with a cosine ≥ this to a training example are dropped."""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["feature_sets"] = list(self.feature_sets)
        data["c_grid"] = list(self.c_grid)
        data["char_ngram"] = list(self.char_ngram)
        return data


def _sklearn_version() -> str:
    import sklearn

    return str(sklearn.__version__)


def data_fingerprint(files: Sequence[Path], config: EmbeddedConfig) -> str:
    """Hash of the data files' names and bytes, the config, the embedder and library versions."""
    digest = hashlib.sha256()
    digest.update(f"format={MODEL_FORMAT};sklearn={_sklearn_version()}".encode())
    digest.update(json.dumps(config.to_json(), sort_keys=True).encode())
    if config.builtin_negatives and OFF_TOPIC_FILE.is_file():
        digest.update(b"off-topic\0" + OFF_TOPIC_FILE.read_bytes() + b"\0")
    for path in sorted(files, key=lambda p: p.name):
        digest.update(path.name.encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


@functools.lru_cache(maxsize=4)
def nlu_embedder(spec: str) -> Embedder:
    """The embedder for intent classification (one per process and spec, loaded lazily).

    The multilingual USE gets its own single-threaded instance: one short message gains
    nothing from two BLAS threads, and on a busy 2-core machine the second thread made a
    parse ~10x slower (measured: 98 ms vs 12 ms median under load). The knowledge base keeps
    its multi-threaded instance for batches. Costs ~115 MB more memory when both are loaded.
    Other specs share the knowledge base's instance (:func:`get_embedder`).
    """
    if spec in ("use-multilingual", "use"):
        return UseMultilingualEmbedder(threads=1)
    return get_embedder(spec)


# --- validation-time helpers -----------------------------------------------------------


def _softmax(logits: FloatArray, temperature: float = 1.0) -> FloatArray:
    z = logits / max(temperature, 1e-6)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: FloatArray = e / e.sum(axis=1, keepdims=True)
    return out


def fit_temperature(logits: FloatArray, gold: npt.NDArray[np.int64]) -> float:
    """The temperature minimising the negative log-likelihood of `gold` (golden-section)."""
    if len(gold) == 0:
        return 1.0

    def nll(log_t: float) -> float:
        probs = _softmax(logits, math.exp(log_t))
        return float(-np.mean(np.log(probs[np.arange(len(gold)), gold] + 1e-12)))

    lo, hi = math.log(0.05), math.log(20.0)
    ratio = (math.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(a), nll(b)
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(b)
    return float(math.exp((lo + hi) / 2))


def decide(
    probs: FloatArray, labels: Sequence[str], oos_label: str | None, threshold: float
) -> list[str]:
    """Argmax intents, with in-scope predictions below `threshold` turned into `oos_label`."""
    top = probs.argmax(axis=1)
    out = []
    for row, index in enumerate(top):
        label = labels[index]
        if oos_label is not None and label != oos_label and probs[row, index] < threshold:
            label = oos_label
        out.append(label)
    return out


def oos_scores(
    gold: Sequence[str], predicted: Sequence[str], oos_label: str
) -> tuple[float, float]:
    """(in-scope accuracy, out-of-scope recall); recall is NaN when there is no oos example."""
    in_scope = [(g, p) for g, p in zip(gold, predicted, strict=True) if g != oos_label]
    oos = [(g, p) for g, p in zip(gold, predicted, strict=True) if g == oos_label]
    in_acc = sum(g == p for g, p in in_scope) / len(in_scope) if in_scope else math.nan
    recall = sum(p == oos_label for _, p in oos) / len(oos) if oos else math.nan
    return in_acc, recall


def choose_threshold(
    probs: FloatArray, labels: Sequence[str], gold: Sequence[str], oos_label: str | None
) -> tuple[float, float]:
    """(threshold, objective) maximising mean(in-scope accuracy, oos recall) on validation.

    Without out-of-scope validation examples there is nothing to trade off: the threshold
    is 0 and the objective is plain accuracy.
    """
    if oos_label is None or oos_label not in gold:
        predicted = decide(probs, labels, None, 0.0)
        return 0.0, sum(g == p for g, p in zip(gold, predicted, strict=True)) / max(1, len(gold))
    candidates = np.unique(np.round(probs.max(axis=1), 4))
    candidates = np.concatenate(([0.0], candidates[candidates < 0.999]))
    if len(candidates) > 200:
        candidates = np.unique(np.quantile(candidates, np.linspace(0, 1, 200)))
    best = (0.0, -1.0)
    for threshold in candidates:
        predicted = decide(probs, labels, oos_label, float(threshold))
        in_acc, recall = oos_scores(gold, predicted, oos_label)
        objective = (0.0 if math.isnan(in_acc) else in_acc) / 2 + recall / 2
        if objective > best[1] + 1e-9:
            best = (float(threshold), objective)
    return best


# --- features and model ----------------------------------------------------------------


class _Featurizer:
    """Embedding (+ weighted TF-IDF char n-grams) feature matrix."""

    def __init__(self, use_char: bool, config: EmbeddedConfig) -> None:
        self.use_char = use_char
        self.char_weight = config.char_weight
        self.vectorizer: Any = None
        if use_char:
            from sklearn.feature_extraction.text import TfidfVectorizer

            self.vectorizer = TfidfVectorizer(
                analyzer="char_wb",
                ngram_range=config.char_ngram,
                lowercase=True,
                sublinear_tf=True,
                min_df=1,
                max_features=200_000,
                dtype=np.float32,
            )

    def fit(self, texts: Sequence[str]) -> _Featurizer:
        if self.vectorizer is not None:
            self.vectorizer.fit(list(texts))
        return self

    def transform(self, texts: Sequence[str], embeddings: npt.NDArray[np.float32]) -> Any:
        if self.vectorizer is None:
            return embeddings
        import scipy.sparse as sp

        tfidf = self.vectorizer.transform(list(texts)) * self.char_weight
        return sp.hstack([sp.csr_matrix(embeddings), tfidf], format="csr")


def _fit_linear(features: Any, y: npt.NDArray[np.int64], c: float, config: EmbeddedConfig) -> Any:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, max_iter=config.max_iter, random_state=config.seed)
    with single_threaded_blas():
        model.fit(features, y)
    return model


def _full_logits(model: Any, features: Any, n_labels: int) -> FloatArray:
    """Decision values for all labels (classes missing from a fold get -inf-like scores)."""
    limit = single_threaded_blas() if features.shape[0] > 64 else contextlib.nullcontext()
    with limit:
        scores = np.asarray(model.decision_function(features), dtype=np.float64)
    classes = np.asarray(model.classes_)
    if scores.ndim == 1:  # binary problem
        scores = np.stack([-scores, scores], axis=1) / 2
    out = np.full((scores.shape[0], n_labels), -1e4, dtype=np.float64)
    out[:, classes] = scores
    return out


@dataclass
class TrainingReport:
    """What training chose and how it scored on validation data."""

    n_train: int
    n_validation: int
    validation: str
    """``cv-5``, ``holdout-0.1`` or ``given``."""
    feature_set: str
    c: float
    temperature: float
    threshold: float
    validation_accuracy: float
    validation_objective: float
    seconds: float
    candidates: list[dict[str, Any]] = field(default_factory=list)
    negatives: dict[str, Any] = field(default_factory=dict)
    """Built-in off-topic negatives used (counts), empty when the data had its own."""


class EmbeddedModel:
    """A trained embedded classifier: predicts calibrated intent probabilities and entities."""

    backend_name = "embedded"

    def __init__(
        self,
        *,
        labels: list[str],
        linear: Any,
        featurizer: _Featurizer,
        temperature: float,
        threshold: float,
        config: EmbeddedConfig,
        entity_rules: dict[str, Any],
        fingerprint: str,
        report: TrainingReport,
        embedder: Embedder | None = None,
    ) -> None:
        self.labels = labels
        self.linear = linear
        self.featurizer = featurizer
        self.temperature = temperature
        self.threshold = threshold
        self.config = config
        self.entity_rules = entity_rules
        """Regexes, lookup tables, synonyms and gazetteers the entity extractor is built from."""
        self.extractor = RuleEntityExtractor(**entity_rules)
        self.fingerprint = fingerprint
        self.report = report
        self._embedder = embedder

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = nlu_embedder(self.config.embedder)
        return self._embedder

    def use_embedder(self, embedder: Embedder) -> None:
        """Embed with `embedder` from now on (same model name; e.g. after a cached training)."""
        self._embedder = embedder

    @property
    def oos_label(self) -> str:
        return self.config.oos_label

    def predict_proba(self, texts: Sequence[str]) -> FloatArray:
        """Calibrated probabilities, one row per text, columns in :attr:`labels` order."""
        embeddings = self.embedder.encode(list(texts))
        features = self.featurizer.transform(texts, embeddings)
        logits = _full_logits(self.linear, features, len(self.labels))
        return _softmax(logits, self.temperature)

    def parse_prepared(self, text: str, probs: FloatArray | None = None) -> ParseResult:
        """Parse already-cleaned `text` (see :func:`nlu.text.prepare_text`)."""
        started = time.perf_counter()
        row = (probs if probs is not None else self.predict_proba([text]))[0]
        order = np.argsort(-row)
        top_label = self.labels[int(order[0])]
        top_p = float(row[order[0]])
        intent, confidence = top_label, top_p
        if top_label != self.oos_label and top_p < self.threshold:
            intent, confidence = self.oos_label, 1.0 - top_p
        ranking = [
            IntentScore(name=self.labels[int(i)], confidence=float(min(1.0, max(0.0, row[i]))))
            for i in order[:10]
        ]
        return ParseResult(
            text=text,
            intent=intent,
            confidence=float(min(1.0, max(0.0, confidence))),
            ranking=ranking,
            entities=self.extractor.extract(text),
            backend=self.backend_name,
            language=detect_language(text),
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    def parse(self, raw: str, max_chars: int = DEFAULT_MAX_CHARS) -> ParseResult:
        """Parse a raw message synchronously (input hygiene included; never raises on text)."""
        prepared = prepare_text(raw, max_chars)
        if not prepared.has_content:
            return ParseResult(
                text=prepared.text,
                intent=self.oos_label,
                confidence=1.0,
                ranking=[IntentScore(name=self.oos_label, confidence=1.0)],
                backend="input",
                notes=list(prepared.notes),
            )
        result = self.parse_prepared(prepared.text)
        return result.model_copy(
            update={"notes": list(prepared.notes), "truncated": prepared.truncated}
        )

    def predict(self, texts: Sequence[str], batch_size: int = 256) -> list[str]:
        """Decided intents (threshold applied) for many texts (evaluation helper)."""
        out: list[str] = []
        for i in range(0, len(texts), batch_size):
            chunk = [prepare_text(t).text or " " for t in texts[i : i + batch_size]]
            probs = self.predict_proba(chunk)
            out.extend(decide(probs, self.labels, self.oos_label, self.threshold))
        return out

    # --- persistence -------------------------------------------------------------------

    def save(self, model_dir: Path) -> Path:
        """Write the model and its fingerprint file into `model_dir`."""
        import joblib

        model_dir.mkdir(parents=True, exist_ok=True)
        path = model_dir / MODEL_FILE
        payload = {
            "format": MODEL_FORMAT,
            "labels": self.labels,
            "linear": self.linear,
            "featurizer": self.featurizer,
            "temperature": self.temperature,
            "threshold": self.threshold,
            "config": self.config.to_json(),
            "entity_rules": self.entity_rules,
            "fingerprint": self.fingerprint,
            "report": asdict(self.report),
        }
        tmp = path.with_suffix(".tmp")
        joblib.dump(payload, tmp, compress=3)
        tmp.replace(path)
        (model_dir / FINGERPRINT_FILE).write_text(
            json.dumps(
                {
                    "fingerprint": self.fingerprint,
                    "embedder": self.config.embedder,
                    "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "report": asdict(self.report),
                },
                indent=2,
            ),
            encoding="utf-8",
        )
        return path

    @classmethod
    def load(cls, model_dir: Path, embedder: Embedder | None = None) -> EmbeddedModel:
        """Load a saved model (no fingerprint check; see :func:`load_or_train`)."""
        import joblib

        payload = joblib.load(model_dir / MODEL_FILE)
        if payload.get("format") != MODEL_FORMAT:
            raise ValueError(
                f"{model_dir}: model format {payload.get('format')} is not {MODEL_FORMAT}"
            )
        raw_config = dict(payload["config"])
        for key in ("feature_sets", "c_grid", "char_ngram"):
            raw_config[key] = tuple(raw_config[key])
        config = EmbeddedConfig(**raw_config)
        model = cls(
            labels=list(payload["labels"]),
            linear=payload["linear"],
            featurizer=payload["featurizer"],
            temperature=float(payload["temperature"]),
            threshold=float(payload["threshold"]),
            config=config,
            entity_rules=dict(payload["entity_rules"]),
            fingerprint=str(payload["fingerprint"]),
            report=TrainingReport(**payload["report"]),
            embedder=embedder,
        )
        return model


# --- built-in out-of-scope negatives ---------------------------------------------------


def load_off_topic(path: Path = OFF_TOPIC_FILE) -> list[str]:
    """The built-in off-topic messages (one per line; ``#`` comments and blanks skipped)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return list(dict.fromkeys(s for s in (line.strip() for line in lines) if s and s[0] != "#"))


def split_off_topic(
    texts: Sequence[str], holdout_fraction: float, seed: int
) -> tuple[list[str], list[str]]:
    """(train, held out): a seeded shuffle per language, so both halves stay bilingual."""
    rng = np.random.default_rng(seed)
    train: list[str] = []
    held: list[str] = []
    for lang in ("zh", "en"):
        group = [t for t in texts if detect_language(t) == lang]
        order = rng.permutation(len(group))
        cut = round(len(group) * holdout_fraction)
        held.extend(group[i] for i in sorted(order[:cut]))
        train.extend(group[i] for i in sorted(order[cut:]))
    return train, held


def builtin_negatives(
    embedder: Embedder,
    train_embeddings: npt.NDArray[np.float32],
    config: EmbeddedConfig,
    path: Path = OFF_TOPIC_FILE,
) -> tuple[list[str], npt.NDArray[np.float32], dict[str, Any]]:
    """The built-in negatives that do not collide with the training data, embedded.

    A negative whose cosine to some training example is ≥ ``config.negatives_conflict``
    is dropped: if the vendor trained "what's the weather" as an intent, weather is in
    scope for that bot. Returns (texts, embeddings, counts for the training report).
    """
    texts = [prepare_text(t).text or " " for t in load_off_topic(path)]
    emb = embedder.encode(texts)
    keep = np.ones(len(texts), dtype=bool)
    if len(train_embeddings):
        with single_threaded_blas():
            best = np.zeros(len(texts), dtype=np.float32)
            for start in range(0, len(train_embeddings), 4096):
                block = train_embeddings[start : start + 4096]
                best = np.maximum(best, (emb @ block.T).max(axis=1))
        keep = best < config.negatives_conflict
    kept = [t for t, k in zip(texts, keep, strict=True) if k]
    info = {"file": path.name, "total": len(texts), "dropped_as_in_scope": int((~keep).sum())}
    return kept, emb[keep], info


def _validation_splits(
    y: npt.NDArray[np.int64], config: EmbeddedConfig
) -> tuple[str, list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]]]:
    """Cross-validation folds for small data, one stratified hold-out split for large data."""
    from sklearn.model_selection import StratifiedKFold, StratifiedShuffleSplit

    counts = np.bincount(y)
    present = counts[counts > 0]
    if len(y) <= config.max_cv_examples:
        folds = int(min(config.cv_folds, present.min())) if len(present) else 0
        if folds >= 2:
            splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=config.seed)
            return f"cv-{folds}", [(tr, va) for tr, va in splitter.split(np.zeros(len(y)), y)]
    if present.min() >= 2:
        shuffle = StratifiedShuffleSplit(
            n_splits=1, test_size=config.holdout_fraction, random_state=config.seed
        )
        return f"holdout-{config.holdout_fraction}", list(shuffle.split(np.zeros(len(y)), y))
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(y))
    cut = max(1, int(len(y) * config.holdout_fraction))
    return f"holdout-{config.holdout_fraction}", [(order[cut:], order[:cut])]


def train_embedded(
    data: NluData,
    config: EmbeddedConfig | None = None,
    *,
    validation: NluData | None = None,
    refit_with_validation: bool = False,
    embedder: Embedder | None = None,
    fingerprint: str = "",
    progress: Callable[[str], None] | None = None,
) -> EmbeddedModel:
    """Train on `data`; choose features, C, temperature and threshold on validation data.

    Validation data is `validation` when given (the final model is trained on `data` only,
    or on both with `refit_with_validation`), else out-of-fold predictions of a
    cross-validation on `data` (or a stratified hold-out for large data), after which the
    final model is trained on all of `data`.
    """
    config = config or EmbeddedConfig()
    started = time.perf_counter()
    say = progress or (lambda message: log.info("%s", message))
    embedder = embedder or nlu_embedder(config.embedder)
    texts = [prepare_text(e.text).text or " " for e in data.examples]
    if not texts:
        raise ValueError("no training examples")
    intents = [e.intent for e in data.examples]
    val_intents = [e.intent for e in validation.examples] if validation else []
    if len(set(intents) | set(val_intents)) < 2:
        raise ValueError("need at least two intents to train a classifier")
    say(f"embedding {len(texts)} training examples with {embedder.name}")
    emb = embedder.encode(texts)
    given = validation is not None and bool(validation.examples)
    val_texts: list[str] = []
    emb_val = emb[:0]
    if given:
        assert validation is not None
        val_texts = [prepare_text(e.text).text or " " for e in validation.examples]
        emb_val = embedder.encode(val_texts)

    # No out-of-scope examples: the built-in off-topic messages stand in for them.
    negatives_report: dict[str, Any] = {}
    if config.builtin_negatives and config.oos_label not in set(intents) | set(val_intents):
        neg_texts, neg_emb, negatives_report = builtin_negatives(embedder, emb, config)
        neg_train, neg_held = (
            split_off_topic(neg_texts, config.negatives_holdout, config.seed)
            if given
            else (neg_texts, [])
        )
        row_of = {t: i for i, t in enumerate(neg_texts)}
        train_rows = [row_of[t] for t in neg_train]
        held_rows = [row_of[t] for t in neg_held]
        texts = texts + neg_train
        emb = np.vstack([emb, neg_emb[train_rows]]).astype(np.float32)
        intents = intents + [config.oos_label] * len(neg_train)
        if given:
            val_texts = val_texts + neg_held
            emb_val = np.vstack([emb_val, neg_emb[held_rows]]).astype(np.float32)
            val_intents = val_intents + [config.oos_label] * len(neg_held)
        negatives_report.update(train=len(neg_train), validation=len(neg_held))
        say(
            f"no {config.oos_label} examples: using {len(neg_texts)} built-in off-topic "
            f"messages ({len(neg_train)} train, {len(neg_held)} validation; "
            f"{negatives_report['dropped_as_in_scope']} dropped as too close to the data)"
        )

    label_names = sorted(set(intents) | set(val_intents))
    index = {name: i for i, name in enumerate(label_names)}
    y = np.array([index[i] for i in intents], dtype=np.int64)
    if len(label_names) < 2:
        raise ValueError("need at least two intents to train a classifier")
    if given:
        y_val = np.array([index[i] for i in val_intents], dtype=np.int64)
        scheme = "given"
    else:
        y_val = np.zeros(0, dtype=np.int64)
        scheme, splits = _validation_splits(y, config)

    oos = config.oos_label if config.oos_label in label_names else None
    candidates: list[dict[str, Any]] = []
    best: tuple[float, str, float, FloatArray, npt.NDArray[np.int64]] | None = None
    best_fitted: tuple[_Featurizer, Any] | None = None  # with given validation data
    for feature_set in config.feature_sets:
        use_char = feature_set.endswith("+char")
        for c in config.c_grid:
            if scheme == "given":
                featurizer = _Featurizer(use_char, config).fit(texts)
                model = _fit_linear(featurizer.transform(texts, emb), y, c, config)
                logits = _full_logits(
                    model, featurizer.transform(val_texts, emb_val), len(label_names)
                )
                gold = y_val
            else:
                logits = np.zeros((len(y), len(label_names)))
                covered = np.zeros(len(y), dtype=bool)
                for tr, va in splits:
                    tr_texts = [texts[i] for i in tr]
                    featurizer = _Featurizer(use_char, config).fit(tr_texts)
                    model = _fit_linear(featurizer.transform(tr_texts, emb[tr]), y[tr], c, config)
                    va_texts = [texts[i] for i in va]
                    logits[va] = _full_logits(
                        model, featurizer.transform(va_texts, emb[va]), len(label_names)
                    )
                    covered[va] = True
                logits, gold = logits[covered], y[covered]
            probs = _softmax(logits)
            gold_names = [label_names[i] for i in gold]
            _, objective = choose_threshold(probs, label_names, gold_names, oos)
            accuracy = float(np.mean(probs.argmax(axis=1) == gold))
            candidates.append(
                {"feature_set": feature_set, "c": c, "accuracy": accuracy, "objective": objective}
            )
            say(
                f"{feature_set} C={c}: validation accuracy {accuracy:.4f}, "
                f"objective {objective:.4f}"
            )
            if best is None or objective > best[0] + 1e-9:
                best = (objective, feature_set, c, logits, gold)
                if scheme == "given":
                    best_fitted = (featurizer, model)
    assert best is not None
    objective, feature_set, c, logits, gold = best
    temperature = fit_temperature(logits, gold)
    calibrated = _softmax(logits, temperature)
    gold_names = [label_names[i] for i in gold]
    if config.threshold is not None:
        threshold = config.threshold
    else:
        threshold, objective = choose_threshold(calibrated, label_names, gold_names, oos)
    val_accuracy = float(
        np.mean(
            [
                g == p
                for g, p in zip(
                    gold_names, decide(calibrated, label_names, oos, threshold), strict=True
                )
            ]
        )
    )

    # The final model.
    final_texts, final_emb, final_y = texts, emb, y
    if scheme == "given" and refit_with_validation:
        final_texts = texts + val_texts
        final_emb = np.vstack([emb, emb_val])
        final_y = np.concatenate([y, y_val])
    if best_fitted is not None and not refit_with_validation:
        featurizer, linear = best_fitted  # already trained on exactly the final data
    else:
        featurizer = _Featurizer(feature_set.endswith("+char"), config).fit(final_texts)
        say(f"training the final model ({feature_set}, C={c}) on {len(final_texts)} examples")
        linear = _fit_linear(featurizer.transform(final_texts, final_emb), final_y, c, config)
    report = TrainingReport(
        n_train=len(final_texts),
        n_validation=len(gold),
        validation=scheme,
        feature_set=feature_set,
        c=c,
        temperature=temperature,
        threshold=threshold,
        validation_accuracy=val_accuracy,
        validation_objective=objective,
        seconds=time.perf_counter() - started,
        candidates=candidates,
        negatives=negatives_report,
    )
    model = EmbeddedModel(
        labels=label_names,
        linear=linear,
        featurizer=featurizer,
        temperature=temperature,
        threshold=threshold,
        config=config,
        entity_rules=entity_rules(data),
        fingerprint=fingerprint,
        report=report,
        embedder=embedder,
    )
    return model


def load_or_train(
    data_path: Path,
    model_dir: Path,
    config: EmbeddedConfig | None = None,
    *,
    embedder: Embedder | None = None,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> tuple[EmbeddedModel, bool]:
    """The model for `data_path` from `model_dir`, retrained when missing or stale.

    Returns (model, trained): `trained` is True when training ran (no model, a fingerprint
    mismatch, an unreadable file, or `force`).
    """
    config = config or EmbeddedConfig()
    fingerprint = data_fingerprint(nlu_files(data_path), config)
    fp_file = model_dir / FINGERPRINT_FILE
    if not force and (model_dir / MODEL_FILE).is_file() and fp_file.is_file():
        try:
            stored = json.loads(fp_file.read_text(encoding="utf-8")).get("fingerprint")
            if stored == fingerprint:
                model = EmbeddedModel.load(model_dir, embedder)
                if model.fingerprint == fingerprint:
                    return model, False
            log.info("embedded NLU model in %s is stale: retraining", model_dir)
        except Exception as exc:  # a corrupt or incompatible file: retrain, never crash
            log.warning("cannot load the embedded NLU model in %s (%s): retraining", model_dir, exc)
    model = train_embedded(
        load_nlu_data(data_path),
        config,
        embedder=embedder,
        fingerprint=fingerprint,
        progress=progress,
    )
    model.save(model_dir)
    return model, True


class EmbeddedParser:
    """Lazy, thread-safe holder of the embedded model (loads or trains on first use)."""

    backend_name = "embedded"

    def __init__(
        self,
        data_path: Path,
        model_dir: Path,
        config: EmbeddedConfig | None = None,
        *,
        embedder: Embedder | None = None,
        max_chars: int = DEFAULT_MAX_CHARS,
        model: EmbeddedModel | None = None,
    ) -> None:
        self.data_path = data_path
        self.model_dir = model_dir
        self.config = config or EmbeddedConfig()
        self.max_chars = max_chars
        self._embedder = embedder
        self._model = model
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def model(self) -> EmbeddedModel:
        """The model (loading, or training when stale, on first call)."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model, _ = load_or_train(
                        self.data_path, self.model_dir, self.config, embedder=self._embedder
                    )
        return self._model

    def parse_sync(self, raw: str) -> ParseResult:
        """Parse a raw message (blocking)."""
        return self.model().parse(raw, self.max_chars)
