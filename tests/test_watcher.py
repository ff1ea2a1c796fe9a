"""The models-folder watcher (issue 4): real files in a real watched folder, a real daemon, real evaluations.

Unit level: ``daemon.watch.watcher.candidate`` (which names are checkpoints),
``is_complete_zip`` (a truncated checkpoint is not complete) and a
``Watcher`` on its own event loop with a recording callback (no daemon).

Daemon level: one real service for the module, in the test process
(``tests.inprocess.InProcessDaemon``: its watcher watches the real folder, its
worker tasks run in a thread; stopped and started again for the restart case;
watcher on, settle 0.5 s, rescans every second, ``[eval] imgsz = 320``),
a 16-image synthetic val set, each case on its own model name. A model's
dataset comes from its ``pipeline.json``, except ``pre`` (from
``[models.pre]`` in the config) and ``nodata`` (none at first). There is no
``[watch] default_dataset``. Nothing is mocked.
"""

from __future__ import annotations

import asyncio
import logging
import os
import zipfile
from pathlib import Path

import pytest

from daemon.watch.watcher import Watcher, candidate, file_state, is_complete_zip
from tests.daemon_fixtures import STRONG_PT, WEAK_PT, make_dataset
from tests.inprocess import InProcessDaemon
from tests.watch_fixtures import (
    SETTLE_S,
    WatchEnv,
    copy_chunked,
    copy_file,
    sha256_file,
    watch_config,
    write_pipeline,
)

# --------------------------------------------------------------------------- unit level


def test_candidate_accepts_only_name_slash_version_pt(tmp_path: Path) -> None:
    root = tmp_path / "models"
    yes = ["det/v1.pt", "det/v10.pt", "my-model_2.0/v123456789.pt", "A/v7.pt"]
    no = [
        "det/current.pt", "det/best.pt", "det/v1.txt", "det/v1.pt.part", "det/.v1.pt.tmp-1-ab",
        "det/v0.pt", "det/v01.pt", "det/V1.pt", "det/v1.PT", "det/v-1.pt", "det/v1234567890.pt",
        "v1.pt",  # directly under the root: no model folder
        "det/sub/v1.pt",  # too deep
        ".hidden/v1.pt", "-dash/v1.pt",  # not a valid model name
    ]
    for rel in yes:
        assert candidate(root, root / rel), rel
    for rel in no:
        assert not candidate(root, root / rel), rel
    assert not candidate(root, tmp_path / "elsewhere" / "det" / "v1.pt")  # outside the root
    assert not candidate(root, root.parent / "models2" / "det" / "v1.pt")


