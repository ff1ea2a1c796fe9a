"""MLflow tracking against a real ``mlflow server`` (SQLite backend, a free port): one server for the module.

What MLflow's API and registry hold is read back with mlflow's own client:
one run per evaluation (found by its ``vision_evald.eval_id`` tag) with the
daemon's metrics, params and artifacts; a comparison run linked to both; the
``champion`` alias on the version whose ``checkpoint_sha256`` is what
current.pt holds after promotions, a refusal and rollbacks; records that wait
out a stopped server and arrive once, in order, after its restart. The
records are written the way the daemon writes them (``tests.mlflow_fixtures``).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.clock import iso
from daemon.promote.decision import Decision
from daemon.tracking import mapping
from daemon.tracking.mlflow_metrics import tracking_families
from daemon.tracking.sender import GIVE_UP_AFTER, TrackingStatus
from daemon.tracking.sink import CLIENT_ENVIRONMENT
from evaluation.comparison import compare_results
from tests.mlflow_fixtures import MlflowServer, TrackedDaemon, sha256
from vocab.config import MlflowConfig
from vocab.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.heavy  # starts mlflow server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    srv = MlflowServer(tmp_path_factory.mktemp("mlflow"))
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server: MlflowServer) -> Any:
    for key, value in CLIENT_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    from mlflow import MlflowClient

    return MlflowClient(server.uri)


@pytest.fixture
def daemon(tmp_path: Path, server: MlflowServer, request: pytest.FixtureRequest) -> Iterator[TrackedDaemon]:
    """A daemon's store and tracker, in an experiment and under a registry prefix of this test's own."""
    name = request.node.name.removeprefix("test_")[:40]
    d = TrackedDaemon(tmp_path, MlflowConfig(tracking_uri=server.uri, experiment=f"exp-{name}",
                                             registered_model_prefix=f"{name}-"))
    yield d
    d.close()


def runs_of(client: Any, daemon: TrackedDaemon, filter_string: str) -> list[Any]:
    experiment = client.get_experiment_by_name(daemon.tracker.config.experiment)
    return list(client.search_runs([experiment.experiment_id], filter_string=filter_string))


def artifact_names(client: Any, run_id: str, path: str | None = None) -> set[str]:
    return {Path(f.path).name for f in client.list_artifacts(run_id, path)}


async def test_each_evaluation_gets_exactly_one_run_and_a_comparison_links_two(
        daemon: TrackedDaemon, client: Any, tmp_path: Path) -> None:
    evals = [daemon.evaluate(daemon.checkpoint(v), m) for v, m in ((1, 0.31), (2, 0.42), (3, 0.27))]
    (e1, r1), (e2, r2), _ = evals
    # A send cut off after it created the first evaluation's run: the run exists, nothing is logged in it.
    experiment_id = client.create_experiment(daemon.tracker.config.experiment)
    cut_off = client.create_run(experiment_id, tags={mapping.EVAL_ID: str(e1)}).info.run_id
    comparison = {**compare_results(r1, r2, "det", "det"), "eval_id_a": e1, "eval_id_b": e2, "dataset": r1["dataset"],
                  "winner_significant": True,
                  "statistics": {"n_resamples": 200, "seed": 0, "alpha": 0.05, "metrics": {"score": {
                      "a": r1["score"], "b": r2["score"], "diff": r1["score"] - r2["score"], "ci_low": -0.09,
                      "ci_high": -0.01, "p_value": 0.01, "significant": True, "n_valid": 200}}}}
    daemon.db.write_sync(lambda c: daemon.tracker.record_comparison(c, "job-cmp", comparison, iso(daemon.clock())))

    assert await daemon.sender.drain() == 4
    for eval_id, result in evals:
        [run] = runs_of(client, daemon, mapping.eval_filter(eval_id))
        assert run.info.status == "FINISHED"
        assert run.data.metrics["mAP50_95"] == pytest.approx(result["mAP50_95"])
        assert run.data.metrics["score"] == pytest.approx(result["score"])
        assert "large_object_recall" not in run.data.metrics  # null in the result
        assert run.data.params["checkpoint_sha256"] == sha256(Path(result["model_path"]))
        assert run.data.params["task"] == "detection" and run.data.params["imgsz"] == "192"
        assert run.data.tags[mapping.MODEL] == "det" and run.data.tags[mapping.JOB_ID] == "job-eval"
        assert artifact_names(client, run.info.run_id) == {"result.json", "curves.json", "errors.json",
                                                           "confusion_matrix.png"}
    [first] = runs_of(client, daemon, mapping.eval_filter(e1))
    assert first.info.run_id == cut_off  # completed, not created again
    downloaded = Path(client.download_artifacts(first.info.run_id, "result.json", str(tmp_path)))
    assert json.loads(downloaded.read_text())["eval_id"] == e1
    png = Path(client.download_artifacts(first.info.run_id, "confusion_matrix.png", str(tmp_path)))
    from PIL import Image

    with Image.open(png) as image:
        assert image.format == "PNG" and min(image.size) >= 300

    [cmp] = runs_of(client, daemon, mapping.comparison_filter("job-cmp"))
    assert cmp.data.tags["vision_evald.run_id_a"] == first.info.run_id
    assert cmp.data.tags["vision_evald.run_id_b"] == runs_of(client, daemon, mapping.eval_filter(e2))[0].info.run_id
    assert cmp.data.metrics["mAP50_95_diff"] == pytest.approx(r1["mAP50_95"] - r2["mAP50_95"])
    assert cmp.data.metrics["score_ci_low"] == -0.09 and cmp.data.metrics["score_significant"] == 1.0

    # Every record sent a second time (a send whose success was never written down): nothing duplicated.
    daemon.db.write_sync(lambda c: c.execute(
        "INSERT INTO mlflow_outbox (kind, payload, next_attempt_at, created_at) "
        "SELECT kind, payload, next_attempt_at, created_at FROM mlflow_outbox ORDER BY id"))
    assert await daemon.sender.drain() == 4
    for eval_id, _ in evals:
        assert len(runs_of(client, daemon, mapping.eval_filter(eval_id))) == 1
    assert len(runs_of(client, daemon, mapping.comparison_filter("job-cmp"))) == 1


async def test_the_alias_follows_current_pt_through_promotions_a_refusal_and_rollbacks(
        daemon: TrackedDaemon, client: Any, tmp_path: Path) -> None:
    name = daemon.tracker.config.registered_name("det")
    v1, v2, v3 = (daemon.checkpoint(v) for v in (1, 2, 3))
    e1, _ = daemon.evaluate(v1, 0.30)
    sha1 = daemon.keep(v1)
    first = daemon.decide(Decision("promoted", "first version of det: no current.pt", sha1, eval_id=e1, version=1))
    e2, _ = daemon.evaluate(v2, 0.45)
    sha2 = daemon.keep(v2)
    promoted = daemon.decide(Decision("promoted", "gain 0.0525: beats the incumbent", sha2, previous_sha256=sha1,
                                      eval_id=e2, version=2))
    v2.write_bytes(b"v2.pt rewritten after its promotion")  # its bytes now live only in the promotion store
    e3, _ = daemon.evaluate(v3, 0.20)
    refused = daemon.decide(Decision("refused", "gain -0.0875: does not beat the incumbent", sha256(v3),
                                     previous_sha256=sha2, eval_id=e3, version=3))
    assert await daemon.sender.drain() == 6

    champion = client.get_model_version_by_alias(name, "champion")
    assert champion.tags == {"checkpoint_sha256": sha2, "eval_id": str(e2), "decision": "promoted"}
    assert champion.description == promoted["reason"]
    assert champion.source.endswith(f"/checkpoint/{sha2}.pt")  # the store's copy: v2.pt changed
    stored = client.download_artifacts(champion.run_id, f"checkpoint/{sha2}.pt", str(tmp_path / "a"))
    assert sha256(Path(stored)) == sha2
    [run3] = runs_of(client, daemon, mapping.eval_filter(e3))
    assert run3.data.tags[mapping.DECISION] == "refused"
    assert run3.data.tags[mapping.DECISION_REASON] == refused["reason"]
    assert {v.tags["checkpoint_sha256"] for v in client.search_model_versions(f"name = '{name}'")} == {sha1, sha2}

    daemon.decide(Decision("rollback", "rollback to the previously promoted checkpoint", sha1, previous_sha256=sha2,
                           eval_id=e1, version=1))
    assert await daemon.sender.drain() == 1
    champion = client.get_model_version_by_alias(name, "champion")
    assert champion.tags["checkpoint_sha256"] == sha1 and champion.description == first["reason"]
    [run1] = runs_of(client, daemon, mapping.eval_filter(e1))
    assert champion.run_id == run1.info.run_id and run1.data.tags[mapping.DECISION] == "rollback"
    assert champion.source.endswith("/checkpoint/v1.pt")
    assert len(client.search_model_versions(f"name = '{name}'")) == 2  # the version of v1 again, no new one

    # A rollback to bytes promoted before MLflow was configured: no version, no evaluation run holds them.
    v0 = daemon.checkpoint(0)
    sha0 = daemon.keep(v0)
    v0.unlink()
    daemon.decide(Decision("rollback", "rollback to the previously promoted checkpoint", sha0, previous_sha256=sha1))
    assert await daemon.sender.drain() == 1
    champion = client.get_model_version_by_alias(name, "champion")
    assert champion.tags == {"checkpoint_sha256": sha0, "decision": "rollback"}
    assert client.get_run(champion.run_id).data.tags[mapping.KIND] == "decision"
    assert len(client.search_model_versions(f"name = '{name}'")) == 3


async def test_records_wait_out_a_stopped_server_and_arrive_once_in_order(
        daemon: TrackedDaemon, client: Any, server: MlflowServer) -> None:
    name = daemon.tracker.config.registered_name("det")
    v1 = daemon.checkpoint(1)
    server.stop()
    try:
        e1, _ = daemon.evaluate(v1, 0.33)  # the job path writes its rows and records as ever
        sha1 = daemon.keep(v1)
        daemon.decide(Decision("promoted", "first version of det: no current.pt", sha1, eval_id=e1, version=1))
        e2, _ = daemon.evaluate(daemon.checkpoint(2), 0.36)
        for attempt in range(1, GIVE_UP_AFTER + 2):  # past GIVE_UP_AFTER: an unreachable server is waited for
            assert await daemon.sender.drain() == 0
            assert [(r["state"], r["attempts"]) for r in daemon.pending()] == [
                ("pending", attempt), ("pending", 0), ("pending", 0)]  # only the head was tried
            assert await daemon.sender.drain() == 0  # not due yet: not tried again
            assert daemon.pending()[0]["attempts"] == attempt
            daemon.clock.advance(daemon.sender.backoff.delay(attempt))
        health = daemon.tracker.health()
        assert health["outbox_depth"] == 3 and health["last_success_at"] is None
        assert str(server.port) in health["last_error"]
    finally:
        server.start()

    daemon.tracker.start()  # the service's loop: the head is due, the backlog goes out
    try:
        deadline = time.monotonic() + 60
        while daemon.pending() and time.monotonic() < deadline:
            daemon.tracker.wake()
            await asyncio.sleep(0.1)
    finally:
        await daemon.tracker.close()
    # The depth is the one the last drain counted: the loop may be stopped between a send and its count.
    assert daemon.pending() == [] and await daemon.sender.drain() == 0
    assert daemon.tracker.health()["outbox_depth"] == 0
    [run1] = runs_of(client, daemon, mapping.eval_filter(e1))
    assert len(runs_of(client, daemon, mapping.eval_filter(e2))) == 1
    champion = client.get_model_version_by_alias(name, "champion")
    # The evaluation reached MLflow before its decision: the version was registered from its run.
    assert champion.tags["checkpoint_sha256"] == sha1 and champion.run_id == run1.info.run_id


async def test_a_record_that_cannot_succeed_is_given_up_and_the_rest_go_on(daemon: TrackedDaemon, client: Any) -> None:
    daemon.decide(Decision("promoted", "manual promotion of v9", "0" * 64, version=9))  # its bytes are nowhere
    e1, _ = daemon.evaluate(daemon.checkpoint(1), 0.3)
    for attempt in range(1, GIVE_UP_AFTER):
        assert await daemon.sender.drain() == 0
        daemon.clock.advance(daemon.sender.backoff.delay(attempt))
    assert await daemon.sender.drain() == 1
    assert daemon.pending() == [{"id": 1, "kind": "decision", "state": "failed", "attempts": GIVE_UP_AFTER}]
    health = daemon.tracker.health()
    assert health["outbox_failed"] == 1 and health["outbox_depth"] == 0
    assert "no file holds checkpoint 000000000000" in health["last_error"]
    assert len(runs_of(client, daemon, mapping.eval_filter(e1))) == 1


def test_an_unconfigured_daemon_imports_no_mlflow(tmp_path: Path) -> None:
    """Off: nothing is enqueued and mlflow is never imported. On: not before the first send."""
    code = f"""
