"""The typed contract (vocab.contract) on its own: stored job parameters of older daemons still load, JSON
and form data read into the same request, and each refusal says what is wrong. No daemon, no torch."""

from __future__ import annotations

from typing import Any

import pytest

from handlers.body import as_declared
from vocab.contract.params import CompareJobParams, EvalJobParams, EvalSpec, EvalTask, TrainJobParams
from vocab.contract.requests import CompareRequest, EvalRequest, JobsQuery, TrainRequest
from vocab.contract.validation import parse
from vocab.errors import InvalidRequest
from vocab.tasks import TASKS, task_default_imgsz
from vocab.terms import DEFAULT_BATCH, DEFAULT_IMGSZ

# Job params exactly as the daemon stored them before the contract (daemon/jobs/submissions.py and
# daemon/watch/ingest.py of commit a01856d): rows like these sit in users' eval.db files.
_SPEC = {"model_path": "/m/det/v2.pt", "model_name": "det", "model_version": 2, "dataset_path": "/d/data.yaml",
         "imgsz": 320, "batch": 8, "weights": {"mAP50": 1}, "allow_class_mismatch": True, "split": "test"}
OLD_EVAL_API = {**_SPEC, "model": "det", "auto_promote": True, "gates": {"min_delta": 0.01}}
OLD_EVAL_WATCHER = {"model": "/m/det/v2.pt", "model_path": "/m/det/v2.pt", "model_name": "det", "model_version": 2,
                    "dataset_path": "/d/data.yaml", "imgsz": 640, "batch": 16, "weights": None,
                    "allow_class_mismatch": False, "auto_promote": True, "split": "val"}
OLD_COMPARE = {"model_a": "det", "model_b": "/m/other.pt", "dataset_path": "/d/data.yaml",
               "a": {**_SPEC, "weights": None, "allow_class_mismatch": False},
               "b": {**_SPEC, "model_path": "/m/other.pt", "model_name": "other", "model_version": None,
                     "weights": None, "allow_class_mismatch": False},
               "split": "test", "weights": None, "bootstrap_resamples": 200, "bootstrap_seed": 7}
OLD_TRAIN = {"model": "det", "dataset_path": "/d/data.yaml", "task": "detection", "split": "val", "epochs": 3,
             "batch": 8, "imgsz": 320, "learning_rate": 0.02, "patience": 7, "base": "yolov8n.yaml", "device": "cpu",
             "auto_eval": True, "auto_promote": False, "eval_weights": None, "gates": None}


def test_params_stored_by_an_older_daemon_load_unchanged() -> None:
    job = EvalJobParams.model_validate(OLD_EVAL_API)
    spec = job.spec()
    assert (spec.model_path, spec.model_version, spec.imgsz, spec.batch, spec.split) == ("/m/det/v2.pt", 2, 320, 8,
                                                                                         "test")
    assert spec.allow_class_mismatch is True and spec.rect is True and spec.weights == {"mAP50": 1.0}
    assert (job.model, job.auto_promote, job.gates) == ("det", True, {"min_delta": 0.01})
    watcher = EvalJobParams.model_validate(OLD_EVAL_WATCHER)
    assert watcher.gates is None and watcher.auto_promote is True and watcher.spec().imgsz == 640
    # Written before splits existed: the split is val.
    before_splits = {k: v for k, v in OLD_EVAL_WATCHER.items() if k != "split"}
    assert EvalJobParams.model_validate(before_splits).spec().split == "val"
    cmp = CompareJobParams.model_validate(OLD_COMPARE)
    assert (cmp.a.model_name, cmp.b.model_name, cmp.b.model_version) == ("det", "other", None)
    assert (cmp.bootstrap_resamples, cmp.bootstrap_seed, cmp.split) == (200, 7, "test")
    train = TrainJobParams.model_validate(OLD_TRAIN)
    assert (train.epochs, train.learning_rate, train.base, train.auto_eval) == (3, 0.02, "yolov8n.yaml", True)
    # Stored again, every key keeps its name and value (numbers compare equal: 1 == 1.0); a key added
    # since (a spec's rect) comes with its default.
    for model, old in ((EvalJobParams, OLD_EVAL_API), (CompareJobParams, OLD_COMPARE), (TrainJobParams, OLD_TRAIN)):
        assert _kept(old, model.model_validate(old).stored()), model.__name__


