"""Promotion of ``<name>/current.pt`` (issue 4): decisions, the audit trail, manual promote, rollback,
atomic swaps, the ``dataset_best`` baseline and the incumbent evaluated first.

Unit level: ``vocab.files.atomic_copy`` / ``publish_new`` on real files and
``daemon.promote.promotion._promotion_stack`` on ledger rows.

Daemon level: one real service for the module, in the test process
(``tests.inprocess.InProcessDaemon``: the worker tasks in a thread; watcher on,
settle 0.5 s, rescans every second, ``[eval] imgsz = 320``,
``[watch] default_dataset`` = a 16-image synthetic val set, baseline
"current"), each case on its own model name; checkpoints arrive as
``v<n>.pt`` files the watcher evaluates and auto-promotes. The
``dataset_best`` case runs its own short-lived daemon. Every decision is
checked through GET /v1/vision/models/{name}. Nothing is mocked.
"""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from daemon.promote.promotion import _promotion_stack
from tests.daemon_fixtures import STRONG_PT, WEAK_PT, make_dataset
from tests.inprocess import InProcessDaemon
from tests.watch_fixtures import (
    WatchEnv,
    copy_file,
    resave_checkpoint,
    sha256_file,
    watch_config,
    write_pipeline,
)
from vocab.files import ContentChanged, atomic_copy, publish_new

STRONG_SHA = sha256_file(STRONG_PT)
WEAK_SHA = sha256_file(WEAK_PT)
STRONG_BYTES = STRONG_PT.read_bytes()
WEAK_BYTES = WEAK_PT.read_bytes()

# --------------------------------------------------------------------------- vocab.files


def _tmp_left(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if ".tmp-" in p.name]


def test_atomic_copy_replaces_the_destination(tmp_path: Path) -> None:
    src, dest = tmp_path / "src.pt", tmp_path / "current.pt"
    src.write_bytes(b"new content")
    atomic_copy(src, dest)  # creates
    assert dest.read_bytes() == b"new content"
    dest.write_bytes(b"old content")
    inode = dest.stat().st_ino
    atomic_copy(src, dest, hashlib.sha256(b"new content").hexdigest())  # replaces, checked
    assert dest.read_bytes() == b"new content"
    assert dest.stat().st_ino != inode  # a new file renamed over the old one, not rewritten in place
    assert _tmp_left(tmp_path) == []


def test_atomic_copy_refuses_changed_content_and_leaves_the_destination_untouched(tmp_path: Path) -> None:
    src, dest = tmp_path / "src.pt", tmp_path / "current.pt"
    src.write_bytes(b"what it became")
    dest.write_bytes(b"old content")
    with pytest.raises(ContentChanged):
        atomic_copy(src, dest, hashlib.sha256(b"what was evaluated").hexdigest())
    assert dest.read_bytes() == b"old content"
    assert _tmp_left(tmp_path) == []


def test_publish_new_never_overwrites(tmp_path: Path) -> None:
    src, dest = tmp_path / "best.pt", tmp_path / "v1.pt"
    src.write_bytes(b"trained")
    assert publish_new(src, dest, hashlib.sha256(b"trained").hexdigest()) is True
    assert dest.read_bytes() == b"trained"
    src.write_bytes(b"trained again")
    assert publish_new(src, dest) is False  # v1.pt exists: nothing written
    assert dest.read_bytes() == b"trained"
    assert _tmp_left(tmp_path) == []


def test_publish_new_refuses_changed_content(tmp_path: Path) -> None:
    src = tmp_path / "best.pt"
    src.write_bytes(b"changed")
    with pytest.raises(ContentChanged):
        publish_new(src, tmp_path / "v2.pt", hashlib.sha256(b"claimed").hexdigest())
    assert not (tmp_path / "v2.pt").exists()
    existing = tmp_path / "v1.pt"
    existing.write_bytes(b"v1")
    with pytest.raises(ContentChanged):
        publish_new(src, existing, hashlib.sha256(b"claimed").hexdigest())
    assert existing.read_bytes() == b"v1"
    assert _tmp_left(tmp_path) == []


