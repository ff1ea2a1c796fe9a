"""Watching the models folder for stable ``<name>/v<n>.pt`` checkpoints.

watchdog events are a hint, a periodic full scan is the truth (inotify drops
events on overflow, and an observer thread can die). Either way a candidate
path is *poked*. Reads are not writes: opens and closes without a write are
not even hints, and a poke restarts the path's settle timer only when the
file's identity (device, inode, size, mtime) differs from the last look, so a file
that another process (a backup, an indexer, our own hashing) reads in a
loop still settles. ``settle_s`` after the last change the state must be
unchanged and the file must read as a complete zip archive (torch
checkpoints are zips with the central directory at the end, so a half-copied
file fails). Only then is ``on_stable(path, stat)`` awaited, once per file
state: a scan that finds the same state again does nothing. A file that stays
unchanged but incomplete for ``incomplete_grace_s`` is truncated or corrupt,
not being written: ``on_incomplete(path, stat)`` is awaited for it, once per
file state (a later rewrite is handled normally).

A path that has waited longer than ``WAIT_VISIBLE_PERIODS`` settle periods
is listed, with why, by ``waiting(name)``. Entries the watcher ignores (a
model folder that is a link, a folder name it does not accept, a ``v01.pt``
style name) are reported once each through ``on_ignored(path, model, reason)``,
and once more with reason None when they are gone.

The observer thread only hands paths to the event loop; it never does I/O.
File reads (listing, zip checks) run on ``pool``, the watcher's own threads.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
import zipfile
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from watchdog.events import (
    EVENT_TYPE_CLOSED_NO_WRITE,
    EVENT_TYPE_OPENED,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from evaluation.model_resolution import version_of
from vocab.files import FileIdentity, identity_of, is_model_name

log = logging.getLogger(__name__)
FileState = FileIdentity  # a checkpoint's state: the same file, unchanged, has the same identity
OnStable = Callable[[Path, FileState], Awaitable[bool]]
OnIgnored = Callable[[Path, str, str | None], Awaitable[None]]  # path, model, reason (None: not any more)
T = TypeVar("T")
# Events of a read: never a reason to look at a file again.
READ_EVENTS = frozenset({EVENT_TYPE_OPENED, EVENT_TYPE_CLOSED_NO_WRITE})
# A path waiting longer than this many settle periods is shown (with why) by ``waiting``.
WAIT_VISIBLE_PERIODS = 3
# A name that looks like a version but is not one the watcher accepts (v01.pt, v0.pt, V2.pt).
_VERSION_LIKE = re.compile(r"^v[0-9]+\.pt$", re.IGNORECASE)


def candidate(root: Path, path: Path) -> bool:
    """Whether ``path`` names ``<root>/<name>/v<n>.pt`` (by name only; no I/O)."""
    try:
        rel = path.relative_to(root)
    except ValueError:
        return False
    return len(rel.parts) == 2 and is_model_name(rel.parts[0]) and version_of(path) is not None


def file_state(path: Path) -> FileState | None:
    """The state of a checkpoint file: its identity (``vocab.files.identity_of``); None when it is gone."""
    return identity_of(path)


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
            if event.event_type in READ_EVENTS:
                return
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
                 on_incomplete: OnStable | None = None, on_ignored: OnIgnored | None = None,
                 pool: ThreadPoolExecutor | None = None,
                 relook: Callable[[], Awaitable[list[Path]]] | None = None) -> None:
        """``relook``: asked at each scan for handled paths to look at again although their bytes did not
        change (their dataset or export did: ``daemon.watch.ingest.Ingest.relook``)."""
        self.root = root
        self.settle_s = settle_s
        self.on_stable = on_stable
        self.on_incomplete = on_incomplete
        self.on_ignored = on_ignored
        self.pool = pool
        self.relook = relook
        self.incomplete_grace_s = max(5.0, 10 * settle_s)
        self._incomplete: dict[Path, tuple[FileState, float]] = {}  # state, when first seen incomplete
        self.events = 0
        self.scans = 0  # full scans completed (the periodic rescans and the first one)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._observer: Observer | None = None  # type: ignore[valid-type]
        self._timers: dict[Path, asyncio.TimerHandle] = {}
        self._pending: dict[Path, FileState | None] = {}
        self._done: dict[Path, FileState] = {}
        self._waiting: dict[Path, tuple[float, str]] = {}  # since (monotonic), why: paths not handled yet
        self._ignored: dict[Path, tuple[str, str]] = {}  # (model, reason) reported once each
        self._tasks: set[asyncio.Future[Any]] = set()
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

    def quiet(self) -> bool:
        """No settle timer is running and no check is in flight: nothing more happens until a new event
        or scan."""
        return not self._timers and not self._checking and not self._tasks

    async def _io(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking file I/O on the watcher's own threads (the default executor without a pool)."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

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
    def poke(self, path: Path) -> bool:
        """Look at ``path`` now: (re)start its settle timer if its state changed since the last look
        (or it has no timer). Returns whether a timer was (re)started."""
        self.events += 1
        state = file_state(path)
        if path in self._timers and self._pending.get(path) == state:
            return False  # unchanged since the last look (a read, an attribute change): keep settling
        timer = self._timers.pop(path, None)
        if timer is not None:
            timer.cancel()
            self._wait(path, "being written: its size, mtime or inode changed at the last look")
        else:
            self._wait(path, "settling: waiting for it to stay unchanged for settle_seconds")
        self._pending[path] = state
        assert self._loop is not None
        self._timers[path] = self._loop.call_later(self.settle_s, self._settled, path)
        return True

    def forget(self, path: Path) -> None:
        """Consider ``path`` again at the next scan, even in the state it was handled in."""
        self._done.pop(path, None)

    def _wait(self, path: Path, why: str) -> None:
        since = self._waiting.get(path, (time.monotonic(), ""))[0]
        self._waiting[path] = (since, why)

    def _finished(self, path: Path, state: FileState | None) -> None:
        """``path`` needs nothing more in ``state`` (None: it is gone)."""
        self._waiting.pop(path, None)
        if state is not None:
            self._done[path] = state

    def waiting(self, name: str) -> list[dict[str, Any]]:
        """Checkpoints of model ``name`` waiting longer than WAIT_VISIBLE_PERIODS settle periods, with why."""
        now = time.monotonic()
        limit = WAIT_VISIBLE_PERIODS * self.settle_s
        return [{"path": str(p), "waiting_s": round(now - since, 1), "reason": why}
                for p, (since, why) in sorted(self._waiting.items())
                if p.parent.name == name and now - since > limit]

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task: asyncio.Future[Any] = asyncio.ensure_future(coro)
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
            self._finished(path, None)
            return  # gone (moved away or deleted)
        if now != before:
            self.poke(path)  # still changing: wait another settle period
            return
        if self._done.get(path) == now:
            self._finished(path, now)
            return
        if not await self._io(is_complete_zip, path):
            await self._not_complete(path, now)
            return
        self._incomplete.pop(path, None)
        self._wait(path, "stable and complete: being queued")
        try:
            if await self.on_stable(path, now):
                self._finished(path, now)
            else:
                self._wait(path, "not queued yet: see its skipped entry or its checkpoint state")
        except Exception:  # noqa: BLE001 - one bad file must not stop the watcher
            log.exception("watcher: handling %s failed", path)

    async def _not_complete(self, path: Path, now: FileState) -> None:
        """A stable file that is not a complete zip: more writes may come; reported once after a grace."""
        seen = self._incomplete.get(path)
        if seen is None or seen[0] != now:
            self._incomplete[path] = (now, time.monotonic())
        elif self.on_incomplete is not None and time.monotonic() - seen[1] >= self.incomplete_grace_s:
            try:
                if await self.on_incomplete(path, now):
                    self._finished(path, now)
            except Exception:  # noqa: BLE001 - one bad file must not stop the watcher
                log.exception("watcher: reporting incomplete %s failed", path)
            return
        self._wait(path, "stable but not a complete zip archive yet: waiting for more writes")
        log.info("watcher: %s is stable but not a complete zip yet; waiting for more writes", path)

    async def scan(self) -> int:
        """Look at every candidate whose state was not handled yet; returns how many timers it (re)started.

        A path whose timer runs is left to it only while its state is the one the timer waits for."""
        for path in await self.relook() if self.relook is not None else []:
            self.forget(path)
        found, ignored = await self._io(self._list_candidates)
        await self._report_ignored(ignored)
        present = {path for path, _ in found}
        for path in [p for p in self._waiting if p not in present and p not in self._timers]:
            del self._waiting[path]  # gone
        poked = 0
        for path, state in found:
            if self._done.get(path) != state and path not in self._checking:
                poked += self.poke(path)
        self.scans += 1
        return poked

    async def _report_ignored(self, ignored: dict[Path, tuple[str, str]]) -> None:
        """Report each newly ignored entry once (log and ``on_ignored``); forget those gone."""
        changes: list[tuple[Path, str, str | None]] = []
        for path in [p for p in self._ignored if p not in ignored]:
            changes.append((path, self._ignored.pop(path)[0], None))  # gone (renamed, removed): cleared
        for path, entry in ignored.items():
            if self._ignored.get(path) != entry:
                self._ignored[path] = entry
                log.warning("watcher: ignoring %s: %s", path, entry[1])
                changes.append((path, *entry))
        for path, name, reason in changes:
            if self.on_ignored is not None:
                try:
                    await self.on_ignored(path, name, reason)
                except Exception:  # noqa: BLE001 - a report must not stop the scan
                    log.exception("watcher: recording ignored %s failed", path)

    def _list_candidates(self) -> tuple[list[tuple[Path, FileState]], dict[Path, tuple[str, str]]]:
        """Candidates with their state, and ignored entries as {path: (model name, reason)}."""
        out: list[tuple[Path, FileState]] = []
        ignored: dict[Path, tuple[str, str]] = {}
        try:
            model_dirs = sorted(os.scandir(self.root), key=lambda e: e.name)
        except OSError:
            return out, ignored
        for entry in model_dirs:
            why = _ignored_folder(entry)
            if why is not None:
                ignored[Path(entry.path)] = (entry.name, why)
                continue
            if not entry.is_dir(follow_symlinks=False):
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
                elif _VERSION_LIKE.match(f.name):
                    why = (f"{f.name} is not a version name the watcher accepts: use v<n>.pt with n from 1, "
                           "without leading zeros (e.g. v1.pt)")
                    ignored[path] = (entry.name, why)
        return out, ignored


def _ignored_folder(entry: os.DirEntry[str]) -> str | None:
    """Why a model-folder candidate under the root is ignored (None: it is not). Hidden entries and
    plain files (the database, its WAL) are not model folders and not reported."""
    if entry.name.startswith("."):
        return None
    if entry.is_symlink():
        if entry.is_dir():
            return ("the model folder is a symbolic link; the watcher does not follow links: "
                    "put the checkpoints in a real folder under the models root")
        return None
    if entry.is_dir(follow_symlinks=False) and not is_model_name(entry.name):
        return ("the folder name is not a model name the watcher accepts: use 1-128 letters, digits, "
                "'.', '_' or '-', starting with a letter or digit")
    return None
