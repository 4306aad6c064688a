"""The dense side of the knowledge base: faiss indexes over unit-length vectors.

Inner product on L2-normalised vectors is cosine similarity. The index type is chosen by
size (`kb.index_type: auto`): an exact `IndexFlatIP` (wrapped in `IndexIDMap2` so that
faiss ids are our chunk ids) up to `kb.exact_index_max` vectors, HNSW above (chosen from
`benchmarks/kb_scale.py`: at 1,000,000 × 512-d it meets p95 ≤ 20 ms with recall@10 ≥ 0.95
on 2 cores, which exact search cannot). IVF is available for deployments that prefer
lower memory and faster builds.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

IndexType = Literal["auto", "flat", "hnsw", "ivf"]
Ids = npt.NDArray[np.int64]
Matrix = npt.NDArray[np.float32]


@dataclass(frozen=True)
class IndexParams:
    """How to build and search a faiss index (mirrors the `kb.*` index settings)."""

    index_type: IndexType = "auto"
    exact_index_max: int = 200_000
    hnsw_m: int = 32
    hnsw_ef_construction: int = 80
    hnsw_ef_search: int = 256
    ivf_nlist: int = 0  # 0 = 4 * sqrt(n), rounded to a power of two
    ivf_nprobe: int = 32
    ivf_train_max: int = 200_000  # k-means trains on at most this many vectors

    def resolve(self, n: int) -> Literal["flat", "hnsw", "ivf"]:
        """The concrete index type for `n` vectors."""
        if self.index_type != "auto":
            return self.index_type
        return "flat" if n <= self.exact_index_max else "hnsw"

    def nlist_for(self, n: int) -> int:
        """Number of IVF lists for `n` vectors (at least 1, at most n // 39)."""
        if self.ivf_nlist > 0:
            nlist = self.ivf_nlist
        else:
            target = 4 * max(1.0, float(np.sqrt(n)))
            nlist = 1 << round(float(np.log2(target)))
        return max(1, min(nlist, max(1, n // 39)))


def _faiss() -> Any:
    import faiss

    return faiss


def set_threads(threads: int) -> None:
    """Limit faiss' OpenMP threads (the bot shares the machine with other work)."""
    _faiss().omp_set_num_threads(max(1, threads))


_omp_lock = threading.Lock()


@contextlib.contextmanager
def _single_thread() -> Iterator[None]:
    """Run a small search on one OpenMP thread.

    A one-query search gains nothing from a thread team, and on a busy machine waking the
    team costs tens of milliseconds (measured: 63 ms instead of 0.1 ms for 1k vectors).
    """
    faiss = _faiss()
    with _omp_lock:
        previous = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            yield
        finally:
            faiss.omp_set_num_threads(previous)


def build_index(vectors: Matrix, ids: Ids, params: IndexParams) -> Any:
    """A faiss index holding `vectors` under the external ids `ids` (inner product)."""
    faiss = _faiss()
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    if vectors.ndim != 2 or len(vectors) != len(ids):
        raise ValueError("vectors must be (n, dim) with one id per row")
    n, dim = vectors.shape
    kind = params.resolve(n)
    inner: Any
    if kind == "flat":
        inner = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        inner = faiss.IndexHNSWFlat(dim, params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = params.hnsw_ef_construction
        inner.hnsw.efSearch = params.hnsw_ef_search
    else:
        nlist = params.nlist_for(max(n, 1))
        quantizer = faiss.IndexFlatIP(dim)
        inner = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        if n:
            rng = np.random.default_rng(0)
            sample = vectors
            if n > params.ivf_train_max:
                sample = vectors[np.sort(rng.choice(n, params.ivf_train_max, replace=False))]
            inner.train(sample)
        inner.nprobe = min(params.ivf_nprobe, nlist)
    index = faiss.IndexIDMap2(inner)
    if n:
        index.add_with_ids(vectors, ids)
    return index


def index_kind(index: Any) -> str:
    """`flat`, `hnsw` or `ivf` for an index made by `build_index`."""
    faiss = _faiss()
    inner = faiss.downcast_index(index.index) if hasattr(index, "index") else index
    if isinstance(inner, faiss.IndexHNSW):
        return "hnsw"
    if isinstance(inner, faiss.IndexIVF):
        return "ivf"
    return "flat"


def configure_search(index: Any, params: IndexParams) -> None:
    """Apply search-time parameters (HNSW efSearch, IVF nprobe) to a loaded index."""
    faiss = _faiss()
    inner = faiss.downcast_index(index.index)
    if isinstance(inner, faiss.IndexHNSW):
        inner.hnsw.efSearch = params.hnsw_ef_search
    elif isinstance(inner, faiss.IndexIVF):
        inner.nprobe = params.ivf_nprobe


def search(
    index: Any, queries: Matrix, k: int, allowed_ids: Ids | None = None
) -> tuple[Matrix, Ids]:
    """Top-`k` (scores, ids) per query; `allowed_ids` restricts the search to those ids.

    Missing results (fewer than k vectors, or filtered out) have id -1.
    """
    faiss = _faiss()
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    k = max(1, min(k, int(index.ntotal) or 1))
    if int(index.ntotal) == 0:
        return (
            np.full((len(queries), k), -np.inf, dtype=np.float32),
            np.full((len(queries), k), -1, dtype=np.int64),
        )
    small = len(queries) <= 4
    if allowed_ids is None:
        with _single_thread() if small else contextlib.nullcontext():
            scores, ids = index.search(queries, k)
    else:
        selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed_ids, dtype=np.int64))
        kind = index_kind(index)
        inner = faiss.downcast_index(index.index)
        sp: Any
        if kind == "hnsw":
            sp = faiss.SearchParametersHNSW(sel=selector, efSearch=inner.hnsw.efSearch)
        elif kind == "ivf":
            sp = faiss.SearchParametersIVF(sel=selector, nprobe=inner.nprobe)
        else:
            sp = faiss.SearchParameters(sel=selector)
        with _single_thread() if small else contextlib.nullcontext():
            scores, ids = index.search(queries, k, params=sp)
    return scores.astype(np.float32), ids.astype(np.int64)


def save_index(index: Any, path: Path) -> None:
    """Write the index to `path` (the caller makes the directory swap atomic)."""
    _faiss().write_index(index, str(path))


def load_index(path: Path, params: IndexParams | None = None) -> Any:
    """Read an index fully into memory and apply the search parameters."""
    index = _faiss().read_index(str(path))
    if params is not None:
        configure_search(index, params)
    return index
