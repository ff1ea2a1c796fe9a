"""Every task through the daemon, as a user drives it: checkpoints dropped into watched model folders,
LlamaFarm's train request, manual promotion, an evaluation by model name, the leaderboard by task.

One in-process daemon for the module (the real ``Service``: SQLite file, watcher, queue, promotion and
HTTP on a free port; worker tasks in a thread, tests/inprocess.py), with the committed tiny checkpoints of
each task (tests/fixtures) on synthetic data. For each task a weak, a strong and a re-saved copy of the
strong checkpoint are dropped into the task's model folder one after the other: promoted, promoted,
refused (identical predictions).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES_DIR
from tests.daemon_fixtures import stable_checkpoint
from tests.inprocess import InProcessDaemon
from tests.promotion_harness import resave_in_process

pytestmark = pytest.mark.ultralytics
CLS_IMGSZ, TASK_IMGSZ, BATCH = 64, 96, 8
FIXTURES = {  # task -> (weak, strong) committed checkpoints
    "classification": ("cls_weak.pt", "cls_strong.pt"),
    "segmentation": ("segment_weak.pt", "segment_strong.pt"),
    "pose": ("pose_weak.pt", "pose_strong.pt"),
    "obb": ("obb_weak.pt", "obb_strong.pt"),
}


class Env:
    def __init__(self, daemon: InProcessDaemon, data: dict[str, Path], root: Path) -> None:
        self.daemon = daemon
        self.data = data
        self.root = root  # under the allowed roots

    def decisions(self, model: str) -> list[dict[str, Any]]:
        rows = self.daemon.query("SELECT decision, version, reason FROM promotions WHERE model_name = ? ORDER BY id",
                                 (model,))
        return [dict(r) for r in rows]

    def drop(self, model: str, source: Path, version: int) -> dict[str, Any]:
        """Copy ``source`` in as ``v<version>.pt`` and wait for the watcher's decision on it."""
        target = self.daemon.models_root / model / f"v{version}.pt"
        shutil.copyfile(source, target)
        stable_checkpoint(target)
        return self.daemon.wait_for(lambda: next((d for d in self.decisions(model) if d["version"] == version), None),
                                    240, f"the decision on {model} v{version}")

    def folder(self, model: str, dataset: Path, imgsz: int) -> Path:
        folder = self.daemon.models_root / model
        folder.mkdir(exist_ok=True)
        (folder / "pipeline.json").write_text(json.dumps({"dataset": str(dataset), "imgsz": imgsz, "batch": BATCH}))
        return folder


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, ultralytics_env: Path) -> Iterator[Env]:
    from tests.fixtures.cls_synth import make_imagefolder
    from tests.fixtures.synth_tasks import make_task_dataset

    root = tmp_path_factory.mktemp("tasks-daemon")
    data = {"classification": make_imagefolder(root / "data" / "shapes", train=2, val=6)}
    for task, ul in (("segmentation", "segment"), ("pose", "pose"), ("obb", "obb")):
        data[task] = make_task_dataset(root / "data" / ul, ul, n_val=16, seed=0)
    daemon = InProcessDaemon(root / "daemon", config={
        "paths": {"allowed_roots": [str(root)]},
        "watch": {"enabled": True, "settle_seconds": 0.2, "rescan_interval_s": 1.0},
        "promotion": {"bootstrap_resamples": 200},
    })
    daemon.start()
    try:
        yield Env(daemon, data, root)
    finally:
        daemon.stop()