def _kept(old: Any, new: Any) -> bool:
    if isinstance(old, dict):
        return isinstance(new, dict) and all(k in new and _kept(v, new[k]) for k, v in old.items())
    return bool(old == new)


def test_a_worker_gets_the_spec_unchanged_and_only_what_the_daemon_adds() -> None:
    spec = EvalJobParams.model_validate(OLD_EVAL_API).spec()
    task = EvalTask(spec=spec, device="cpu", work_dir="/s/a/work", predictions_path="/s/a/predictions.json",
                    evidence_path="/s/a/evidence.npz", checkpoint_sha256="ab" * 32, dataset_fingerprint="fp")
    sent = task.stored()
    assert sent["spec"] == spec.stored() == {**_SPEC, "rect": True, "task": "detection"}  # no job field in it
    assert set(sent) - {"spec"} == {"device", "work_dir", "predictions_path", "evidence_path", "checkpoint_sha256",
                                    "dataset_fingerprint", "cache_root"}
    assert EvalTask.model_validate(sent).spec == spec


def test_json_and_form_data_read_into_the_same_request() -> None:
    as_json = {"model": "det", "dataset": "/d/data.yaml", "imgsz": 320, "batch_size": 8, "weights": {"mAP50": 0.5},
               "allow_class_mismatch": True, "gates": {"max_class_regression": None}, "split": "test"}
    as_form = {"model": "det", "dataset": "/d/data.yaml", "imgsz": "320.0", "batch_size": " 8", "weights":
               '{"mAP50": 0.5}', "allow_class_mismatch": "TRUE", "gates": '{"max_class_regression": null}',
               "split": "test", "name": "", "format": ""}
    one, two = (parse(EvalRequest, as_declared(EvalRequest, d)) for d in (as_json, as_form))
    assert one == two and one.imgsz == 320 and one.gates is not None
    assert one.gates.overrides() == {"max_class_regression": None}  # null turns a gate off; others stay unset
    flat = {"model": "det", "dataset": "/d/data.yaml", "epochs": "3", "imgsz": "352", "learning_rate": "0.02",
            "auto_eval": "1"}
    nested = {"model": "det", "dataset": "/d/data.yaml", "config": '{"epochs": 3, "imgsz": "352", '
              '"learning_rate": 0.02}', "auto_eval": 1}
    a, b = (parse(TrainRequest, as_declared(TrainRequest, d)) for d in (flat, nested))
    assert a.training() == b.training() and a.auto_eval is b.auto_eval is True
    settings = a.training()
    assert (settings.epochs, settings.imgsz, settings.batch_size, settings.patience) == (3, 352, DEFAULT_BATCH, 50)
    assert TrainRequest.model_validate({"model": "m", "dataset": "/d"}).training().imgsz == DEFAULT_IMGSZ