import sys
from pathlib import Path
from vocab.config import MlflowConfig
from daemon.tracking.tracker import Tracker
from store.database import Database
db = Database(Path({str(tmp_path / 'eval.db')!r}))
off = Tracker(MlflowConfig(), db, Path('/nonexistent'))
decision = {{"decision": "promoted", "reason": "r", "new_sha256": "a" * 64, "promotion_id": 1}}
db.write_sync(lambda c: off.record_decision(c, "det", decision, None, "2026-03-01T12:00:00Z"))
assert off.health() == {{"enabled": False}} and off.status() is None
assert db.read_sync(lambda c: c.execute("SELECT COUNT(*) FROM mlflow_outbox").fetchone()[0]) == 0
on = Tracker(MlflowConfig(tracking_uri="http://127.0.0.1:9"), db, Path('/nonexistent'))
db.write_sync(lambda c: on.record_decision(c, "det", decision, None, "2026-03-01T12:00:00Z"))
assert db.read_sync(lambda c: c.execute("SELECT COUNT(*) FROM mlflow_outbox").fetchone()[0]) == 1
db.close()
print(sorted(m for m in sys.modules if m.split(".")[0] in ("mlflow", "matplotlib", "torch")))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


@pytest.mark.parametrize("change", [{"tracking_uri": "localhost:5000"}, {"tracking_uri": "sqlite:///mlflow.db"},
                                    {"alias": "latest"}, {"alias": "v2"},
                                    {"alias": "my champion"}, {"registered_model_prefix": "team's/"},
                                    {"experiment": " "}])
