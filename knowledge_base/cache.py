"""An on-disk embedding cache for evaluation and benchmarks (not used by the bot).

`CachingEmbedder` wraps any `Embedder`; vectors are keyed by the SHA-1 of the text and
stored per embedder name in one `.npz` file. Re-running an evaluation over the same corpus
then embeds only texts it has not seen. Queries timed for latency must not go through it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from knowledge_base.embedders import Embedder, Vectors


class CachingEmbedder:
    """Embedder wrapper that remembers vectors on disk (call `save()` to persist)."""

    def __init__(self, inner: Embedder, cache_dir: Path) -> None:
        self.inner = inner
        safe = re.sub(r"[^\w.-]+", "_", inner.name)
        self.path = Path(cache_dir) / f"{safe}.npz"
        self._store: dict[str, np.ndarray] = {}
        if self.path.exists():
            with np.load(self.path) as data:
                self._store = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))
        self._dirty = False

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dim(self) -> int:
        return self.inner.dim

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> Vectors:
        keys = [hashlib.sha1(t.encode("utf-8")).hexdigest() for t in texts]
        missing = sorted(
            {k: t for k, t in zip(keys, texts, strict=True) if k not in self._store}.items()
        )
        if missing:
            vectors = self.inner.encode([t for _, t in missing], batch_size)
            for (key, _), vec in zip(missing, vectors, strict=True):
                self._store[key] = vec
            self._dirty = True
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.vstack([self._store[k] for k in keys]).astype(np.float32)

    def save(self) -> None:
        if not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = np.array(list(self._store.keys()))
        vectors = np.vstack(list(self._store.values())).astype(np.float32)
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, keys=keys, vectors=vectors)
        tmp.replace(self.path)
        self._dirty = False
