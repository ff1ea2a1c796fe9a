"""The watcher against readers and ignored entries (issue 15, items 3 and 5's traces).

A ``Watcher`` on its own event loop with its real observer thread over a real
folder (no daemon); the reader is a separate real process that opens, reads
and closes the checkpoint in a loop, as a backup tool or ``sha256sum`` would.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

from daemon.watch.watcher import WAIT_VISIBLE_PERIODS, Watcher, file_state
from tests.daemon_fixtures import STRONG_PT
from tests.watch_fixtures import copy_file

READER = (
    "import sys, time\n"
    "n = 0\n"
    "end = time.monotonic() + float(sys.argv[2])\n"
    "while time.monotonic() < end:\n"
    "    with open(sys.argv[1], 'rb') as f:\n"
    "        f.read()\n"
    "    n += 1\n"
    "    time.sleep(float(sys.argv[3]))\n"
    "print(n)\n"
)


def start_reader(path: Path, seconds: float, every_s: float) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", READER, str(path), str(seconds), str(every_s)],
                            stdout=subprocess.PIPE, text=True)


async def wait_until(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def test_a_checkpoint_read_in_a_loop_still_settles(tmp_path: Path) -> None:
    """A reader opening and reading the file four times per settle period: the file is still reported
    (once), while the reader is still going; with reads taken as writes it would never settle."""
    root = tmp_path / "models"
    target = copy_file(STRONG_PT, root / "det" / "v1.pt")
    calls: list[tuple[Path, tuple[int, int, int]]] = []

    async def on_stable(path: Path, state: tuple[int, int, int]) -> bool:
        calls.append((path, state))
        return True

    settle = 0.4
    watcher = Watcher(root, settle, on_stable)
    watcher.start()
    reader = start_reader(target, seconds=12 * settle + 20, every_s=settle / 4)
    try:
        await asyncio.sleep(0.3)  # the reader's loop is under way before the watcher first looks
        assert await watcher.scan() == 1
        assert await wait_until(lambda: bool(calls), 10 * settle + 20), "a file that is only read never settled"
        assert reader.poll() is None, "the reader stopped before the file settled: the test proves nothing"
        assert await watcher.scan() == 0  # handled in its current state, reads or not
    finally:
        reader.kill()
        reader.wait()
        await watcher.stop()
    assert calls == [(target, file_state(target))]


async def test_a_file_that_keeps_changing_is_shown_waiting_with_why(tmp_path: Path) -> None:
    root = tmp_path / "models"
    target = root / "det" / "v1.pt"
    target.parent.mkdir(parents=True)

    async def on_stable(path: Path, state: tuple[int, int, int]) -> bool:
        return True

    settle = 0.2
    watcher = Watcher(root, settle, on_stable)
    watcher.start()
    try:
        with open(target, "wb") as f:
            end = time.monotonic() + (WAIT_VISIBLE_PERIODS + 2) * settle
            while time.monotonic() < end:
                f.write(b"x" * 100)
                f.flush()
                await asyncio.sleep(settle / 4)
            waiting = watcher.waiting("det")
        assert [w["path"] for w in waiting] == [str(target)], waiting
        assert "being written" in waiting[0]["reason"], waiting
        assert waiting[0]["waiting_s"] > WAIT_VISIBLE_PERIODS * settle
        assert watcher.waiting("other") == []
        # Written out (not a zip): shown as stable but incomplete.
        assert await wait_until(lambda: "not a complete zip" in (watcher.waiting("det") or [{}])[0].get("reason", ""),
                                10)
    finally:
        await watcher.stop()


async def test_ignored_entries_are_reported_once_each_with_the_reason(tmp_path: Path) -> None:
    root = tmp_path / "models"
    outside = tmp_path / "elsewhere"
    copy_file(STRONG_PT, outside / "v1.pt")
    root.mkdir()
    (root / "linked").symlink_to(outside, target_is_directory=True)
    copy_file(STRONG_PT, root / "bad name" / "v1.pt")
    copy_file(STRONG_PT, root / "det" / "v01.pt")
    copy_file(STRONG_PT, root / "det" / "V2.pt")
    copy_file(STRONG_PT, root / "det" / "best.pt")  # an ordinary other file: not reported
    (root / ".hidden").mkdir()  # hidden: not a model folder, not reported
    (root / "eval.db").write_bytes(b"")  # a plain file under the root: not reported
    reports: list[tuple[Path, str, str | None]] = []

    async def on_ignored(path: Path, name: str, reason: str | None) -> None:
        reports.append((path, name, reason))

    async def on_stable(path: Path, state: tuple[int, int, int]) -> bool:
        raise AssertionError(f"{path} is not a checkpoint the watcher accepts")

    watcher = Watcher(root, 0.1, on_stable, on_ignored=on_ignored)
    assert await watcher.scan() == 0
    assert await watcher.scan() == 0  # a second scan reports nothing again
    by_path = {p: (n, r) for p, n, r in reports}
    assert len(reports) == 4 == len(by_path), reports
    assert "symbolic link" in by_path[root / "linked"][1]
    assert by_path[root / "bad name"][0] == "bad name" and "folder name" in by_path[root / "bad name"][1]
    assert by_path[root / "det" / "v01.pt"][0] == "det" and "leading zeros" in by_path[root / "det" / "v01.pt"][1]
    assert root / "det" / "V2.pt" in by_path
    (root / "det" / "v01.pt").unlink()
    (root / "det" / "v01.pt").write_bytes(b"again")
    assert await watcher.scan() == 0
    assert len(reports) == 4  # same entry, same reason: still once
    (root / "det" / "v01.pt").rename(root / "det" / "v1.txt")  # renamed away: its report is withdrawn
    assert await watcher.scan() == 0
    assert reports[4:] == [(root / "det" / "v01.pt", "det", None)]