def test_config_refuses_what_mlflow_would(change: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match=rf"\[mlflow\] {next(iter(change))}"):
        MlflowConfig(**{"tracking_uri": "http://127.0.0.1:5000", **change}).check()
    MlflowConfig(tracking_uri="http://127.0.0.1:5000", registered_model_prefix="team-a.", alias="prod_1").check()


def test_metrics_are_the_tasks_own() -> None:
    result = {"task": "classification", "top1": 0.9, "top5": 1.0, "macro_f1": 0.8, "mAP50_95": 0.5,
              "inference_ms": 3.0, "score": 0.85, "small_object_recall": 0.4}
    assert mapping.evaluation_metrics(result) == {"top1": 0.9, "top5": 1.0, "macro_f1": 0.8, "inference_ms": 3.0,
                                                  "score": 0.85}
    detection = {"mAP50_95": 0.5, "mAP50": float("nan"), "f1": True, "small_object_recall": 0.4}
    assert mapping.evaluation_metrics(detection) == {"mAP50_95": 0.5, "small_object_recall": 0.4}


def test_metrics_families_show_the_outbox_and_the_last_error_time() -> None:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    status = TrackingStatus(outbox_depth=3, outbox_failed=1, send_errors=7, last_error="MlflowException: down",
                            last_error_at="2026-03-01T12:00:05Z", last_success_at=None)

    class Collector:
        def collect(self) -> Any:
            return tracking_families(status)

    registry = CollectorRegistry()
    registry.register(Collector())
    samples = {s.name: s.value for family in text_string_to_metric_families(generate_latest(registry).decode())
               for s in family.samples}
    assert samples == {"vision_evald_mlflow_outbox_depth": 3, "vision_evald_mlflow_outbox_failed": 1,
                       "vision_evald_mlflow_send_errors_total": 7,
                       "vision_evald_mlflow_last_error_timestamp_seconds": 1772366405.0}