@pytest.mark.parametrize("task", list(FIXTURES))
def test_weak_strong_then_a_resaved_copy_are_promoted_promoted_refused(env: Env, task: str,
                                                                       tmp_path: Path) -> None:
    model = f"{task}-model"
    env.folder(model, env.data[task], CLS_IMGSZ if task == "classification" else TASK_IMGSZ)
    weak, strong = (FIXTURES_DIR / name for name in FIXTURES[task])
    assert env.drop(model, weak, 1)["decision"] == "promoted"
    second = env.drop(model, strong, 2)
    assert second["decision"] == "promoted", second["reason"]
    third = env.drop(model, resave_in_process(strong, tmp_path / "resaved.pt"), 3)
    assert third["decision"] == "refused" and "predictions identical" in third["reason"], third["reason"]
    current = env.daemon.models_root / model / "current.pt"
    assert current.read_bytes() == strong.read_bytes()
    versions = {v["version"]: v for v in env.daemon.http.get(f"/v1/vision/models/{model}").json()["versions"]}
    assert [versions[n]["status"] for n in (1, 2, 3)] == ["promoted", "current", "refused"]
    assert "predictions identical" in versions[3]["reason"]
    # Each result carries its task, scored with the task's own weights, and the leaderboard never mixes tasks.
    rows = env.daemon.http.get("/v1/vision/eval/leaderboard", params={"task": task}).json()
    assert rows and {r["task"] for r in rows} == {task} and {r["group"]["task"] for r in rows} == {task}
    history = env.daemon.http.get(f"/v1/vision/eval/leaderboard/{model}", params={"task": task}).json()
    assert {h["task"] for h in history} == {task} and set(history[0]["weights"]) <= {
        "top1", "top5", "macro_f1", "speed", "mAP50", "mAP50_95", "precision", "recall", "f1",
        "mask_mAP50", "mask_mAP50_95", "mask_precision", "mask_recall", "pose_mAP50", "pose_mAP50_95",
        "pose_precision", "pose_recall", "small_object_recall", "medium_object_recall", "large_object_recall"}


def test_a_checkpoint_of_another_task_is_skipped_with_the_reason(env: Env) -> None:
    model = "mixed"
    env.folder(model, env.data["classification"], CLS_IMGSZ)
    assert env.drop(model, FIXTURES_DIR / "cls_strong.pt", 1)["decision"] == "promoted"
    target = env.daemon.models_root / model / "v2.pt"
    shutil.copyfile(FIXTURES_DIR / "segment_strong.pt", target)
    skipped = env.daemon.wait_for(lambda: next((s for s in env.daemon.http.get(f"/v1/vision/models/{model}").json()
                                                ["skipped"] if s["path"] == str(target)), None), 120, "the skip")
    assert "is a segmentation model but current.pt holds a classification model" in skipped["reason"], skipped


def test_a_failure_for_wrong_class_names_is_promoted_once_pipeline_json_is_fixed(env: Env) -> None:
    """Nobody resubmits: the watcher looks again when the dataset pipeline.json names changes."""
    wrong = Path(shutil.copytree(env.data["classification"], env.root / "data" / "renamed"))
    for split in ("train", "val"):
        (wrong / split / "ring").rename(wrong / split / "annulus")
    model = "fixable"
    folder = env.folder(model, wrong, CLS_IMGSZ)
    target = folder / "v1.pt"
    shutil.copyfile(FIXTURES_DIR / "cls_strong.pt", target)
    failed = env.daemon.wait_for(lambda: next((c for c in env.daemon.http.get(f"/v1/vision/models/{model}").json()
                                               ["checkpoints"] if c["state"] == "failed"), None), 120, "the failure")
    assert "class names differ" in failed["last_error"] and failed["cause"] == "dataset", failed
    env.folder(model, env.data["classification"], CLS_IMGSZ)  # pipeline.json now names the right dataset
    decision = env.daemon.wait_for(lambda: next(iter(env.decisions(model)), None), 240, "the promotion")
    assert decision["decision"] == "promoted" and decision["version"] == 1
    assert (folder / "current.pt").read_bytes() == target.read_bytes()


def test_llamafarms_classification_train_request_completes_and_promotes(env: Env) -> None:
    body = {"model": "cls-trained", "dataset": str(env.data["classification"]), "task": "classification",
            "config": {"epochs": 1, "imgsz": CLS_IMGSZ, "batch_size": BATCH}, "auto_eval": True, "auto_promote": True}
    r = env.daemon.http.post("/v1/vision/train", json=body)
    assert r.status_code == 202, r.text
    job = env.daemon.wait_job(r.json()["job_id"], timeout=600)
    assert job["status"] == "completed", job["error"]
    result = job["result"]
    assert result["evaluation"]["task"] == "classification" and result["evaluation"]["imgsz"] == CLS_IMGSZ
    assert result["promotion"]["decision"] == "promoted"
    assert (env.daemon.models_root / "cls-trained" / "current.pt").is_file()
    # A detection architecture cannot train a classifier, and the reverse: 400s naming both.
    for task, arch, imgsz in (("classification", "yolov8n.yaml", CLS_IMGSZ), ("detection", "yolov8n-cls.yaml", 320)):
        r = env.daemon.http.post("/v1/vision/train", json={**body, "model": "other", "task": task, "base_model": arch,
                                                           "config": {"epochs": 1, "imgsz": imgsz}})
        assert r.status_code == 400 and "base_model" in r.json()["detail"], r.text


