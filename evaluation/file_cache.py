"""Values read from files, reused while those files are unchanged (cached by file identity).

A ``FileCache`` maps a key (what was asked: a path and options) to a value and
the paths it was read from. A lookup is a hit while every one of those paths
keeps its identity (``vocab.files.identity``: device, inode, size, mtime in
nanoseconds; a missing path is part of the signature too, so a label file
appearing is a change, and a folder's mtime covers files added to it or
removed from it). A value read from a path modified within ``RACY_WINDOW_S``
before the read began is returned but never cached: file-system timestamps
are coarse (a write in the same tick as the read could keep the identity),
which is git's "racily clean" rule.

Thread-safe. Concurrent callers of one key compute it once: the others wait
for that result (or compute it themselves if it could not be cached). Bounded:
the least recently used entries go first.

``file_sha256`` hashes a file; ``sha256`` is the same through the
process-wide cache of file hashes (``sha256_if_exists``: None for a missing
file), and ``cached_sha256`` its lookup for a file already identified (an open
file's ``fstat``).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from vocab.files import FileIdentity, identity, identity_of

V = TypeVar("V")
RACY_WINDOW_S = 2.0  # wider than any file system's timestamp granularity, and than small clock skews
Signature = tuple[FileIdentity | None, ...]


def signature(paths: Iterable[str | Path]) -> Signature:
    """The identities of ``paths`` (None for one that cannot be stat'ed), in order."""
    out: list[FileIdentity | None] = []
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            out.append(None)
        else:
            out.append(identity(st))
    return tuple(out)


def settled(sig: Signature, before: float) -> bool:
    """Whether every existing path of ``sig`` was last modified ``RACY_WINDOW_S`` before ``before`` (a
    ``time.time()``)."""
    limit = int((before - RACY_WINDOW_S) * 1e9)
    return all(ident is None or ident[3] < limit for ident in sig)


@dataclass
class _Entry(Generic[V]):
    paths: tuple[str, ...]
    signature: Signature
    value: V
    checked: float  # time.monotonic() when the last check that found the paths unchanged began


class FileCache(Generic[V]):
    """See module contract. ``compute`` returns the value and the paths it was read from."""

    def __init__(self, max_entries: int = 64) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, _Entry[V]] = OrderedDict()
        self._key_locks: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], tuple[V, Sequence[Path]]], since: float | None = None) -> V:
        """The value of ``key``: cached while its paths are unchanged, else ``compute()``d (once for all
        concurrent callers of ``key``). Exceptions of ``compute`` propagate and nothing is cached.

        ``since`` (a ``time.monotonic()``, e.g. when a request arrived): a check of the paths that began
        then or later answers for this call too, so that a burst of callers of one key shares one check.
        """
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                entry = self._entries.get(key)
            if entry is not None:
                if since is not None and entry.checked >= since:
                    return entry.value
                checking = time.monotonic()
                if signature(entry.paths) == entry.signature:
                    entry.checked = checking
                    with self._lock:
                        if key in self._entries:
                            self._entries.move_to_end(key)
                    return entry.value
            started, checking = time.time(), time.monotonic()
            value, paths = compute()
            names = tuple(map(str, paths))
            self.store(key, names, signature(names), value, started, checking)
            return value

    def store(self, key: Hashable, paths: tuple[str, ...], sig: Signature, value: V, started: float,
              checked: float | None = None) -> None:
        """Cache ``value`` of ``key``, read from ``paths`` whose identities were ``sig``, if those were settled
        when the read began (``started``, a ``time.time()``; ``checked``, the same as a ``time.monotonic()``);
        else forget ``key``."""
        with self._lock:
            if settled(sig, started):
                self._entries[key] = _Entry(paths, sig, value, time.monotonic() if checked is None else checked)
                self._entries.move_to_end(key)
                while len(self._entries) > self.max_entries:
                    old, _ = self._entries.popitem(last=False)
                    self._key_locks.pop(old, None)
            else:
                self._entries.pop(key, None)
            if len(self._key_locks) > 4 * self.max_entries:  # keys never cached: forget their locks
                self._key_locks = {k: lk for k, lk in self._key_locks.items() if k in self._entries}

    def peek(self, key: Hashable, sig: Signature) -> V | None:
        """The cached value of ``key`` if it was read from files of exactly the signature ``sig``, else None
        (reads no file)."""
        with self._lock:
            entry = self._entries.get(key)
        return entry.value if entry is not None and entry.signature == sig else None

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes, read in chunks (uncached)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


_SHAS: FileCache[str] = FileCache(max_entries=4096)


def sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, cached by its identity (FileNotFoundError for a missing file)."""
    p = Path(path)
    return _SHAS.get(("sha256", str(p)), lambda: (file_sha256(p), (p,)))


def sha256_if_exists(path: str | Path) -> str | None:
    """``sha256(path)``, or None when there is no such file (gone meanwhile, or never there)."""
    try:
        return sha256(path)
    except (FileNotFoundError, IsADirectoryError):
        return None


def cached_sha256(path: str | Path, ident: FileIdentity) -> str | None:
    """The cached sha256 of ``path`` if the cache holds it for exactly the file ``ident`` names, else None
    (never reads the file)."""
    return _SHAS.peek(("sha256", str(Path(path))), (ident,))


def remember_sha256(path: str | Path, ident: FileIdentity, sha: str, started: float) -> None:
    """Cache ``sha``, read from the file ``ident`` names by a read that began at ``started``, as the sha256
    of ``path`` (while ``path`` still names that file)."""
    p = Path(path)
    if identity_of(p) == ident:
        _SHAS.store(("sha256", str(p)), (str(p),), (ident,), sha, started)