def test_a_daemon_reports_dropped_checkpoints_and_its_champion_follows_current_pt(
        server: MlflowServer, client: Any, tmp_path: Path, ultralytics_env: Path) -> None:
    """The real service (tests/inprocess.py) with [mlflow] set: weak, strong and a re-saved strong dropped into
    a watched folder, then a rollback. Each evaluation has exactly one run, holding the daemon's mAP50-95,
    and the alias always holds the version whose bytes current.pt holds."""
    import shutil

    from tests.daemon_fixtures import STRONG_PT, WEAK_PT, make_dataset, stable_checkpoint
    from tests.inprocess import InProcessDaemon
    from tests.promotion_harness import resave_in_process

    dataset = make_dataset(tmp_path / "data", n_val=8, seed=3)
    d = InProcessDaemon(tmp_path / "daemon", config={
        "paths": {"allowed_roots": [str(tmp_path)]},
        "watch": {"enabled": True, "settle_seconds": 0.2, "rescan_interval_s": 1.0},
        "eval": {"imgsz": 320}, "promotion": {"bootstrap_resamples": 100},
        "mlflow": {"tracking_uri": server.uri, "experiment": "daemon-e2e", "registered_model_prefix": "e2e-"}})
    folder = d.models_root / "det"
    folder.mkdir(parents=True)
    (folder / "pipeline.json").write_text(json.dumps({"dataset": str(dataset)}))
    d.start()
    try:
        for version, source in ((1, WEAK_PT), (2, STRONG_PT), (3, resave_in_process(STRONG_PT, tmp_path / "copy.pt"))):
            shutil.copyfile(source, folder / f"v{version}.pt")
            stable_checkpoint(folder / f"v{version}.pt")
            d.wait_for(lambda v=version: d.query("SELECT 1 FROM promotions WHERE version = ?", (v,)), 240,
                       f"the decision on v{version}")
        assert [r[0] for r in d.query("SELECT decision FROM promotions ORDER BY id")] == [
            "promoted", "promoted", "refused"]
        r = d.http.post("/v1/vision/models/det/rollback", json={"reason": "e2e"})
        assert r.status_code == 200, r.text
        d.wait_for(lambda: d.query("SELECT COUNT(*) FROM mlflow_outbox WHERE state = 'pending'")[0][0] == 0, 120,
                   "the outbox to drain")
        assert d.query("SELECT COUNT(*) FROM mlflow_outbox WHERE state = 'failed'")[0][0] == 0
        assert d.health()["mlflow"]["enabled"] is True
        experiment = client.get_experiment_by_name("daemon-e2e").experiment_id
        for eval_id, map50_95 in d.query("SELECT id, mAP50_95 FROM eval_results"):
            runs = client.search_runs([experiment], filter_string=f"tags.`vision_evald.eval_id` = '{eval_id}'")
            assert len(runs) == 1 and runs[0].data.metrics["mAP50_95"] == pytest.approx(map50_95), eval_id
        champion = client.get_model_version_by_alias("e2e-det", "champion")
        assert champion.tags["checkpoint_sha256"] == sha256(folder / "current.pt") == sha256(WEAK_PT)
    finally:
        d.stop()
