"""The dashboard's evaluation page at 10,000 images, loaded in headless Chromium (issue 26, item 2).

Writes two synthetic evaluations of ``--images`` images each and stores them in a fresh database:

- detection: ``--classes`` classes, 3 labelled boxes and ``--preds`` predictions per image (the first
  three near the labels, the rest anywhere); its artifacts are made by the daemon's own code from those
  boxes (``evaluate.write_predictions``, ``error_analysis.analyse``, ``curves.build_curves``);
- classification: an ImageFolder of ``--images`` images in ``--cls-classes`` classes, a top-5 per image
  (right about 70% of the time); its artifacts by ``classification.write_predictions`` and
  ``classify_analysis.analyse_classification``.

The images are tiny PNGs (the dataset is as big as its listing, not its pixels); the evidence holds what
the daemon reads of it (the image names, and the classification arrays). Then it starts the daemon on
that database (no worker is needed: nothing is computed on request) and opens each evaluation's page in
headless Chromium at 1,400 x 1,000, twice: cold (the daemon's first request about it: errors parsed, the
split's images listed, which the image route needs) and warm. Prints, for each, when the
page said it was shown (``data-loaded``: cards, tables, charts, matrix, first gallery pages) and when every
gallery image had decoded, and the largest answers the page fetched.

    .venv/bin/python benchmarks/dashboard_load.py [--images 10000] [--preds 50] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evaluation.analysis_store import write_artifacts  # noqa: E402
from evaluation.classification import write_predictions as write_cls_predictions  # noqa: E402
from evaluation.classify_analysis import analyse_classification  # noqa: E402
from evaluation.curves import CurveArrays, build_curves  # noqa: E402
from evaluation.error_analysis import analyse  # noqa: E402
from evaluation.evaluate import write_predictions  # noqa: E402
from evaluation.evidence import write_classification_evidence  # noqa: E402
from evaluation.size_recall import ImageBoxes  # noqa: E402
from store import results  # noqa: E402
from store.database import Database  # noqa: E402
from tests.daemon_fixtures import Daemon  # noqa: E402
from tests.dashboard_env import chromium, console_errors, images_loaded, open_route  # noqa: E402

W, H = 64, 48
CONF = 0.25


def _png_files(n: int, rng: np.random.Generator) -> list[bytes]:
    """A few distinct tiny noise PNGs, cycled over the dataset."""
    import io

    out = []
    for _ in range(n):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(buf, "PNG")
        out.append(buf.getvalue())
    return out


def _row(name: str, task: str, dataset: Path, directory: Path, result: dict[str, Any], i: int) -> dict[str, Any]:
    result = {"task": task, "model_name": name, "images": result.pop("images"), "imgsz": 640, "batch": 16,
              "device": "cpu", "device_kind": "cpu", "dataset": str(dataset), "split": "val", "score": 0.5,
              "inference_ms": 12.0, **result}
    return {"job_id": f"bench-{i}", "trigger": "api", "model_name": name, "model_version": 1,
            "model_path": f"/models/{name}/v1.pt", "dataset": str(dataset), "dataset_fingerprint": f"fp{i}",
            "checkpoint_sha256": f"{i:064x}", "cache_key": f"k{i}", "imgsz": 640, "batch": 16, "device": "cpu",
            "device_kind": "cpu", "ultralytics_version": "8.4", "torch_version": "2", "inference_ms": 12.0,
            "predictions_path": str(directory / "predictions.json"),
            "evidence_path": str(directory / "evidence.npz"), "result_json": json.dumps(result),
            "created_at": "2026-12-07T00:00:00Z", "default_score": 0.5, "score": 0.5, "task": task,
            **{k: result.get(k) for k in ("mAP50", "mAP50_95", "precision", "recall", "f1", "conf_threshold", "top1",
                                          "top5", "macro_f1", "per_class_metrics")}}


def detection(root: Path, n: int, nc: int, k: int, rng: np.random.Generator) -> dict[str, Any]:
    names = [f"class{c:02d}" for c in range(nc)]
    data = root / "det"
    (data / "images" / "val").mkdir(parents=True)
    (data / "labels" / "val").mkdir(parents=True)
    (data / "data.yaml").write_text(yaml.safe_dump({"path": str(data), "train": "images/val", "val": "images/val",
                                                    "names": dict(enumerate(names))}))
    pngs = _png_files(16, rng)
    image_names, boxes = [], []
    for i in range(n):
        name = f"{i:06d}.png"
        image_names.append(name)
        (data / "images" / "val" / name).write_bytes(pngs[i % len(pngs)])
        gt = np.column_stack([rng.uniform(0, W / 2, (3, 2)), rng.uniform(6, W / 2, (3, 2))])
        gt_cls = rng.integers(0, nc, 3)
        (data / "labels" / "val" / f"{i:06d}.txt").write_text("".join(
            f"{c} {(x + w / 2) / W:.6f} {(y + h / 2) / H:.6f} {w / W:.6f} {h / H:.6f}\n" for (x, y, w, h), c in zip(gt, gt_cls)))
        det = np.vstack([gt + rng.normal(0, 2, gt.shape), np.column_stack([rng.uniform(0, W / 2, (k - 3, 2)),
                                                                           rng.uniform(4, W / 2, (k - 3, 2))])])
        det[:, 2:] = np.abs(det[:, 2:]) + 1
        det_cls = np.concatenate([np.where(rng.random(3) < 0.8, gt_cls, rng.integers(0, nc, 3)), rng.integers(0, nc, k - 3)])
        score = np.concatenate([rng.uniform(0.3, 1, 3), rng.uniform(0.001, 0.5, k - 3)])
        order = np.argsort(-score)
        boxes.append(ImageBoxes(det[order], score[order], det_cls[order], gt, gt_cls))
    directory = root / "det-artifacts"
    directory.mkdir()
    write_predictions(directory / "predictions.json", image_names, boxes)
    px = np.linspace(0, 1, 1000)
    curve = np.clip(1 - px[None, :] * rng.uniform(0.5, 1, (nc, 1)), 0, 1)
    arrays = CurveArrays(px, curve, curve, curve[:, ::-1], curve * curve[:, ::-1], np.arange(nc))
    operating = {"conf_threshold": CONF, "precision": 0.5, "recall": 0.5, "f1": 0.5}
    write_artifacts(directory, {"errors": analyse(boxes, image_names, names, CONF),
                                "curves": build_curves(arrays, names, operating)})
    np.savez(directory / "evidence.npz", task=np.array("detection"), image_names=np.array(image_names))
    per_class = {c: {"ap50": 0.5, "ap50_95": 0.3, "precision": 0.5, "recall": 0.5, "support": 3 * n // nc} for c in names}
    return _row("bench-det", "detection", data / "data.yaml", directory, {
        "images": n, "mAP50": 0.5, "mAP50_95": 0.3, "precision": 0.5, "recall": 0.5, "f1": 0.5, "conf_threshold": CONF,
        "per_class_metrics": per_class, "class_names": names, **operating}, 1)


def classification(root: Path, n: int, nc: int, rng: np.random.Generator) -> dict[str, Any]:
    names = [f"kind{c:03d}" for c in range(nc)]
    data = root / "cls"
    pngs = _png_files(16, rng)
    true = np.arange(n) % nc
    image_names = []
    for i, c in enumerate(true):
        folder = data / "val" / names[c]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:06d}.png").write_bytes(pngs[i % len(pngs)])
    for name in names:  # an ImageFolder needs a train split too: one image per class
        (data / "train" / name).mkdir(parents=True)
        (data / "train" / name / "0.png").write_bytes(pngs[0])
    order = sorted(range(n), key=lambda i: (names[true[i]], f"{i:06d}.png"))  # ImageFolder's order
    true = true[order]
    image_names = [f"{names[c]}/{i:06d}.png" for c, i in zip(true, order)]
    top = np.array([rng.permutation(nc)[:5] for _ in range(n)])
    right = rng.random(n) < 0.7
    top[right, 0] = true[right]
    conf = np.sort(rng.dirichlet(np.ones(5), n), axis=1)[:, ::-1]
    directory = root / "cls-artifacts"
    directory.mkdir()
    write_cls_predictions(directory / "predictions.json", image_names, true, top, conf)
    errors = analyse_classification(image_names, true, top, conf, names)
    write_artifacts(directory, {"errors": errors})
    write_classification_evidence(directory / "evidence.npz", image_names, true, top, conf, nc)
    per_class = {k: {m: v[m] for m in ("precision", "recall", "f1", "support")} for k, v in errors["per_class"].items()}
    return _row("bench-cls", "classification", data, directory, {
        "images": n, "top1": float(right.mean()), "top5": 1.0, "macro_f1": 0.7, "per_class_metrics": per_class,
        "class_names": names}, 2)


def page_load(driver: Any, url: str) -> tuple[float, float]:
    """Seconds from asking for the page until it says it loaded, and until every gallery image decoded."""
    driver.execute_script("performance.clearResourceTimings()")
    t0 = time.perf_counter()
    assert open_route(driver, url) != "error", driver.find_element("id", "view").text[:500]
    shown = time.perf_counter() - t0
    loaded = images_loaded(driver)
    assert loaded and all(loaded), loaded
    return shown, time.perf_counter() - t0


def largest_fetches(driver: Any) -> list[tuple[str, int]]:
    """The three largest API answers of the last page load (path, bytes)."""
    entries = driver.execute_script(
        "return performance.getEntriesByType('resource').filter((e) => e.name.includes('/v1/'))"
        ".map((e) => [e.name.split('/v1/vision/')[1].slice(0, 50), e.encodedBodySize])")
    return [tuple(e) for e in sorted(entries, key=lambda e: -e[1])[:3]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--classes", type=int, default=80)
    parser.add_argument("--cls-classes", type=int, default=100)
    parser.add_argument("--preds", type=int, default=50, help="predictions per image (detection)")
    parser.add_argument("--keep", type=Path, help="write everything here (kept) instead of a temporary folder")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="bench-dash-") as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        daemon = Daemon(root / "daemon")
        t0 = time.perf_counter()
        rows = [detection(root, args.images, args.classes, args.preds, rng),
                classification(root, args.images, args.cls_classes, rng)]
        db = Database(daemon.db_path)
        ids = db.write_sync(lambda conn: [results.insert(conn, row) for row in rows])
        db.close()
        print(f"wrote 2 synthetic evaluations of {args.images} images in {time.perf_counter() - t0:.1f} s; "
              f"detection predictions.json {Path(rows[0]['predictions_path']).stat().st_size / 1e6:.0f} MB, "
              f"errors.json {(Path(rows[0]['predictions_path']).parent / 'errors.json').stat().st_size / 1e6:.1f} MB")
        daemon.start(wait_workers=False)
        driver = chromium()
        try:
            open_route(driver, f"{daemon.url}/#/jobs")  # the browser and the dashboard's files, warm
            for eval_id, row in zip(ids, rows):
                url = f"{daemon.url}/#/eval/{eval_id}"
                cold, warm = page_load(driver, url), page_load(driver, url)
                print(f"{row['task']:<15} cold: shown {cold[0]:.2f} s, images {cold[1]:.2f} s;  warm: shown {warm[0]:.2f} s, "
                      f"images {warm[1]:.2f} s  ({count_images(driver)} gallery images; largest answers: "
                      f"{largest_fetches(driver)})")
                assert console_errors(driver) == []
        finally:
            driver.quit()
            daemon.stop()


def count_images(driver: Any) -> int:
    return int(driver.execute_script("return document.querySelectorAll('.example svg image').length"))


if __name__ == "__main__":
    main()
