"""POST /v1/vision/train (issue 4): train, publish v<n>.pt + ONNX + pipeline.json, auto-eval, auto-promote.

One real service for the module, in the test process (``tests.inprocess.InProcessDaemon``: the
worker tasks, training included, in a thread; a cancel stops a training at its next batch), with the watcher ON
(settle 0.5 s, rescans every second) so that a trained checkpoint appearing
in the models folder is seen by it, and must not be evaluated a second time.
Real training with ultralytics on CPU: ``yolov8n.yaml`` from scratch (bundled,
nothing downloaded), 1 epoch at imgsz 320 on an 8-image train split (one batch an epoch), evaluated
on an 8-image val split. Each case has its own model name. Nothing is mocked.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.fixtures.synth import make_dataset
from tests.inprocess import InProcessDaemon
from tests.openapi_check import check
from tests.watch_fixtures import WatchEnv, sha256_file, watch_config

pytestmark = pytest.mark.ultralytics

TRAIN_TIMEOUT_S = 300.0
FINISHED = ("completed", "failed", "cancelled")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("train")
    dataset = make_dataset(root / "data", n_train=8, n_val=8, seed=3)
    daemon = InProcessDaemon(root, config=watch_config())
    e = WatchEnv(daemon, dataset)
    try:
        daemon.start()
        yield e
    finally:
        daemon.stop()
    assert "Traceback" not in daemon.log(), daemon.log_tail(200)


def train_job(env: WatchEnv, job_id: str) -> dict[str, Any]:
    r = env.get(f"/v1/vision/train/{job_id}")
    assert r.status_code == 200, r.text
    return r.json()


def wait_train(env: WatchEnv, job_id: str, predicate=lambda j: j["status"] in FINISHED,
               timeout: float = TRAIN_TIMEOUT_S) -> dict[str, Any]:
    """Poll GET /v1/vision/train/{job_id} (the spec's polling URL) until ``predicate`` holds."""
    def done() -> dict[str, Any] | None:
        job = train_job(env, job_id)
        return job if predicate(job) else None
    return env.daemon.wait_for(done, timeout, f"train job {job_id}", interval=0.5)


def check_trained(env: WatchEnv, name: str, job: dict[str, Any]) -> dict[str, Any]:
    """A completed auto-eval + auto-promote train job of a new model: files, evaluation and decision."""
    assert job["status"] == "completed", (job, env.daemon.log_tail(80))
    assert job["kind"] == "train" and job["error"] is None
    assert job["progress"] == 1.0
    check(job, "Job")
    check(job["result"], "TrainResult")
    check(job["result"]["evaluation"], "EvalResult")
    # After the run, the epoch fields LlamaFarm's UI reads stay: the last epoch's numbers.
    assert (job["current_epoch"], job["epoch"], job["total_epochs"]) == (1, 1, 1)
    check_epoch_numbers(job)
    result = job["result"]
    model_dir = env.models_root / name
    ckpt = model_dir / "v1.pt"
    assert result["version"] == 1 and result["checkpoint"] == str(ckpt)
    assert ckpt.is_file() and (model_dir / "v1.onnx").is_file()
    assert result["onnx"] == str(model_dir / "v1.onnx") and result["onnx_error"] is None
    sha = sha256_file(ckpt)
    assert result["checkpoint_sha256"] == sha

    pipeline = json.loads((model_dir / "pipeline.json").read_text())
    assert result["pipeline"] == str(model_dir / "pipeline.json")
    assert pipeline["dataset"] == str(env.dataset.resolve()) and pipeline["version"] == 1
    assert pipeline["task"] == "detection" and pipeline["model"] == name
    params = pipeline["parameters"]
    assert (params["epochs"], params["imgsz"], params["batch"]) == (1, 320, 8)

    evaluation = result["evaluation"]
    assert evaluation["checkpoint_sha256"] == sha and evaluation["dataset"] == str(env.dataset.resolve())
    assert evaluation["imgsz"] == 320 and evaluation["images"] == 8
    assert isinstance(evaluation["eval_id"], int) and isinstance(evaluation["score"], float)
    for key in ("mAP50", "mAP50_95", "precision", "recall", "f1", "inference_ms"):
        assert key in evaluation, key

    promotion = result["promotion"]
    assert promotion["decision"] == "promoted" and "first version" in promotion["reason"]
    assert promotion["new_sha256"] == sha and promotion["previous_sha256"] is None
    assert promotion["eval_id"] == evaluation["eval_id"]
    parity = promotion["export_parity"]  # training writes a dynamic export: it must score like its .pt
    assert parity["verdict"] == "pass" and parity["export_metadata"]["dynamic"] is True, parity
    assert abs(parity["delta_mAP50_95"]) <= 0.002
    assert (model_dir / "current.pt").read_bytes() == ckpt.read_bytes()
    return result


def check_epoch_numbers(job: dict[str, Any]) -> None:
    """``loss`` is the epoch's total training loss: the sum of its reported components."""
    metrics = job["metrics"]
    parts = [v for k, v in metrics.items() if k.startswith("train/")]
    assert len(parts) >= 3, metrics  # box, cls, dfl
    assert isinstance(job["loss"], float) and job["loss"] > 0
    assert job["loss"] == pytest.approx(sum(parts), rel=1e-3)
    assert "metrics/mAP50(B)" in metrics and 0.0 <= metrics["metrics/mAP50(B)"] <= 1.0


def check_not_evaluated_again(env: WatchEnv, name: str, job_id: str, sha: str) -> None:
    """The watcher saw the published v1.pt, created nothing, and never recorded it as skipped."""
    ckpt = env.models_root / name / "v1.pt"
    env.wait_log(f"watcher: {ckpt} (sha256 {sha[:12]}...) was already handled")
    env.wait_rescans(2)
    jobs = env.jobs(name)
    assert [(j["id"], j["kind"]) for j in jobs] == [(job_id, "train")], jobs
    evals = env.evals(name)
    # The checkpoint's evaluation, then its export's (the export-parity check of the promotion).
    assert [(e["job_id"], e["trigger"], e["format"]) for e in evals] == [(job_id, "train", "pt"),
                                                                          (job_id, "train", "onnx")]
    assert evals[0]["checkpoint_sha256"] == sha
    assert env.skipped(name) == []
    assert f"skipping {ckpt}" not in env.daemon.log()  # not even for a moment (before pipeline.json existed)
    detail = env.model(name)
    assert detail["current"] == {"sha256": sha, "version": 1}
    assert detail["versions"][0]["onnx"] == str(ckpt.with_suffix(".onnx"))
    assert [(p["decision"], p["actor"]) for p in detail["promotions"]] == [("promoted", "train")]


def test_train_json_with_auto_eval_and_auto_promote(env: WatchEnv) -> None:
    name = "trained-json"
    r = env.post("/v1/vision/train", json={
        "model": name, "dataset": str(env.dataset), "task": "detection",
        "config": {"epochs": 1, "imgsz": 320, "batch_size": 8},
        "auto_eval": True, "auto_promote": True,
    })
    assert r.status_code == 202, r.text
    submitted = r.json()
    assert submitted["status"] == "queued" and submitted["kind"] == "train"
    job = wait_train(env, submitted["job_id"])
    result = check_trained(env, name, job)
    check_not_evaluated_again(env, name, job["job_id"], result["checkpoint_sha256"])
    # A finished job cannot be cancelled.
    r = env.daemon.http.delete(f"/v1/vision/train/{job['job_id']}")
    assert r.status_code == 409, r.text


def test_train_form_data_makes_the_same_job_as_json(env: WatchEnv) -> None:
    """The spec's form-data form (flat fields, booleans as strings, as the spec's Python example sends)
    stores the same job as the JSON form, auto-eval and auto-promote included. What the JSON form's job
    then does is test_train_json_with_auto_eval_and_auto_promote; the two share everything after parsing."""
    fields = {"dataset": str(env.dataset), "task": "detection", "epochs": "1", "imgsz": "320", "batch_size": "8",
              "learning_rate": "0.02", "patience": "7", "auto_eval": "true", "auto_promote": "true"}
    with env.daemon.paused():  # neither job starts: what is compared is what was stored
        form = env.post("/v1/vision/train", data={"model": "trained-form", **fields})
        body = {"model": "trained-form-json", "dataset": str(env.dataset), "task": "detection",
                "config": {"epochs": 1, "imgsz": 320, "batch_size": 8, "learning_rate": 0.02, "patience": 7},
                "auto_eval": True, "auto_promote": True}
        as_json = env.post("/v1/vision/train", json=body)
        assert form.status_code == 202 and as_json.status_code == 202, (form.text, as_json.text)
        ids = [form.json()["job_id"], as_json.json()["job_id"]]
        stored = {r["id"]: json.loads(r["params"]) for r in env.daemon.query(
            "SELECT id, params FROM jobs WHERE id IN (?, ?)", tuple(ids))}
        for job_id in ids:
            assert env.daemon.http.delete(f"/v1/vision/train/{job_id}").status_code == 200
    from_form, from_json = stored[ids[0]], stored[ids[1]]
    assert (from_form.pop("model"), from_json.pop("model")) == ("trained-form", "trained-form-json")
    assert from_form == from_json
    assert (from_form["auto_eval"], from_form["auto_promote"]) == (True, True)
    assert (from_form["epochs"], from_form["imgsz"], from_form["batch"]) == (1, 320, 8)
    assert (from_form["learning_rate"], from_form["patience"]) == (0.02, 7)
    for job_id in ids:
        assert wait_train(env, job_id, timeout=60)["status"] == "cancelled"


def test_an_unknown_task_and_a_dataset_of_another_task_are_400s(env: WatchEnv) -> None:
    before = env.all_jobs_count()
    body = {"model": "trained-cls", "dataset": str(env.dataset), "task": "depth",
            "config": {"epochs": 1, "imgsz": 320, "batch_size": 8}, "auto_eval": True}
    r = env.post("/v1/vision/train", json=body)
    assert r.status_code == 400, r.text
    detail = r.json()["detail"]
    assert "classification" in detail and "detection" in detail and "obb" in detail, detail  # what is supported
    # A detection dataset for a classification training: the form names the task, the 400 says why.
    form = {"model": "trained-cls", "dataset": str(env.dataset), "task": "classification", "epochs": "1"}
    r = env.post("/v1/vision/train", files={k: (None, v) for k, v in form.items()})
    assert r.status_code == 400, r.text
    assert "classification dataset" in r.json()["detail"]
    assert env.all_jobs_count() == before
    assert not (env.models_root / "trained-cls").exists()


def test_a_running_train_job_reports_each_epoch_and_a_cancel_stops_it(env: WatchEnv) -> None:
    name = "trained-epochs"
    r = env.post("/v1/vision/train", json={
        "model": name, "dataset": str(env.dataset), "config": {"epochs": 200, "imgsz": 320, "batch_size": 8},
        "auto_eval": True, "auto_promote": True,
    })
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    queued = r.json()
    assert (queued["current_epoch"], queued["epoch"], queued["total_epochs"], queued["loss"]) == (0, 0, 200, None)
    first = wait_train(env, job_id, lambda j: j["status"] == "running" and j["current_epoch"] >= 1)
    assert first["total_epochs"] == 200 and first["epoch"] == first["current_epoch"]
    check_epoch_numbers(first)
    later = wait_train(env, job_id, lambda j: j["status"] != "running" or j["current_epoch"] > first["current_epoch"])
    assert later["status"] == "running", later  # updated every epoch, while it runs
    check_epoch_numbers(later)
    listed = env.get("/v1/vision/train?status=running").json()["jobs"]
    assert [j["current_epoch"] >= later["current_epoch"] for j in listed if j["job_id"] == job_id] == [True]

    # A cancel stops it (200 epochs would take far longer): nothing published, evaluated or promoted.
    assert env.daemon.http.delete(f"/v1/vision/train/{job_id}").status_code == 200
    job = wait_train(env, job_id, timeout=120)
    assert job["status"] == "cancelled" and job["result"] is None, job
    model_dir = env.models_root / name
    assert not model_dir.exists() or not any(model_dir.glob("v*.pt")), list(model_dir.iterdir())
    assert not (model_dir / "current.pt").exists()
    env.daemon.wait_workers_ready()
