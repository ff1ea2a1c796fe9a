"""Evaluating ONNX exports (issue 12, item 1): the same evaluation through AutoBackend + onnxruntime.

Exports are made here, offline, from the committed strong.pt (``simplify=False``:
no onnxslim). The .pt evaluated by the same code path is the independent
reference: a dynamic export must match it within 0.002 mAP50-95 (ultralytics
pads both the same way). A static export is evaluated at its own size and
batch, read from its metadata, and refuses any other size. Exports of the other box
tasks (segmentation, pose) go through the same pass as their .pt, every metric
family within the same 0.002, their geometry in the predictions, and a pose
export's keypoint shape, read from its metadata, is checked against the dataset's.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from evaluation.export_meta import export_shape, read_export
from evaluation.model_resolution import resolve_model
from tests.conftest import EVAL_BATCH, EVAL_IMGSZ, EvalFn
from tests.task_fixtures import TASK_BATCH, TASK_IMGSZ, checkpoint, task_dataset
from vocab.contract.params import EvalSpec
from vocab.errors import CheckpointError, DatasetError, InvalidRequest, NotFound
from vocab.tasks import TASKS


def export(source: Path, target_dir: Path, *, dynamic: bool, imgsz: int = EVAL_IMGSZ) -> Path:
    """Copy ``source`` to ``target_dir/v1.pt`` and export ``v1.onnx`` beside it."""
    from evaluation.training import export_onnx

    target_dir.mkdir(parents=True, exist_ok=True)
    pt = target_dir / "v1.pt"
    shutil.copyfile(source, pt)
    out = Path(export_onnx(pt, imgsz=imgsz, dynamic=dynamic)["onnx"])
    assert out == target_dir / "v1.onnx"
    return out


@pytest.fixture(scope="session")
def dynamic_onnx(ultralytics_env: Path, strong_pt: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export(strong_pt, tmp_path_factory.mktemp("dyn"), dynamic=True)


@pytest.fixture(scope="session")
def static_onnx(ultralytics_env: Path, strong_pt: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export(strong_pt, tmp_path_factory.mktemp("static"), dynamic=False)


def test_export_metadata_is_read_without_torch(dynamic_onnx: Path, static_onnx: Path) -> None:
    dyn, static = read_export(dynamic_onnx), read_export(static_onnx)
    assert dyn.dynamic is True and static.dynamic is False
    assert dyn.imgsz == static.imgsz == [EVAL_IMGSZ, EVAL_IMGSZ]
    assert static.batch == 1 and static.half is False
    assert dyn.names == static.names == ["red", "green", "blue"]
    assert isinstance(dyn.opset, int) and dyn.opset >= 11


def test_a_dynamic_export_evaluates_within_0002_of_its_pt(run_eval: EvalFn, strong_eval, dynamic_onnx: Path,
                                                          synth_dataset: Path) -> None:
    pt = strong_eval.result
    onnx = run_eval(dynamic_onnx, synth_dataset).result
    assert abs(onnx["mAP50_95"] - pt["mAP50_95"]) <= 0.002
    assert abs(onnx["mAP50"] - pt["mAP50"]) <= 0.002
    assert onnx["images"] == pt["images"] == 24
    assert (onnx["imgsz"], onnx["batch"]) == (EVAL_IMGSZ, EVAL_BATCH)  # the request's: the export is dynamic
    assert onnx["format"] == "onnx" and pt["format"] == "pt"
    assert onnx["runtime"] == "onnxruntime" and pt["runtime"] == "torch"
    import onnxruntime

    assert onnx["runtime_version"] == onnxruntime.__version__
    assert onnx["provider"] == "CPUExecutionProvider"
    assert onnx["export"]["dynamic"] is True and onnx["export"]["opset"] >= 11 and pt["export"] is None
    assert onnx["checkpoint_sha256"] != pt["checkpoint_sha256"]
    # The same evidence and predictions artifacts as a .pt evaluation.
    rows = run_eval(dynamic_onnx, synth_dataset).predictions
    assert rows and {"file_name", "category_id", "bbox", "score"} <= set(rows[0])


def test_a_static_export_runs_at_its_own_shape(run_eval: EvalFn, static_onnx: Path, synth_dataset: Path) -> None:
    from evaluation.evaluate import evaluate

    result = run_eval(static_onnx, synth_dataset).result  # asked at its own size
    assert (result["imgsz"], result["batch"]) == (EVAL_IMGSZ, 1)  # the batch comes from the metadata
    assert result["export"]["dynamic"] is False
    with pytest.raises(InvalidRequest, match=r"static.*fixed at 192x192.*not 320"):
        evaluate(EvalSpec(model_path=str(static_onnx), dataset_path=str(synth_dataset), model_name="static",
                          imgsz=320, batch=8), static_onnx.parent / "work", device="cpu")


def test_a_static_export_matches_its_pt_padded_the_same_way(strong_pt: Path, static_onnx: Path,
                                                             run_eval: EvalFn, synth_dataset: Path,
                                                             tmp_path: Path) -> None:
    from evaluation.evaluate import evaluate

    square = evaluate(EvalSpec(model_path=str(strong_pt), dataset_path=str(synth_dataset), model_name="strong",
                               imgsz=EVAL_IMGSZ, batch=EVAL_BATCH, rect=False), tmp_path / "work", device="cpu")
    onnx = run_eval(static_onnx, synth_dataset).result
    assert square["rect"] is False and onnx["rect"] is False
    assert abs(onnx["mAP50_95"] - square["mAP50_95"]) <= 0.002
    assert abs(onnx["mAP50"] - square["mAP50"]) <= 0.002


@pytest.mark.parametrize(("task", "geometry"), [("segmentation", "segmentation"), ("pose", "keypoints")])
def test_an_export_of_another_box_task_evaluates_like_its_pt(task: str, geometry: str, run_eval: EvalFn,
                                                             tmp_path_factory: pytest.TempPathFactory) -> None:
    from evaluation.evaluate import evaluate

    data = task_dataset(tmp_path_factory, task)
    onnx_path = export(checkpoint(task, "strong"), tmp_path_factory.mktemp(f"onnx-{task}"), dynamic=True,
                       imgsz=TASK_IMGSZ)
    pt = run_eval(checkpoint(task, "strong"), data, imgsz=TASK_IMGSZ, batch=TASK_BATCH).result
    run = run_eval(onnx_path, data, imgsz=TASK_IMGSZ, batch=TASK_BATCH)
    onnx = run.result
    assert (onnx["task"], onnx["format"], onnx["runtime"]) == (task, "onnx", "onnxruntime")
    assert onnx["export"]["task"] == task
    for metric in TASKS[task].metrics:  # every family's: box, and mask or pose
        assert abs(onnx[metric] - pt[metric]) <= 0.002, metric
    assert any(row[geometry] for row in run.predictions)  # the masks' polygons, the keypoints
    if task == "pose":
        assert onnx["export"]["kpt_shape"] == [4, 3]
        other = tmp_path_factory.mktemp("kpt") / "data.yaml"  # the same images, declared with 5 keypoints
        other.write_text(yaml.safe_dump({**yaml.safe_load(data.read_text()), "kpt_shape": [5, 3]}))
        with pytest.raises(DatasetError, match=r"declares kpt_shape \[5, 3\] but the checkpoint .* \[4, 3\]"):
            evaluate(EvalSpec(model_path=str(onnx_path), dataset_path=str(other), model_name="pose",
                              imgsz=TASK_IMGSZ, batch=TASK_BATCH), other.parent / "work", device="cpu")


def test_export_shape_rules(static_onnx: Path, dynamic_onnx: Path) -> None:
    static, dyn = read_export(static_onnx), read_export(dynamic_onnx)
    assert export_shape(static, None, 16, 640) == (EVAL_IMGSZ, 1)
    assert export_shape(static, EVAL_IMGSZ, 16, 640) == (EVAL_IMGSZ, 1)
    with pytest.raises(InvalidRequest, match="static"):
        export_shape(static, 640, 16, 640)
    assert export_shape(dyn, None, 16, 640) == (640, 16)
    assert export_shape(dyn, 320, 4, 640) == (320, 4)


def test_a_file_that_is_not_an_onnx_export_is_a_checkpoint_error(tmp_path: Path) -> None:
    bad = tmp_path / "v1.onnx"
    bad.write_bytes(b"\x00not a protobuf model" * 10)
    with pytest.raises(CheckpointError):
        read_export(bad)


def test_a_model_name_in_onnx_format_resolves_to_its_highest_export(tmp_path: Path) -> None:
    root = tmp_path / "models"
    (root / "det").mkdir(parents=True)
    for name in ("v1.pt", "v2.pt", "v2.onnx", "v10.onnx", "current.pt"):
        (root / "det" / name).write_bytes(b"x")
    assert resolve_model("det", root, [tmp_path], "onnx").path.name == "v10.onnx"
    assert resolve_model("det", root, [tmp_path]).path.name == "current.pt"
    by_path = resolve_model(str(root / "det" / "v2.onnx"), root, [tmp_path])
    assert (by_path.name, by_path.version) == ("det", 2)
    with pytest.raises(InvalidRequest, match="does not match"):
        resolve_model(str(root / "det" / "v2.onnx"), root, [tmp_path], "pt")
    (root / "plain").mkdir()
    (root / "plain" / "v1.pt").write_bytes(b"x")
    with pytest.raises(NotFound, match="no ONNX export"):
        resolve_model("plain", root, [tmp_path], "onnx")


def test_the_cache_key_includes_the_format() -> None:
    from daemon.jobs.evaluations import cache_key

    base = ("sha", "fp", 320, 8, "cpu", "8.4.190")
    assert cache_key(*base) == cache_key(*base, "pt")  # keys stored before formats existed still hit
    assert cache_key(*base, "onnx", "1.32.0") != cache_key(*base)
    assert cache_key(*base, "onnx", "1.32.0") != cache_key(*base, "onnx", "1.33.0")