def test_is_complete_zip(tmp_path: Path) -> None:
    data = STRONG_PT.read_bytes()
    full = tmp_path / "full.pt"
    full.write_bytes(data)
    assert is_complete_zip(full)
    for cut in (len(data) // 2, len(data) - 22, len(data) - 1, 100):
        truncated = tmp_path / f"cut{cut}.pt"
        truncated.write_bytes(data[:cut])
        assert not is_complete_zip(truncated), f"a checkpoint cut at {cut} of {len(data)} bytes reads as complete"
    (tmp_path / "empty.pt").write_bytes(b"")
    assert not is_complete_zip(tmp_path / "empty.pt")
    (tmp_path / "text.pt").write_text("not a zip")
    assert not is_complete_zip(tmp_path / "text.pt")
    assert not is_complete_zip(tmp_path / "missing.pt")
    with zipfile.ZipFile(tmp_path / "no-entries.pt", "w"):
        pass
    assert not is_complete_zip(tmp_path / "no-entries.pt")


async def test_watcher_calls_back_once_per_complete_stable_file(tmp_path: Path) -> None:
    """A Watcher alone (its own observer thread, no daemon): a slow copy and a stalled copy are each
    reported exactly once, only when complete; a rescan of handled files reports nothing."""
    root = tmp_path / "models"
    calls: list[tuple[Path, tuple[int, int, int], bool]] = []

    async def on_stable(path: Path, state: tuple[int, int, int]) -> bool:
        calls.append((path, state, is_complete_zip(path)))
        return True

    settle = 0.4
    watcher = Watcher(root, settle, on_stable)
    watcher.start()
    try:
        slow = root / "det" / "v1.pt"
        await asyncio.to_thread(copy_chunked, STRONG_PT, slow, chunks=8, pause_s=settle / 4)
        stalled = root / "det" / "v2.pt"
        await asyncio.to_thread(copy_chunked, WEAK_PT, stalled, chunks=6, pause_s=0.05, stall_after=2,
                                stall_s=settle * 4)
        (root / "det" / "best.pt").write_bytes(STRONG_PT.read_bytes())  # not a candidate
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while len(calls) < 2 and loop.time() < deadline:
            await asyncio.sleep(0.05)
        assert await watcher.scan() == 0  # both handled in their current state: nothing to poke
        while not watcher.quiet():  # the last check winding down; once quiet, no timer is left to fire
            assert loop.time() < deadline, "the watcher never went quiet"
            await asyncio.sleep(0.01)
    finally:
        await watcher.stop()
    assert [(c[0], c[1], c[2]) for c in calls] == [
        (slow, file_state(slow), True),
        (stalled, file_state(stalled), True),
    ], calls
    assert sha256_file(slow) == sha256_file(STRONG_PT)


async def test_a_stop_during_a_rescan_logs_no_error(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The daemon's scheduler stopped while a rescan runs: apscheduler cancels the job's task, which must
    end quietly, not as an ERROR with a traceback. The rescan here is a coroutine that never finishes
    on its own (a stand-in for a slow ``Watcher.scan``, so the stop always meets it)."""
    from daemon.app.scheduler import build_scheduler
    from daemon.clock import utcnow
    from store.database import Database

    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def slow_rescan() -> int:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return 0

    db = Database(tmp_path / "eval.db")
    scheduler = build_scheduler(db, rescan=slow_rescan, rescan_interval_s=0.05, wal_interval_s=3600,
                                prune_interval_s=3600, retain_days=30, clock=utcnow)
    try:
        caplog.set_level(logging.INFO)
        scheduler.start()
        await asyncio.wait_for(started.wait(), 10)
        scheduler.shutdown(wait=False)
        await asyncio.wait_for(cancelled.wait(), 10)
        await asyncio.sleep(0.05)  # the executor's done-callback runs after the task ends
    finally:
        db.close()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


def test_a_job_cancelled_before_it_started_logs_no_error(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A stop can also cancel a rescan whose task was created but had not run yet (seen once in a test
    daemon's stop): apscheduler's executor then logs the CancelledError itself, as below (its
    ``_run_job_error``), with nothing of ours on the stack. It becomes one DEBUG line, without a traceback."""
    from daemon.app.scheduler import build_scheduler
    from daemon.clock import utcnow
    from store.database import Database

    async def rescan() -> int:
        return 0

    db = Database(tmp_path / "eval.db")
    try:
        build_scheduler(db, rescan=rescan, rescan_interval_s=1, wal_interval_s=3600, prune_interval_s=3600,
                        retain_days=30, clock=utcnow)
    finally:
        db.close()
    caplog.set_level(logging.DEBUG)
    cancelled = asyncio.CancelledError()
    logging.getLogger("apscheduler.executors.default").error(
        "Error running job %s", "rescan", exc_info=(type(cancelled), cancelled, None))
    logging.getLogger("apscheduler.executors.default").error("Error running job %s", "rescan",
                                                            exc_info=(ValueError, ValueError("real"), None))
    got = [(r.levelname, r.getMessage(), r.exc_info is not None) for r in caplog.records]
    assert got == [("DEBUG", "job rescan stopped by the scheduler's shutdown", False),
                   ("ERROR", "Error running job rescan", True)]  # a real failure stays an error


# --------------------------------------------------------------------------- a real service


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("watch")
    dataset = make_dataset(root / "data", n_val=16, seed=0)
    daemon = InProcessDaemon(root, config=watch_config(models={"pre": {"dataset": str(dataset)}}))
    copy_file(WEAK_PT, daemon.models_root / "pre" / "v1.pt")  # there before the daemon starts
    e = WatchEnv(daemon, dataset)
    try:
        daemon.start()
        yield e
    finally:
        daemon.stop()
    assert "Traceback" not in daemon.log(), daemon.log_tail(200)


def _only_job(env: WatchEnv, name: str, sha: str) -> dict:
    jobs = env.jobs(name)
    assert len(jobs) == 1, jobs
    job = jobs[0]
    assert (job["kind"], job["trigger"], job["status"]) == ("eval", "watcher", "completed"), job
    assert job["result"]["checkpoint_sha256"] == sha
    return job


@pytest.mark.ultralytics  # a real service evaluating with ultralytics
def test_version_present_at_startup_is_caught_up(env: WatchEnv) -> None:
    env.wait_completed("pre", 1)
    job = _only_job(env, "pre", sha256_file(WEAK_PT))
    assert job["params"]["model_version"] == 1
    assert job["params"]["dataset_path"] == str(env.dataset.resolve())  # from [models.pre] in the config
    assert job["result"]["promotion"]["decision"] == "promoted"  # first version of the model


@pytest.mark.ultralytics  # a real service evaluating with ultralytics
def test_slow_chunked_copy_is_evaluated_once_complete(env: WatchEnv) -> None:
    model_dir = env.models_root / "chunked"
    write_pipeline(model_dir, env.dataset)
    target = model_dir / "v1.pt"
    copy_chunked(STRONG_PT, target, chunks=10, pause_s=SETTLE_S * 0.4)  # every pause shorter than settle
    env.wait_completed("chunked", 1)
    env.wait_rescans(2)
    strong_sha = sha256_file(STRONG_PT)
    _only_job(env, "chunked", strong_sha)
    evals = env.evals("chunked")
    assert [e["checkpoint_sha256"] for e in evals] == [strong_sha]
    assert evals[0]["model_version"] == 1
    detail = env.model("chunked")
    assert detail["versions"][0]["sha256"] == strong_sha
    assert detail["current"] == {"sha256": strong_sha, "version": 1}
    assert detail["skipped"] == []


@pytest.mark.ultralytics  # a real service evaluating with ultralytics
def test_stalled_copy_waits_for_a_complete_zip(env: WatchEnv) -> None:
    """A copy that pauses longer than the settle time leaves a stable but truncated file: it must not be
    evaluated until the rest arrives."""
    model_dir = env.models_root / "stalled"
    write_pipeline(model_dir, env.dataset)
    target = model_dir / "v1.pt"
    mark = env.log_mark()
    copy_chunked(STRONG_PT, target, chunks=4, pause_s=0.05, stall_after=1, stall_s=SETTLE_S * 6)
    env.wait_log(f"watcher: {target} is stable but not a complete zip yet", after=mark, timeout=5)
    env.wait_completed("stalled", 1)
    env.wait_rescans(2)
    _only_job(env, "stalled", sha256_file(STRONG_PT))


@pytest.mark.ultralytics  # a real service evaluating with ultralytics
def test_atomic_rename_is_evaluated_once(env: WatchEnv) -> None:
    model_dir = env.models_root / "renamed"
    write_pipeline(model_dir, env.dataset)
    tmp = model_dir / "upload.pt.partial"
    copy_chunked(WEAK_PT, tmp, chunks=4, pause_s=0.05)
    os.rename(tmp, model_dir / "v2.pt")
    env.wait_completed("renamed", 1)
    env.wait_rescans(2)
    job = _only_job(env, "renamed", sha256_file(WEAK_PT))
    assert job["params"]["model_version"] == 2
    assert job["params"]["model_path"] == str((model_dir / "v2.pt").resolve())


@pytest.mark.ultralytics  # a real service evaluating with ultralytics
def test_same_bytes_as_a_new_version_are_not_evaluated_again(env: WatchEnv) -> None:
    model_dir = env.models_root / "dupe"
    write_pipeline(model_dir, env.dataset)
    copy_file(STRONG_PT, model_dir / "v1.pt")
    env.wait_completed("dupe", 1)
    strong_sha = sha256_file(STRONG_PT)
    mark = env.log_mark()
    copy_file(STRONG_PT, model_dir / "v2.pt")
    env.wait_log(f"watcher: {model_dir / 'v2.pt'} (sha256 {strong_sha[:12]}...) was already handled", after=mark)
    env.wait_rescans(2)
    _only_job(env, "dupe", strong_sha)
    assert len(env.evals("dupe")) == 1
    detail = env.model("dupe")
    assert [(v["version"], v["sha256"]) for v in detail["versions"]] == [(1, strong_sha), (2, strong_sha)]
    assert detail["skipped"] == []


@pytest.mark.ultralytics  # a real service evaluating with ultralytics
def test_other_files_and_an_outside_symlink_create_no_job(env: WatchEnv, tmp_path: Path) -> None:
    model_dir = env.models_root / "noise"
    write_pipeline(model_dir, env.dataset)
    copy_chunked(WEAK_PT, model_dir / "current.pt", chunks=3, pause_s=0.05)  # a write to current.pt
    for name in ("v5.pt.part", ".v6.pt.tmp-123-abcd", "best.pt", "v1.txt", "V7.pt", "v0.pt"):
        copy_file(STRONG_PT, model_dir / name)
    (model_dir / "v8.pt.part").write_bytes(STRONG_PT.read_bytes())
    os.rename(model_dir / "v8.pt.part", model_dir / "last.pt")  # a rename to a non-candidate name
    outside = tmp_path / "outside" / "evil.pt"  # a complete checkpoint, outside the models root
    copy_file(WEAK_PT, outside)
    link = model_dir / "v9.pt"
    link.symlink_to(outside)
    skipped = env.wait_skipped("noise", link)  # the link is looked at (after the other files were written)
    assert "link that leaves the models root" in skipped["reason"], skipped
    assert skipped["sha256"] is None  # never even hashed
    env.wait_rescans(2)
    assert env.jobs("noise") == []
    assert env.evals("noise") == []
    # v0.pt and V7.pt look like versions but are not ones: skipped entries with the reason (issue 15).
    assert [s["path"] for s in env.skipped("noise")] == [str(model_dir / n) for n in ("V7.pt", "v0.pt", "v9.pt")]
    assert all("not a version name" in s["reason"] for s in env.skipped("noise")[:2])
    assert env.daemon.query("SELECT * FROM promotions WHERE model_name = 'noise'") == []
    assert (model_dir / "current.pt").read_bytes() == WEAK_PT.read_bytes()  # nobody touched it


@pytest.mark.ultralytics  # a real service evaluating with ultralytics
def test_no_dataset_is_recorded_as_skipped_until_pipeline_json_appears(env: WatchEnv) -> None:
    model_dir = env.models_root / "nodata"
    target = model_dir / "v1.pt"
    copy_file(WEAK_PT, target)
    env.wait_skipped("nodata", target)
    (skipped,) = env.model("nodata")["skipped"]  # visible through the API, with the reason
    assert skipped["path"] == str(target)
    assert "no dataset for model nodata" in skipped["reason"], skipped
    assert "pipeline.json" in skipped["reason"] and "default_dataset" in skipped["reason"], skipped
    assert skipped["sha256"] == sha256_file(WEAK_PT)
    env.wait_rescans(1)
    assert env.jobs("nodata") == []

    write_pipeline(model_dir, env.dataset)  # the next scan finds a dataset
    env.wait_completed("nodata", 1)
    job = _only_job(env, "nodata", sha256_file(WEAK_PT))
    assert job["params"]["dataset_path"] == str(env.dataset.resolve())
    env.daemon.wait_for(lambda: env.model("nodata")["skipped"] == [], 30, "the skip record to be cleared")


@pytest.mark.ultralytics  # a real service evaluating with ultralytics
def test_restart_catches_up_new_versions_only(env: WatchEnv) -> None:
    """Stopped, a new version arrives; at start-up it is evaluated and the versions evaluated before are not."""
    env.wait_completed("pre", 1)
    before = env.all_jobs_count()
    env.daemon.stop()
    copy_file(STRONG_PT, env.models_root / "pre" / "v2.pt")
    mark = env.log_mark()
    env.daemon.start()
    jobs = env.wait_completed("pre", 2)
    env.wait_log(f"watcher: {env.models_root / 'pre' / 'v1.pt'} (sha256 {sha256_file(WEAK_PT)[:12]}...) "
                 "was already handled", after=mark)
    env.wait_rescans(2)
    jobs = env.jobs("pre")
    assert len(jobs) == 2, jobs
    assert jobs[1]["params"]["model_version"] == 2
    assert jobs[1]["result"]["checkpoint_sha256"] == sha256_file(STRONG_PT)
    assert jobs[1]["result"]["promotion"]["decision"] == "promoted"  # strong beats weak
    assert (env.models_root / "pre" / "current.pt").read_bytes() == STRONG_PT.read_bytes()
    assert env.all_jobs_count() == before + 1  # nothing evaluated before the restart was evaluated again


@pytest.mark.ultralytics  # a real service evaluating with ultralytics
def test_a_checkpoint_read_in_a_loop_by_another_process_is_evaluated_and_promoted(env: WatchEnv) -> None:
    """Issue 15: a reader (a backup, an indexer, sha256sum in a loop) opening and reading v1.pt five
    times per settle period must not keep it from settling."""
    import subprocess
    import sys

    from tests.test_watcher_reads import READER

    model_dir = env.models_root / "readloop"
    write_pipeline(model_dir, env.dataset)
    staged = copy_file(WEAK_PT, model_dir / "upload.partial")
    target = model_dir / "v1.pt"
    os.rename(staged, target)
    reader = subprocess.Popen([sys.executable, "-c", READER, str(target), "600", str(SETTLE_S / 5)],
                              stdout=subprocess.PIPE, text=True)
    try:
        env.wait_completed("readloop", 1)
        assert reader.poll() is None, "the reader stopped before the checkpoint was evaluated: proves nothing"
    finally:
        reader.kill()
        reader.wait()
    job = _only_job(env, "readloop", sha256_file(WEAK_PT))
    assert job["result"]["promotion"]["decision"] == "promoted"
    assert (model_dir / "current.pt").read_bytes() == WEAK_PT.read_bytes()


@pytest.mark.ultralytics  # a real service evaluating with ultralytics
def test_a_dataset_that_appears_after_the_checkpoint_is_evaluated_without_a_resubmission(env: WatchEnv) -> None:
    import shutil

    late = env.daemon.root / "late-data"
    model_dir = env.models_root / "latedata"
    write_pipeline(model_dir, late / env.dataset.name)  # not there yet
    target = copy_file(WEAK_PT, model_dir / "v1.pt")
    skipped = env.wait_skipped("latedata", target)
    assert "cannot be evaluated" in skipped["reason"], skipped
    env.wait_rescans(1)
    assert env.jobs("latedata") == []
    shutil.copytree(env.dataset.parent, late)  # the disk is mounted: nobody touches the checkpoint
    env.wait_completed("latedata", 1)
    job = _only_job(env, "latedata", sha256_file(WEAK_PT))
    assert job["result"]["promotion"]["decision"] == "promoted"
    env.daemon.wait_for(lambda: env.model("latedata")["skipped"] == [], 30, "the skip record to be cleared")
    env.daemon.wait_for(lambda: [c["state"] for c in env.model("latedata")["checkpoints"]] == ["evaluated"], 30,
                        "its state to be recorded (once the job has ended)")
    (state,) = env.model("latedata")["checkpoints"]
    assert (state["path"], state["last_error"]) == (str(target), None), state
