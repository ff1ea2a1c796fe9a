"""Classification evaluation against ultralytics and independent recounts (real ultralytics, tiny data).

The committed classifiers (tests/fixtures/make_cls_fixtures.py: cls_strong.pt, cls_weak.pt, six shape
classes at imgsz 64) are evaluated once per module on the synthetic val split (36 images): their top1
and top5 equal a bare ``YOLO(ckpt).val()`` bit for bit; every per-class number equals a textbook
recount from the predictions artifact; a re-saved copy of the same weights leaves identical evidence;
the weak -> strong comparison passes the gates and the strong -> weak one fails them; an ONNX export
evaluates through the same path.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES_DIR
from tests.fixtures.cls_synth import make_imagefolder

IMGSZ, BATCH = 64, 8
CLS_STRONG = FIXTURES_DIR / "cls_strong.pt"
CLS_WEAK = FIXTURES_DIR / "cls_weak.pt"


@dataclass(frozen=True)
class ClsRun:
    result: dict[str, Any]
    bare: Any  # ultralytics' ClassifyMetrics of a bare val with the same arguments
    evidence_path: Path
    predictions: list[dict[str, Any]]
    errors: dict[str, Any]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_imagefolder(tmp_path_factory.mktemp("cls") / "shapes")


def _run(model: Path, data: Path, work: Path, **request: Any) -> ClsRun:
    from ultralytics import YOLO

    from evaluation.evaluate import evaluate
    from vocab.contract.params import EvalSpec

    work.mkdir(parents=True)
    spec = EvalSpec(model_path=str(model), dataset_path=str(data), model_name=model.stem, imgsz=IMGSZ, batch=BATCH,
                    **request)
    result = evaluate(spec, work / "job", device="cpu", predictions_path=work / "predictions.json",
                      evidence_path=work / "evidence.npz", analysis_dir=work)
    bare = YOLO(str(model)).val(data=str(data), imgsz=IMGSZ, batch=BATCH, device="cpu", plots=False,
                                verbose=False, save_dir=str(work / "bare"))
    return ClsRun(result, bare, work / "evidence.npz", json.loads((work / "predictions.json").read_text()),
                  json.loads((work / "errors.json").read_text()))


@pytest.fixture(scope="module")
def runs(ultralytics_env: Path, shapes: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, ClsRun]:
    """strong, weak and a re-saved copy of strong, each evaluated and bare-validated once."""
    import torch

    work = tmp_path_factory.mktemp("cls-runs")
    resaved = work / "resaved.pt"
    ckpt = torch.load(CLS_STRONG, weights_only=False)
    ckpt["date"] = "re-saved"  # the same weights in a file with other bytes
    torch.save(ckpt, resaved)
    return {name: _run(path, shapes, work / name)
            for name, path in (("strong", CLS_STRONG), ("weak", CLS_WEAK), ("resaved", resaved))}


def test_top1_and_top5_are_bit_identical_to_a_bare_val(runs: dict[str, ClsRun]) -> None:
    for run in runs.values():
        assert run.result["top1"] == run.bare.top1
        assert run.result["top5"] == run.bare.top5
    strong, weak = runs["strong"].result, runs["weak"].result
    assert strong["top1"] > weak["top1"] + 0.15 and weak["top1"] > 1 / 3  # weaker, not useless


def test_the_result_carries_the_task_fields_and_the_common_ones(runs: dict[str, ClsRun]) -> None:
    from vocab.scoring import composite_score, resolve_weights

    r = runs["strong"].result
    assert r["task"] == "classification" and r["format"] == "pt" and r["split"] == "val"
    assert r["images"] == 36 and r["imgsz"] == IMGSZ and r["batch"] == BATCH
    assert r["class_names"] == r["model_class_names"] == r["confusion_matrix"]["labels"]
    assert r["weights"] == resolve_weights(None, "classification")
    assert r["score"] == composite_score(r, r["weights"])
    assert r["inference_ms"] > 0 and r["inference_batches"] == 4  # 5 batches, the warm-up one left out
    assert not any(k.endswith("_object_recall") or k in ("rect", "conf_threshold", "mAP50") for k in r)
    assert r["error_counts"] == {"images": 36, "correct": round(r["top1"] * 36), "wrong": 36 - round(r["top1"] * 36)}


def recount(rows: list[dict[str, Any]], nc: int) -> dict[str, Any]:
    """The textbook numbers, one image at a time: confusion (rows predicted), P, R, F1 = 2PR / (P + R)."""
    matrix = [[0] * nc for _ in range(nc)]
    top5 = 0
    for row in rows:
        matrix[row["top5"][0]][row["true"]] += 1
        top5 += row["true"] in row["top5"]
    per_class = []
    for c in range(nc):
        tp = matrix[c][c]
        support = sum(matrix[p][c] for p in range(nc))
        predicted = sum(matrix[c])
        p = tp / predicted if predicted else None
        r = tp / support if support else None
        f1 = None if r is None else 0.0 if not tp else 2 * p * r / (p + r)  # type: ignore[operator]
        per_class.append({"precision": p, "recall": r, "f1": f1, "support": support})
    f1s = [m["f1"] for m in per_class if m["support"]]
    return {"matrix": matrix, "per_class": per_class, "macro_f1": sum(f1s) / len(f1s), "top5": top5 / len(rows)}


def test_per_class_metrics_equal_a_recount_from_the_predictions_artifact(runs: dict[str, ClsRun]) -> None:
    for run in runs.values():
        r = run.result
        names = r["class_names"]
        ref = recount(run.predictions, len(names))
        matrix = r["confusion_matrix"]["matrix"]
        assert matrix == ref["matrix"]
        assert [sum(col) for col in zip(*matrix)] == [m["support"] for m in ref["per_class"]]  # columns: true
        for name, want in zip(names, ref["per_class"]):
            got = r["per_class_metrics"][name]
            assert got["support"] == want["support"]
            for key in ("precision", "recall", "f1"):
                assert got[key] == (None if want[key] is None else pytest.approx(want[key], abs=1e-12))
        assert r["per_class"] == {n: m["recall"] for n, m in r["per_class_metrics"].items() if m["support"]}
        assert r["macro_f1"] == pytest.approx(ref["macro_f1"], abs=1e-12)
        assert r["top5"] == pytest.approx(ref["top5"], abs=1e-7)  # ultralytics' float32 mean


def test_the_errors_artifact_links_each_cell_to_its_images(runs: dict[str, ClsRun]) -> None:
    run = runs["weak"]
    errors, rows = run.errors, run.predictions
    matrix = errors["confusion_matrix"]["matrix"]
    assert errors["images"] == [row["file_name"] for row in rows]
    for i, row in enumerate(rows):
        assert i in errors["cells"][row["top5"][0]][row["true"]]
    assert [[len(cell) for cell in line] for line in errors["cells"]] == matrix
    mistakes = errors["mistakes"]
    assert len(mistakes) == errors["overall"]["wrong"] > 0
    assert [m["confidence"] for m in mistakes] == sorted((m["confidence"] for m in mistakes), reverse=True)
    first = rows[mistakes[0]["index"]]
    assert mistakes[0]["confidence"] == first["conf"][0] != 0 and mistakes[0]["true"] != mistakes[0]["predicted"]


def test_the_errors_artifact_is_rebuilt_from_the_evidence_alone(runs: dict[str, ClsRun], tmp_path: Path) -> None:
    from evaluation.analysis_store import analyse_stored, read_artifact

    run = runs["weak"]
    out = analyse_stored({"predictions_path": str(tmp_path / "predictions.json"), "evidence_path":
                          str(run.evidence_path), "class_names": run.result["class_names"]})
    assert out == {"error_counts": run.result["error_counts"]}
    assert read_artifact(tmp_path, "errors") == run.errors


def test_a_re_saved_copy_leaves_the_same_evidence_and_another_model_does_not(runs: dict[str, ClsRun]) -> None:
    from evaluation.evidence import load_evidence, same_predictions

    strong, weak, resaved = (load_evidence(runs[k].evidence_path) for k in ("strong", "weak", "resaved"))
    assert runs["resaved"].result["checkpoint_sha256"] != runs["strong"].result["checkpoint_sha256"]
    assert same_predictions(strong, resaved)
    assert not same_predictions(strong, weak)
    assert str(strong["task"]) == "classification" and strong["top5"].shape == (36, 5)
    assert strong["image_names"].tolist() == [row["file_name"] for row in runs["strong"].predictions]


def test_the_weak_to_strong_comparison_passes_the_gates_and_the_reverse_fails(runs: dict[str, ClsRun]) -> None:
    from evaluation.comparison import compare_evidence
    from evaluation.stats.gates import evaluate_gates

    strong, weak = runs["strong"], runs["weak"]
    params = {"names": strong.result["class_names"], "weights": strong.result["weights"], "n_resamples": 500}
    up = compare_evidence({**params, "evidence_a": strong.evidence_path, "evidence_b": weak.evidence_path})
    assert up["metrics"]["top1"]["a"] == pytest.approx(strong.result["top1"], abs=1e-7)
    assert up["metrics"]["macro_f1"]["b"] == weak.result["macro_f1"]
    assert up["mcnemar"]["significant"] and up["mcnemar"]["b"] > up["mcnemar"]["c"]
    assert evaluate_gates(up, {"require_significant": True}) == []
    down = compare_evidence({**params, "evidence_a": weak.evidence_path, "evidence_b": strong.evidence_path})
    assert [f["gate"] for f in evaluate_gates(down, {"require_significant": True})] == ["require_significant"]


def test_compare_results_reports_the_task_s_metrics_and_refuses_mixed_tasks(runs: dict[str, ClsRun]) -> None:
    from evaluation.comparison import compare_results
    from vocab.errors import InvalidRequest

    strong, weak = runs["strong"].result, runs["weak"].result
    out = compare_results(strong, weak, "strong", "weak")
    assert list(out["metrics"]) == ["top1", "top5", "macro_f1", "inference_ms", "score"]
    assert out["winner"] == "strong" and out["metrics"]["top1"]["better"] == "a"
    with pytest.raises(InvalidRequest, match="cannot compare a classification model"):
        compare_results(strong, {"mAP50": 0.5, "score": 0.5}, "strong", "detector")  # no task: detection


def test_the_listing_is_ultralytics_own(runs: dict[str, ClsRun], shapes: Path) -> None:
    from ultralytics.cfg import get_cfg
    from ultralytics.data import ClassificationDataset

    from evaluation.imagefolder import fingerprint, load_imagefolder

    ds = load_imagefolder(shapes)
    theirs = ClassificationDataset(str(shapes / "val"), get_cfg(overrides={"imgsz": IMGSZ}), augment=False)
    assert [(Path(s[0]), s[1]) for s in theirs.samples] == list(zip(ds.images, ds.classes))
    assert runs["strong"].result["dataset_fingerprint"] == fingerprint(ds)


def test_an_onnx_export_evaluates_through_the_same_path(shapes: Path, tmp_path: Path, ultralytics_env: Path) -> None:
    from ultralytics import YOLO

    pt = Path(shutil.copyfile(CLS_STRONG, tmp_path / "v1.pt"))
    onnx = Path(YOLO(str(pt)).export(format="onnx", simplify=False, dynamic=True, imgsz=IMGSZ, device="cpu"))
    run = _run(onnx, shapes, tmp_path / "onnx")
    r = run.result
    assert (r["format"], r["runtime"], r["task"], r["images"]) == ("onnx", "onnxruntime", "classification", 36)
    assert r["top1"] == run.bare.top1 and r["top5"] == run.bare.top5
    assert r["export"]["task"] == "classification" and r["export"]["dynamic"] is True


def test_eval_local_evaluates_at_the_training_size_under_the_tasks_weights(
        runs: dict[str, ClsRun], shapes: Path, ultralytics_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """``vision-eval eval --local`` with no --imgsz: the classifier's own training size (64), as the daemon picks
    it, and classification weights accepted. Its state dir is this session's (a link), so the environment the
    command sets is the one already in force."""
    from vision_eval.cli import main
    from vocab.paths import default_state_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    default_state_dir().symlink_to(ultralytics_env)
    argv = ["eval", "--local", str(CLS_STRONG), str(shapes), "--device", "cpu", "--batch", str(BATCH),
            "--weights", '{"top1": 1.0}', "--models-root", str(tmp_path)]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["imgsz"] == IMGSZ and out["task"] == "classification"
    assert out["top1"] == runs["strong"].result["top1"] and out["score"] == pytest.approx(out["top1"])


def test_a_class_folder_the_checkpoint_lacks_is_refused_not_dropped(runs: dict[str, ClsRun], shapes: Path,
                                                                    tmp_path: Path) -> None:
    from evaluation.evaluate import evaluate
    from vocab.contract.params import EvalSpec
    from vocab.errors import ClassMismatchError, DatasetError

    data = Path(shutil.copytree(shapes, tmp_path / "renamed"))
    for split in ("train", "val"):
        (data / split / "ring").rename(data / split / "annulus")
    spec = EvalSpec(model_path=str(CLS_STRONG), dataset_path=str(data), model_name="strong", imgsz=IMGSZ, batch=BATCH)
    with pytest.raises(ClassMismatchError, match="class names differ"):
        evaluate(spec, tmp_path / "a", device="cpu")
    with pytest.raises(DatasetError, match=r"skipped 6 image\(s\) of class folders the checkpoint lacks \(annulus\)"):
        evaluate(spec.model_copy(update={"allow_class_mismatch": True}), tmp_path / "b", device="cpu")


def test_the_pass_batches_the_images_alike_whatever_the_process_seed(shapes: Path, tmp_path: Path,
                                                                     ultralytics_env: Path) -> None:
    import torch
    from ultralytics import YOLO

    from evaluation import classify

    orders = []
    for seed in (1, 2):
        torch.manual_seed(seed)  # ultralytics' val loader seeds its shuffle from torch.initial_seed()
        out = classify.run_pass(YOLO(str(CLS_WEAK)), shapes, split="val", imgsz=IMGSZ, batch=BATCH, device="cpu",
                                save_dir=tmp_path / str(seed))
        assert torch.initial_seed() == seed  # the process's generator is left as it was
        orders.append([r.im_file for r in out.records])
    assert orders[0] == orders[1] and sorted(orders[0]) != orders[0]  # shuffled, alike