def test_unusable_checkpoints_are_refused_at_the_door_and_never_promoted(env: Env) -> None:
    model = "guarded"
    folder = env.folder(model, env.data["classification"], CLS_IMGSZ)
    assert env.drop(model, FIXTURES_DIR / "cls_weak.pt", 1)["decision"] == "promoted"
    before = (folder / "current.pt").read_bytes()
    (folder / "v9.pt").write_bytes(b"")
    r = env.daemon.http.post(f"/v1/vision/models/{model}/promote", json={"version": 9})
    assert r.status_code == 409 and "empty" in r.json()["detail"], r.text
    r = env.daemon.http.post(f"/v1/vision/models/{model}/promote", json={"version": 9, "force": True, "reason": "x"})
    assert r.status_code == 409, r.text  # force overrides nothing about an unusable file
    assert (folder / "current.pt").read_bytes() == before
    r = env.daemon.http.post("/v1/vision/eval", json={"model": str(folder / "v9.pt"),
                                                      "dataset": str(env.data["classification"])})
    assert r.status_code == 400 and "empty" in r.json()["detail"], r.text


def test_a_version_not_evaluated_yet_needs_force_and_a_reason(env: Env, tmp_path: Path) -> None:
    """A model folder the watcher cannot evaluate (no dataset configured), and bytes no evaluation has seen
    (a re-saved copy of a fixture): the version stays unevaluated."""
    folder = env.daemon.models_root / "manual"
    folder.mkdir()
    resave_in_process(FIXTURES_DIR / "cls_strong.pt", folder / "v1.pt")
    r = env.daemon.http.post("/v1/vision/models/manual/promote", json={"version": 1})
    assert r.status_code == 409, r.text
    assert "not been evaluated yet" in r.json()["detail"] and "force" in r.json()["detail"]
    r = env.daemon.http.post("/v1/vision/models/manual/promote", json={"version": 1, "force": True})
    assert r.status_code == 400 and "reason" in r.json()["detail"], r.text
    r = env.daemon.http.post("/v1/vision/models/manual/promote", json={"version": 1, "force": True, "reason": "hotfix"})
    assert r.status_code == 200, r.text
    decision = r.json()
    assert decision["forced"] == "v1.pt has not been evaluated yet" and "hotfix" in decision["reason"]
    assert (folder / "current.pt").read_bytes() == (folder / "v1.pt").read_bytes()
    ledger = env.daemon.http.get("/v1/vision/models/manual").json()["promotions"]
    assert ledger[0]["details"]["forced"] == decision["forced"]


def test_an_eval_by_model_name_records_the_version_current_pt_holds(env: Env) -> None:
    model = "named"
    env.folder(model, env.data["classification"], CLS_IMGSZ)
    assert env.drop(model, FIXTURES_DIR / "cls_strong.pt", 1)["decision"] == "promoted"
    job = env.daemon.submit_eval(model=model, dataset=str(env.data["classification"]), imgsz=CLS_IMGSZ)
    done = env.daemon.wait_job(job["job_id"])
    assert done["status"] == "completed" and done["result"]["model_version"] == 1, done
    assert (done["attempts"], done["interruptions"]) == (1, 0)
    r = env.daemon.http.post("/v1/vision/eval", json={"model": model, "dataset": str(env.data["classification"]),
                                                      "weights": {"mAP50": 0.5}})
    assert r.status_code == 400 and "top1" in r.json()["detail"], r.text  # detection keys name the valid ones