# --------------------------------------------------------------------------- _promotion_stack


def _row(decision: str, new: str | None, previous: str | None = None) -> dict[str, Any]:
    return {"decision": decision, "new_sha256": new, "previous_sha256": previous}


def test_promotion_stack() -> None:
    assert _promotion_stack([]) == []
    assert _promotion_stack([_row("promoted", "a")]) == ["a"]
    # A first promotion over a current.pt placed by hand keeps that file as the bottom of the stack.
    assert _promotion_stack([_row("promoted", "b", "hand")]) == ["hand", "b"]
    ledger = [_row("promoted", "a"), _row("refused", "x", "a"), _row("promoted", "b", "a")]
    assert _promotion_stack(ledger) == ["a", "b"]  # a refusal changes nothing
    # A rollback pops; a promotion after it pushes again.
    ledger = [_row("promoted", "a"), _row("promoted", "b", "a"), _row("rollback", "a", "b")]
    assert _promotion_stack(ledger) == ["a"]
    assert _promotion_stack([*ledger, _row("promoted", "c", "a")]) == ["a", "c"]
    # Manual promotion of an older version, then its rollback, returns to the previous top.
    ledger = [_row("promoted", "a"), _row("promoted", "b", "a"), _row("promoted", "a", "b")]
    assert _promotion_stack(ledger) == ["a", "b", "a"]
    assert _promotion_stack([*ledger, _row("rollback", "b", "a")]) == ["a", "b"]
    # Promoting what is already on top adds nothing; a rollback with nothing below is ignored.
    assert _promotion_stack([_row("promoted", "a"), _row("promoted", "a", "a")]) == ["a"]
    assert _promotion_stack([_row("promoted", "a"), _row("rollback", None, "a")]) == ["a"]


# --------------------------------------------------------------------------- a real daemon


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("promotion")
    dataset = make_dataset(root / "data", n_val=16, seed=0)
    daemon = InProcessDaemon(root, config=watch_config(watch={"default_dataset": str(dataset)}))
    e = WatchEnv(daemon, dataset)
    try:
        daemon.start()
        yield e
    finally:
        daemon.stop()
    assert "Traceback" not in daemon.log(), daemon.log_tail(200)


def ingest(env: WatchEnv, name: str, sources: list[Path]) -> list[dict[str, Any]]:
    """Drop each source as the model's next v<n>.pt, waiting for its watcher job each time."""
    start = len(env.jobs(name))
    for i, src in enumerate(sources):
        copy_file(src, env.models_root / name / f"v{start + i + 1}.pt")
        env.wait_completed(name, start + i + 1)
    return env.jobs(name)


def _eval_score(env: WatchEnv, name: str, sha: str) -> float:
    rows = [e for e in env.evals(name) if e["checkpoint_sha256"] == sha]
    assert rows, (name, sha, env.evals(name))
    return rows[-1]["score"]


@pytest.mark.ultralytics  # a real daemon evaluating with ultralytics
def test_first_version_is_promoted_and_a_better_one_replaces_it(env: WatchEnv) -> None:
    jobs = ingest(env, "climb", [WEAK_PT, STRONG_PT])
    assert [j["result"]["promotion"]["decision"] for j in jobs] == ["promoted", "promoted"]
    weak_score, strong_score = _eval_score(env, "climb", WEAK_SHA), _eval_score(env, "climb", STRONG_SHA)
    first, second = env.promotions("climb")
    assert first["decision"] == "promoted" and first["actor"] == "watcher" and first["version"] == 1
    assert first["previous_sha256"] is None and first["previous_score"] is None
    assert first["new_sha256"] == WEAK_SHA and first["new_score"] == pytest.approx(weak_score, abs=1e-12)
    assert "first version" in first["reason"]
    assert first["dataset"] == str(env.dataset.resolve()) and first["eval_id"] is not None

    assert second["decision"] == "promoted" and second["version"] == 2
    assert (second["previous_sha256"], second["new_sha256"]) == (WEAK_SHA, STRONG_SHA)
    assert second["previous_score"] == pytest.approx(weak_score, abs=1e-12)
    assert second["new_score"] == pytest.approx(strong_score, abs=1e-12)
    assert strong_score > weak_score + 0.2
    assert "beats the incumbent current.pt" in second["reason"]
    assert second["details"]["baseline"] == "current" and second["details"]["job_id"] == jobs[1]["id"]
    assert (env.models_root / "climb" / "current.pt").read_bytes() == STRONG_BYTES
    assert env.model("climb")["current"] == {"sha256": STRONG_SHA, "version": 2}


