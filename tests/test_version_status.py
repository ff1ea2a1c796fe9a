"""Each version's status, since and whole reason on the model page (daemon.app.version_status), rule by rule."""

from __future__ import annotations

from daemon.app.version_status import Known, with_status


def v(n: int, sha: str | None) -> dict[str, object]:
    return {"version": n, "path": f"/m/det/v{n}.pt", "sha256": sha}


def test_each_status_in_its_order_and_a_same_bytes_copy_shares_its_status() -> None:
    versions = [v(1, "a"), v(2, "b"), v(3, "c"), v(4, "b"), v(5, "d"), v(6, "e"), v(7, "f"), v(8, "g"), v(9, None),
                v(10, "h"), v(11, "i"), v(12, "j"), v(13, "k")]
    decisions = {"a": {"decision": "promoted", "reason": "first version", "timestamp": "T1"},
                 "b": {"decision": "promoted", "reason": "score gain +0.2000 beats the noise", "timestamp": "T2"},
                 "c": {"decision": "refused", "reason": "score gain -0.1000: does not beat", "timestamp": "T3"}}
    states = [{"sha256": "e", "state": "failed", "last_error": "class names differ", "cause": "dataset",
               "updated_at": "T4"},
              {"sha256": "f", "state": "evaluated", "updated_at": "T5"},
              {"sha256": "g", "state": "queued", "job_id": "J1", "updated_at": "T6"},
              {"sha256": "h", "state": "retry", "last_error": "dataset missing", "attempts": 2,
               "next_retry_at": "T9", "updated_at": "T7"},
              {"sha256": "i", "state": "cancelled", "job_id": "J2", "updated_at": "T8"},
              {"sha256": "j", "state": "failed", "last_error": "corrupt", "updated_at": "T8"}]
    evaluations = [{"checkpoint_sha256": "k", "score": 0.41234, "dataset": "/d/data.yaml", "eval_id": 7,
                    "timestamp": "T10"},
                   {"checkpoint_sha256": "k", "score": 0.1, "dataset": "/d/old.yaml", "eval_id": 3, "timestamp": "T0"}]
    known = Known.of("b", waiting=[{"path": "/m/det/v9.pt", "reason": "settling", "waiting_s": 2.25}],
                     skipped=[{"path": "/m/det/v5.pt", "reason": "no dataset", "created_at": "T11"}],
                     states=states, decisions=decisions, evaluations=evaluations)
    got = [(r["version"], r["status"], r["since"], r["reason"], r["same_bytes_as"]) for r in with_status(versions, known)]
    assert got == [
        (1, "promoted", "T1", "first version", None),
        (2, "current", "T2", "current.pt holds these bytes (promoted: score gain +0.2000 beats the noise)", None),
        (3, "refused", "T3", "score gain -0.1000: does not beat", None),
        (4, "current", "T2", "current.pt holds these bytes (promoted: score gain +0.2000 beats the noise)", 2),
        (5, "skipped", "T11", "no dataset", None),
        (6, "failed", "T4", "class names differ (looked at again when its dataset or its bytes change)", None),
        (7, "evaluated", "T5", "evaluated; no promotion decision on it", None),
        (8, "queued", "T6", "its evaluation is queued or running (job J1)", None),
        (9, "waiting", None, "settling (for 2.2 s)", None),
        (10, "retry", "T7", "dataset missing (2 failed attempts; retried at T9)", None),
        (11, "cancelled", "T8", "its evaluation (job J2) was cancelled", None),
        (12, "failed", "T8", "corrupt (looked at again when its bytes change)", None),
        (13, "evaluated", "T10", "score 0.4123 on /d/data.yaml (eval 7); no promotion decision on it", None),
    ]
    nothing = Known.of(None, [], [], [], {}, [])
    assert [(r["status"], r["reason"]) for r in with_status([v(1, "z")], nothing)] == [
        ("not evaluated", "on disk; no evaluation of these bytes is known")]


def test_a_decision_shows_as_soon_as_its_job_records_it() -> None:
    """The job writes its decision, then completes: in between, its version is not "queued" any more."""
    states = [{"sha256": "a", "state": "queued", "job_id": "J1", "updated_at": "T1"},
              {"sha256": "b", "state": "queued", "job_id": "J3", "updated_at": "T4"}]
    decisions = {"a": {"decision": "refused", "reason": "predictions identical", "timestamp": "T2",
                       "details": {"job_id": "J1"}},
                 "b": {"decision": "promoted", "reason": "an older look", "timestamp": "T3",
                       "details": {"job_id": "J2"}}}  # b is queued again, by another job: still queued
    known = Known.of(None, [], [], states, decisions, [])
    got = [(r["status"], r["reason"]) for r in with_status([v(1, "a"), v(2, "b")], known)]
    assert got == [("refused", "predictions identical"), ("queued", "its evaluation is queued or running (job J3)")]
