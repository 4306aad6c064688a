"""Index versions on disk and the atomic `CURRENT` pointer.

Layout of `kb.index_dir`:

    CURRENT                  JSON manifest of the live version (replaced with os.replace)
    versions/v000007/        one complete index version (faiss.index, vectors.npy, ...)
    .ingest.lock             held by the one ingestion that may publish at a time

Publishing writes a new version into a temporary directory, renames it into `versions/`,
fsyncs, and only then replaces `CURRENT`. Readers check `CURRENT`'s stat (cheap) and load a
new version completely before they switch to it, so nobody sees a half-written index.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from knowledge_base.index import KbIndex
from knowledge_base.vectors import IndexParams

POINTER = "CURRENT"
VERSIONS = "versions"


class IndexStore:
    """Versioned index directories under one root, with an atomic pointer."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def pointer(self) -> Path:
        return self.root / POINTER

    def version_dir(self, version: str) -> Path:
        return self.root / VERSIONS / version

    def pointer_stamp(self) -> tuple[int, int, int] | None:
        """(inode, mtime_ns, size) of CURRENT, or None when there is no index yet."""
        try:
            st = os.stat(self.pointer)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def current_manifest(self) -> dict[str, Any] | None:
        """The live version's manifest, or None before the first ingest."""
        try:
            data = json.loads(self.pointer.read_text())
        except FileNotFoundError:
            return None
        if not isinstance(data, dict) or "version" not in data:
            raise ValueError(f"{self.pointer}: not an index manifest")
        return data

    def load(self, version: str, params: IndexParams | None = None) -> KbIndex:
        return KbIndex.load(self.version_dir(version), params)

    def load_current(self, params: IndexParams | None = None) -> KbIndex | None:
        manifest = self.current_manifest()
        return None if manifest is None else self.load(str(manifest["version"]), params)

    def next_version(self) -> tuple[str, int]:
        manifest = self.current_manifest()
        seq = int(manifest.get("seq", 0)) + 1 if manifest else 1
        existing = self.root / VERSIONS
        if existing.is_dir():
            for child in existing.iterdir():
                if child.name.startswith("v") and child.name[1:].isdigit():
                    seq = max(seq, int(child.name[1:]) + 1)
        return f"v{seq:06d}", seq

    def write_version(self, index: KbIndex) -> Path:
        """Write `index` as a complete version directory (not live until `publish`)."""
        version = str(index.manifest["version"])
        final = self.version_dir(version)
        tmp = self.root / VERSIONS / f".tmp-{version}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        try:
            index.save(tmp)
            _fsync_tree(tmp)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            _fsync_dir(final.parent)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final

    def publish(self, manifest: dict[str, Any]) -> None:
        """Atomically make `manifest['version']` the live version."""
        if not self.version_dir(str(manifest["version"])).is_dir():
            raise FileNotFoundError(f"version {manifest['version']} was not written")
        tmp = self.root / f".{POINTER}.{uuid.uuid4().hex[:8]}"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(manifest, indent=2))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.pointer)
        _fsync_dir(self.root)

    def discard(self, version: str) -> None:
        shutil.rmtree(self.version_dir(version), ignore_errors=True)

    def collect_garbage(self, keep: int) -> list[str]:
        """Delete all but the newest `keep` versions (never the live one)."""
        base = self.root / VERSIONS
        if not base.is_dir():
            return []
        live = (self.current_manifest() or {}).get("version")
        versions = sorted(p.name for p in base.iterdir() if p.name.startswith("v"))
        removed = []
        for name in versions[: max(0, len(versions) - max(1, keep))]:
            if name != live:
                shutil.rmtree(base / name, ignore_errors=True)
                removed.append(name)
        for tmp in base.glob(".tmp-*"):
            if time.time() - tmp.stat().st_mtime > 3600:
                shutil.rmtree(tmp, ignore_errors=True)
        return removed

    @contextlib.contextmanager
    def ingest_lock(self, timeout_s: float = 600.0) -> Iterator[None]:
        """Only one ingestion publishes at a time (a file lock, also across processes)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".ingest.lock", "a+") as fh:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise TimeoutError("another ingestion holds the index lock") from None
                    time.sleep(0.2)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    for child in path.rglob("*"):
        if child.is_file():
            fd = os.open(child, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    _fsync_dir(path)
