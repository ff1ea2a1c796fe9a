"""One daemon per home: a second ``vision-evald`` on the same database or models root refuses to start.

Real processes: a first daemon runs (its own port); a second one, on another
port, sharing only the database or only the models root, exits with status 2
and a line naming the first one's pid, before touching the database (the
first daemon's queued job is left alone). After a kill -9 of the first, the
lock files stay behind but no longer block: a new daemon starts, and its
clean stop (SIGTERM) leaves no ``eval.db-wal`` behind.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
from pathlib import Path

import pytest

from daemon.app.home_lock import HomeLock, lock_paths
from tests.daemon_fixtures import Daemon, free_port, vision_evald_command, write_toml
from vocab.errors import HomeInUse


def _held(path: Path) -> bool:
    """Whether some open file holds an flock on ``path`` (a non-blocking try from a new descriptor)."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_a_second_lock_on_either_path_is_refused_and_holds_nothing(tmp_path: Path) -> None:
    first = HomeLock(tmp_path / "a" / "eval.db", tmp_path / "models")
    first.acquire()
    try:
        for db, models in ((tmp_path / "a" / "eval.db", tmp_path / "other"),
                           (tmp_path / "b" / "eval.db", tmp_path / "models")):
            second = HomeLock(db, models)
            with pytest.raises(HomeInUse, match=f"pid {os.getpid()}"):
                second.acquire()
            own = [p for p in second.paths if p not in first.paths]
            assert len(own) == 1 and (not own[0].exists() or not _held(own[0]))
        assert all(_held(p) for p in first.paths)
    finally:
        first.release()
    assert not any(_held(p) for p in first.paths)
    assert [p.read_text() for p in first.paths] == [f"{os.getpid()}\n"] * 2


def _second(tmp_path: Path, name: str, *, db: Path, models: Path) -> subprocess.CompletedProcess[str]:
    cfg = write_toml(tmp_path / f"{name}.toml", {
        "server": {"port": free_port()},
        "paths": {"models_root": str(models), "db_path": str(db), "state_dir": str(tmp_path / f"{name}-state")},
        "workers": {"device": "cpu"}, "watch": {"enabled": False},
    })
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISION_EVALD_")}
    return subprocess.run([*vision_evald_command(), "--config", str(cfg)], env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def test_a_second_daemon_on_the_same_home_exits_2_naming_the_first(tmp_path: Path) -> None:
    first = Daemon(tmp_path / "home")
    try:
        first.start(wait_workers=False)
        jobs_before = first.query("SELECT id, status, attempts FROM jobs")
        for name, db, models in (("same-db", first.db_path, tmp_path / "other-models"),
                                 ("same-models", tmp_path / "other" / "eval.db", first.models_root)):
            proc = _second(tmp_path, name, db=db, models=models)
            assert proc.returncode == 2, (name, proc.returncode, proc.stderr[-2000:])
            lines = [ln for ln in proc.stderr.splitlines() if f"pid {first.pid}" in ln]
            assert len(lines) == 1 and "already running" in lines[0], proc.stderr[-2000:]
            first.assert_alive()
        assert first.query("SELECT id, status, attempts FROM jobs") == jobs_before
        assert not (tmp_path / "other" / "eval.db").exists()  # refused before opening its database
        assert first.health()["ok"] is True

        first.kill9()  # the lock files stay, the locks go with the process
        assert all(p.exists() for p in lock_paths(first.db_path, first.models_root))
        assert first.db_path.with_name("eval.db-wal").exists()  # what a kill -9 leaves
        first.start(wait_workers=False)
        first.assert_alive()
        first.stop()  # SIGTERM: a clean stop checkpoints and closes the database
        assert first.proc is not None and first.proc.returncode == 0, first.log_tail()
        assert first.db_path.is_file() and not first.db_path.with_name("eval.db-wal").exists()
        assert "vision-evald stopped" in first.log()
    finally:
        first.stop()