@pytest.mark.ultralytics  # a real daemon evaluating with ultralytics
def test_a_worse_candidate_is_refused(env: WatchEnv) -> None:
    jobs = ingest(env, "fall", [STRONG_PT, WEAK_PT])
    assert [j["result"]["promotion"]["decision"] for j in jobs] == ["promoted", "refused"]
    refused = env.promotions("fall")[1]
    assert refused["decision"] == "refused" and refused["actor"] == "watcher" and refused["version"] == 2
    assert (refused["previous_sha256"], refused["new_sha256"]) == (STRONG_SHA, WEAK_SHA)
    assert refused["previous_score"] == pytest.approx(_eval_score(env, "fall", STRONG_SHA), abs=1e-12)
    assert refused["new_score"] == pytest.approx(_eval_score(env, "fall", WEAK_SHA), abs=1e-12)
    assert refused["new_score"] < refused["previous_score"]
    assert "does not beat the incumbent current.pt" in refused["reason"]
    assert (env.models_root / "fall" / "current.pt").read_bytes() == STRONG_BYTES
    assert env.model("fall")["current"] == {"sha256": STRONG_SHA, "version": 1}


@pytest.mark.ultralytics  # a real daemon evaluating with ultralytics
def test_manual_promote_and_rollback_are_byte_exact_and_audited(env: WatchEnv) -> None:
    name = "manual"
    ingest(env, name, [WEAK_PT, STRONG_PT])
    current = env.models_root / name / "current.pt"
    assert current.read_bytes() == STRONG_BYTES

    r = env.post(f"/v1/vision/models/{name}/promote", json={"version": 1, "reason": "canary"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["decision"], body["version"]) == ("promoted", 1)
    assert (body["previous_sha256"], body["new_sha256"]) == (STRONG_SHA, WEAK_SHA)
    assert current.read_bytes() == WEAK_BYTES
    row = env.promotions(name)[-1]
    assert (row["decision"], row["actor"], row["reason"]) == ("promoted", "api", "manual promotion of v1: canary")
    assert (row["previous_sha256"], row["new_sha256"], row["id"]) == (STRONG_SHA, WEAK_SHA, body["promotion_id"])
    # A manual decision carries the scores of the evaluations that exist for those bytes.
    weak_eval = [e for e in env.evals(name) if e["checkpoint_sha256"] == WEAK_SHA][-1]
    assert row["new_score"] == pytest.approx(weak_eval["score"], abs=1e-12) and row["eval_id"] == weak_eval["id"]
    assert row["previous_score"] == pytest.approx(_eval_score(env, name, STRONG_SHA), abs=1e-12)
    assert row["dataset"] == str(env.dataset.resolve())

    assert env.post(f"/v1/vision/models/{name}/promote", json={"version": 1}).status_code == 409  # already current
    assert env.post(f"/v1/vision/models/{name}/promote", json={"version": 99}).status_code == 404
    assert env.post(f"/v1/vision/models/{name}/promote", json={}).status_code == 400
    assert env.post("/v1/vision/models/no-such-model/promote", json={"version": 1}).status_code == 404

    (env.models_root / name / "v2.pt").unlink()  # rollback restores from the daemon's store, not from v2.pt
    r = env.post(f"/v1/vision/models/{name}/rollback", json={"reason": "canary regressed"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["decision"] == "rollback"
    assert (body["previous_sha256"], body["new_sha256"]) == (WEAK_SHA, STRONG_SHA)
    assert current.read_bytes() == STRONG_BYTES  # byte for byte
    row = env.promotions(name)[-1]
    assert (row["decision"], row["actor"]) == ("rollback", "api")
    assert row["reason"] == "rollback to the previously promoted checkpoint: canary regressed"
    assert (row["previous_sha256"], row["new_sha256"]) == (WEAK_SHA, STRONG_SHA)
    assert row["previous_score"] == pytest.approx(_eval_score(env, name, WEAK_SHA), abs=1e-12)
    assert row["new_score"] == pytest.approx(_eval_score(env, name, STRONG_SHA), abs=1e-12)
    r = env.post("/v1/vision/models/no-such-model/rollback")
    assert r.status_code == 404 and "model not found" in r.json()["detail"], r.text

    r = env.post(f"/v1/vision/models/{name}/rollback")  # no body at all: the spec-less form
    assert r.status_code == 200, r.text
    assert current.read_bytes() == WEAK_BYTES
    assert env.model(name)["current"] == {"sha256": WEAK_SHA, "version": 1}
    r = env.post(f"/v1/vision/models/{name}/rollback")
    assert r.status_code == 409, r.text
    assert "nothing to roll back to" in r.json()["detail"]
    assert current.read_bytes() == WEAK_BYTES
    decisions = [(p["decision"], p["actor"]) for p in env.promotions(name)]
    assert decisions == [("promoted", "watcher"), ("promoted", "watcher"), ("promoted", "api"),
                         ("rollback", "api"), ("rollback", "api")]


@pytest.mark.ultralytics  # a real daemon evaluating with ultralytics
def test_a_reader_only_ever_sees_a_complete_current_pt(env: WatchEnv) -> None:
    name = "swap"
    ingest(env, name, [WEAK_PT, STRONG_PT])
    current = env.models_root / name / "current.pt"
    seen: dict[str, int] = {}
    errors: list[BaseException] = []
    state = {"reads": 0, "last": None}
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                sha = hashlib.sha256(current.read_bytes()).hexdigest()
            except BaseException as exc:  # noqa: BLE001 - a missing file is a failure too
                errors.append(exc)
                continue
            seen[sha] = seen.get(sha, 0) + 1
            state["last"] = sha
            state["reads"] += 1

    def reads_see(expected: str) -> None:
        n = state["reads"]
        deadline = time.monotonic() + 30
        while not (state["reads"] >= n + 2 and state["last"] == expected):
            assert time.monotonic() < deadline, "the reader stalled"
            time.sleep(0.005)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        for _ in range(4):
            r = env.post(f"/v1/vision/models/{name}/promote", json={"version": 1})
            assert r.status_code == 200, r.text
            reads_see(WEAK_SHA)
            r = env.post(f"/v1/vision/models/{name}/rollback")
            assert r.status_code == 200, r.text
            reads_see(STRONG_SHA)
    finally:
        stop.set()
        thread.join(10)
    assert errors == []
    assert set(seen) == {WEAK_SHA, STRONG_SHA}, {k[:12]: v for k, v in seen.items()}
    assert state["reads"] >= 16
    decisions = [p["decision"] for p in env.promotions(name)]
    assert decisions == ["promoted", "promoted"] + ["promoted", "rollback"] * 4


@pytest.mark.ultralytics  # a real daemon evaluating with ultralytics
def test_the_incumbent_is_evaluated_first_when_it_has_no_result(env: WatchEnv) -> None:
    """current.pt placed by hand (never evaluated on this model's dataset), then a candidate arrives."""
    name = "handmade"
    other = make_dataset(env.models_root.parent / "data-handmade", n_val=8, seed=7)
    write_pipeline(env.models_root / name, other)
    copy_file(WEAK_PT, env.models_root / name / "current.pt")
    jobs = ingest(env, name, [STRONG_PT])
    job = jobs[0]
    evals = env.evals(name)
    assert all(e["job_id"] == job["id"] and e["dataset"] == str(other.resolve()) for e in evals), evals
    by_sha = {e["checkpoint_sha256"]: e for e in evals}
    assert set(by_sha) == {STRONG_SHA, WEAK_SHA}, evals  # the candidate and the incumbent, in the same job
    assert by_sha[WEAK_SHA]["model_version"] is None  # current.pt, not a version
    (row,) = env.promotions(name)
    assert row["decision"] == "promoted" and "incumbent current.pt" in row["reason"]
    assert (row["previous_sha256"], row["new_sha256"]) == (WEAK_SHA, STRONG_SHA)
    assert row["previous_score"] == pytest.approx(by_sha[WEAK_SHA]["score"], abs=1e-12)
    assert row["new_score"] == pytest.approx(by_sha[STRONG_SHA]["score"], abs=1e-12)
    assert (env.models_root / name / "current.pt").read_bytes() == STRONG_BYTES
    # The hand-placed file was kept when it was replaced: rollback brings it back byte for byte.
    r = env.post(f"/v1/vision/models/{name}/rollback")
    assert r.status_code == 200, r.text
    assert (env.models_root / name / "current.pt").read_bytes() == WEAK_BYTES


@pytest.mark.ultralytics  # a real daemon evaluating with ultralytics
def test_manual_promote_of_a_link_leaving_the_models_root_is_refused(env: WatchEnv, tmp_path: Path) -> None:
    name = "linked"
    ingest(env, name, [WEAK_PT])
    outside = copy_file(STRONG_PT, tmp_path / "outside" / "v9.pt")
    link = env.models_root / name / "v9.pt"
    link.symlink_to(outside)
    env.wait_skipped(name, link)  # the watcher refuses it ...
    r = env.post(f"/v1/vision/models/{name}/promote", json={"version": 9})
    assert r.status_code == 403, r.text  # ... and so does a manual promotion
    assert (env.models_root / name / "current.pt").read_bytes() == WEAK_BYTES
    rows = env.daemon.query("SELECT decision FROM promotions WHERE model_name = ?", (name,))
    assert [r["decision"] for r in rows] == ["promoted"]  # nothing recorded for the refused request


@pytest.mark.ultralytics  # a real daemon evaluating with ultralytics
def test_dataset_best_baseline_is_the_spec_literal_rule(env: WatchEnv, tmp_path: Path) -> None:
    """``baseline = "dataset_best"``: a candidate must beat the best score on the dataset's leaderboard
    (any model), not just what its own current.pt holds."""
    # strong's weights, other bytes: the same metrics (only inference_ms, hence the speed term, varies,
    # by far less than min_delta), another sha256.
    strong2 = tmp_path / "strong-resaved.pt"
    resave = resave_checkpoint(STRONG_PT, strong2, "dataset_best")
    daemon = InProcessDaemon(tmp_path / "best", config=watch_config(
        watch={"default_dataset": str(env.dataset)}, promotion={"baseline": "dataset_best", "min_delta": 0.1}))
    best = WatchEnv(daemon, env.dataset)
    try:
        daemon.start()
        assert resave.wait(120) == 0
        strong2_sha = sha256_file(strong2)
        assert strong2_sha != STRONG_SHA

        ingest(best, "ref", [STRONG_PT])  # the dataset's best
        ref_eval = best.evals("ref")[0]
        jobs = ingest(best, "cand", [WEAK_PT, strong2])
        assert [j["result"]["promotion"]["decision"] for j in jobs] == ["promoted", "refused"]
        first, refused = best.promotions("cand")
        assert "first version" in first["reason"]  # the first version is promoted whatever the leaderboard says
        assert refused["details"]["baseline"] == "dataset_best"
        assert (refused["previous_sha256"], refused["new_sha256"]) == (WEAK_SHA, strong2_sha)
        assert refused["previous_score"] == pytest.approx(ref_eval["score"], abs=1e-12)  # ref's, not weak's
        assert f"the dataset's best (ref, eval {ref_eval['id']})" in refused["reason"], refused["reason"]
        # It would have beaten the incumbent (weak) by far: only the literal rule refuses it.
        assert refused["new_score"] > first["new_score"] + 0.1
        assert refused["new_score"] <= ref_eval["score"] + 0.1
        assert (daemon.models_root / "cand" / "current.pt").read_bytes() == WEAK_BYTES
    finally:
        if resave.poll() is None:
            resave.kill()
            resave.wait()
        daemon.stop()
    assert "Traceback" not in daemon.log(), daemon.log_tail(200)
