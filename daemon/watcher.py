"""Watching the models folder for stable ``<name>/v<n>.pt`` checkpoints.

watchdog events are a hint, a periodic full scan is the truth (inotify drops
events on overflow, and an observer thread can die). Either way a candidate
path is *poked*; ``settle_s`` after the last poke its ``(size, mtime_ns,
inode)`` must be unchanged and it must read as a complete zip archive (torch
checkpoints are zips with the central directory at the end, so a half-copied
file fails). Only then is ``on_stable(path, stat)`` awaited, once per file
state: a scan that finds the same state again does nothing. A file that stays
unchanged but incomplete for ``incomplete_grace_s`` is truncated or corrupt,
not being written: ``on_incomplete(path, stat)`` is awaited for it, once per
file state (a later rewrite is handled normally).

The observer thread only hands paths to the event loop; it never does I/O.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import zipfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from evaluation.models import NAME_RE, version_of

log = logging.getLogger(__name__)
FileState = tuple[int, int, int]  # size, mtime_ns, inode
OnStable = Callable[[Path, FileState], Awaitable[bool]]


def candidate(root: Path, path: Path) -> bool:
    """Whether ``path`` names ``<root>/<name>/v<n>.pt`` (by name only; no I/O)."""
    try:
        rel = path.relative_to(root)
    except ValueError:
        return False
    return len(rel.parts) == 2 and bool(NAME_RE.match(rel.parts[0])) and version_of(path) is not None


def file_state(path: Path) -> FileState | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def is_complete_zip(path: Path) -> bool:
    """Cheap completeness test: the zip's central directory reads (it is written last)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return len(zf.namelist()) > 0
    except (OSError, zipfile.BadZipFile, EOFError, ValueError):
        return False


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        try:
            if event.is_directory:
                if event.event_type in ("created", "moved"):
                    self.watcher.hint_rescan()
                return
            for raw in (event.src_path, getattr(event, "dest_path", "")):
                if raw:
                    self.watcher.hint(Path(os.fsdecode(raw)))
        except Exception:  # noqa: BLE001 - an exception here would kill the observer thread
            log.exception("watcher event handler failed")


class Watcher:
    """See module contract."""

    def __init__(self, root: Path, settle_s: float, on_stable: OnStable,
                 on_incomplete: OnStable | None = None) -> None:
        self.root = root
        self.settle_s = settle_s
        self.on_stable = on_stable
        self.on_incomplete = on_incomplete
        self.incomplete_grace_s = max(5.0, 10 * settle_s)
        self._incomplete: dict[Path, tuple[FileState, float]] = {}  # state, when first seen incomplete
        self.events = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._observer: Observer | None = None  # type: ignore[valid-type]
        self._timers: dict[Path, asyncio.TimerHandle] = {}
        self._pending: dict[Path, FileState | None] = {}
        self._done: dict[Path, FileState] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._checking: set[Path] = set()  # settled paths being checked now: a scan leaves them alone
        self._rescan: asyncio.TimerHandle | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.root.mkdir(parents=True, exist_ok=True)
        observer = Observer()
        observer.schedule(_Handler(self), str(self.root), recursive=True)
        observer.daemon = True
        observer.start()
        self._observer = observer

    async def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            await asyncio.to_thread(self._observer.join, 10)
            self._observer = None
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        if self._rescan is not None:
            self._rescan.cancel()
            self._rescan = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def healthy(self) -> bool:
        return self._observer is not None and self._observer.is_alive()

    # -- from the observer thread --------------------------------------------------------------
    def hint(self, path: Path) -> None:
        if candidate(self.root, path) and self._loop is not None:
            self._loop.call_soon_threadsafe(self.poke, path)

    def hint_rescan(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._schedule_rescan)

    def _schedule_rescan(self) -> None:
        """One scan a settle period after a burst of new folders, not one scan per folder."""
        if self._rescan is None and self._loop is not None:
            self._rescan = self._loop.call_later(self.settle_s, self._rescan_now)

    def _rescan_now(self) -> None:
        self._rescan = None
        self._spawn(self.scan())

    # -- on the loop ---------------------------------------------------------------------------
    def poke(self, path: Path) -> None:
        """(Re)start ``path``'s settle timer."""
        self.events += 1
        timer = self._timers.pop(path, None)
        if timer is not None:
            timer.cancel()
        self._pending[path] = file_state(path)
        assert self._loop is not None
        self._timers[path] = self._loop.call_later(self.settle_s, self._settled, path)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _settled(self, path: Path) -> None:
        self._timers.pop(path, None)
        self._checking.add(path)
        self._spawn(self._checked(path))

    async def _checked(self, path: Path) -> None:
        try:
            await self._check(path)
        finally:
            self._checking.discard(path)

    async def _check(self, path: Path) -> None:
        before = self._pending.pop(path, None)
        now = file_state(path)
        if now is None:
            return  # gone (moved away or deleted)
        if now != before:
            self.poke(path)  # still changing: wait another settle period
            return
        if self._done.get(path) == now:
            return
        if not await asyncio.to_thread(is_complete_zip, path):
            seen = self._incomplete.get(path)
            if seen is None or seen[0] != now:
                self._incomplete[path] = (now, time.monotonic())
            elif self.on_incomplete is not None and time.monotonic() - seen[1] >= self.incomplete_grace_s:
                try:
                    if await self.on_incomplete(path, now):
                        self._done[path] = now
                except Exception:  # noqa: BLE001 - one bad file must not stop the watcher
                    log.exception("watcher: reporting incomplete %s failed", path)
                return
            log.info("watcher: %s is stable but not a complete zip yet; waiting for more writes", path)
            return
        self._incomplete.pop(path, None)
        try:
            if await self.on_stable(path, now):
                self._done[path] = now
        except Exception:  # noqa: BLE001 - one bad file must not stop the watcher
            log.exception("watcher: handling %s failed", path)

    async def scan(self) -> int:
        """Poke every candidate whose state was not handled yet; returns how many were poked."""
        found = await asyncio.to_thread(self._list_candidates)
        poked = 0
        for path, state in found:
            if self._done.get(path) != state and path not in self._timers and path not in self._checking:
                self.poke(path)
                poked += 1
        return poked

    def _list_candidates(self) -> list[tuple[Path, FileState]]:
        out = []
        try:
            model_dirs = sorted(os.scandir(self.root), key=lambda e: e.name)
        except OSError:
            return out
        for entry in model_dirs:
            if not entry.is_dir(follow_symlinks=False) or not NAME_RE.match(entry.name):
                continue
            try:
                files = list(os.scandir(entry.path))
            except OSError:
                continue
            for f in sorted(files, key=lambda e: version_of(Path(e.name)) or 0):
                path = Path(f.path)
                if version_of(path) is not None:
                    state = file_state(path)
                    if state is not None:
                        out.append((path, state))
        return out