@pytest.mark.parametrize("model, data, message", [
    (EvalRequest, {"dataset": "/d"}, "field 'model' is required"),
    (EvalRequest, {"model": "m", "dataset": "/d", "imgsz": 31}, "field 'imgsz' must be between 32 and 2560, got 31"),
    (EvalRequest, {"model": "m", "dataset": "/d", "imgsz": "abc"}, "field 'imgsz' must be an integer, got 'abc'"),
    (EvalRequest, {"model": "m", "dataset": "/d", "imgsz": 320.5}, "field 'imgsz' must be an integer, got 320.5"),
    (EvalRequest, {"model": "m", "dataset": "/d", "batch_size": True}, "field 'batch_size' must be an integer, got true"),
    (EvalRequest, {"model": "m", "dataset": "/d", "imgsize": 1, "zz": 2},
     "unknown field(s): imgsize, zz; allowed: allow_class_mismatch, auto_promote, batch_size, dataset, format, gates, "
     "imgsz, model, name, split, weights"),
    (EvalRequest, {"model": "m", "dataset": "/d", "weights": {"accuracy": 0.5}},
     "unknown weights key 'accuracy'; allowed: mAP50, mAP50_95, precision, recall, f1, small_object_recall, "
     "medium_object_recall, large_object_recall, speed, top1, top5, macro_f1, mask_mAP50_95, mask_mAP50, "
     "mask_precision, mask_recall, pose_mAP50_95, pose_mAP50, pose_precision, pose_recall"),
    (EvalRequest, {"model": "m", "dataset": "/d", "weights": {"mAP50": "high"}},
     "field 'weights.mAP50' must be a number, got 'high'"),
    (EvalRequest, {"model": "m", "dataset": "/d", "gates": {"min_delta": 2}},
     "field 'gates.min_delta' must be between 0 and 1, got 2"),
    (EvalRequest, {"model": "m", "dataset": "/d", "allow_class_mismatch": "yes"},
     "field 'allow_class_mismatch' must be true or false, got 'yes'"),
    (EvalRequest, {"model": "m", "dataset": "/d", "split": "dev"},
     "field 'split' must be one of val, test, train, got 'dev'"),
    (EvalRequest, {"model": "m" * 4097, "dataset": "/d"}, "field 'model' is too long: at most 4096 characters"),
    (CompareRequest, {"model_a": "a", "model_b": "b", "dataset": "/d", "name_a": "a..b"},
     "field 'name_a' must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit, without "
     "'..', got 'a..b'"),
    (TrainRequest, {"model": "m", "dataset": "/d", "task": "segmentaton"},
     "field 'task' must be one of detection, classification, segmentation, pose, obb, detect, classify, segment, "
     "got 'segmentaton'"),
    (TrainRequest, {"model": "m", "dataset": "/d", "task": "detection", "config": {"imgsz": 64}},
     "field 'imgsz' must be between 320 and 2560 for detection, got 64"),
    (TrainRequest, {"model": "m", "dataset": "/d", "learning_rate": 0}, "field 'learning_rate' must be in (0, 1], got 0"),
    (TrainRequest, {"model": "m", "dataset": "/d", "epochs": 3, "config": {"epochs": 4}},
     "'epochs' is given both flat (3) and in config (4)"),
    (TrainRequest, {"model": "m", "dataset": "/d", "config": {"epoch": 4}},
     "unknown config field(s) in config: epoch; allowed: batch_size, epochs, imgsz, learning_rate, patience"),
])
def test_each_refusal_says_what_is_wrong(model: Any, data: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest) as exc:
        parse(model, as_declared(model, data))
    assert exc.value.detail == message


def test_query_parameters_are_named_as_such() -> None:
    with pytest.raises(InvalidRequest, match=r"^query parameter 'limit' must be between 1 and 1000, got 0$"):
        parse(JobsQuery, as_declared(JobsQuery, {"limit": "0"}), "query parameter")
    with pytest.raises(InvalidRequest, match=r"^unknown query parameter\(s\): sort; allowed: kind, limit, status$"):
        parse(JobsQuery, {"sort": "score"}, "query parameter")
    assert parse(JobsQuery, as_declared(JobsQuery, {"limit": "7", "kind": ""}), "query parameter").limit == 7


def test_the_leaderboard_row_declares_what_the_store_ranks() -> None:
    from store.rankings import LEADERBOARD_FIELDS
    from vocab.contract.job_results import LeaderboardEntry

    assert set(LeaderboardEntry.model_json_schema()["required"]) == set(LEADERBOARD_FIELDS)


def test_every_default_of_imgsz_and_batch_is_the_one_constant() -> None:
    from daemon.jobs.eval_settings import eval_shape
    from vision_eval.cli import LOCAL_DEFAULTS
    from vocab.config import Config

    assert eval_shape(Config(), "detection", None) == (DEFAULT_IMGSZ, DEFAULT_BATCH) == (640, 16)
    assert LOCAL_DEFAULTS["batch"] == DEFAULT_BATCH and "imgsz" not in LOCAL_DEFAULTS  # per task, as the daemon's
    for name in TASKS:
        assert eval_shape(Config(), name, None) == (task_default_imgsz(name), DEFAULT_BATCH)
        assert eval_shape(Config(), name, None, trained_imgsz=96)[0] == task_default_imgsz(name, 96)
    assert (task_default_imgsz("classification"), task_default_imgsz("classification", 96)) == (224, 96)
    assert task_default_imgsz("segmentation", 96) == 640
    assert EvalSpec.model_fields["imgsz"].is_required()  # a spec is always resolved: no default hides there
