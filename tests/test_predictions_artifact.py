"""The predictions artifact is written an image at a time (``evaluation.evaluate.write_predictions``): its bytes
must be exactly those of ``json.dumps`` over the whole list of rows, which readers (the dashboard, the stored
analysis, pycocotools' ``loadRes``) parse. Light: no torch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.evaluate import write_predictions
from evaluation.size_recall import ImageBoxes


def _image(rng: np.random.Generator, n: int) -> ImageBoxes:
    return ImageBoxes(rng.random((n, 4)) * 100, rng.random(n), rng.integers(0, 3, n).astype(float),
                      np.zeros((0, 4)), np.zeros(0))


def _expected(names: list[str], boxes: list[ImageBoxes], geometry: list[list[dict[str, Any]]] | None) -> str:
    rows = []
    for i, (name, im) in enumerate(zip(names, boxes)):
        extra = geometry[i] if geometry else [{}] * len(im.det_score)
        rows += [{"file_name": name, "category_id": int(c), "bbox": xywh, "score": s, **keys}
                 for xywh, s, c, keys in zip(im.det_xywh.tolist(), im.det_score.tolist(), im.det_cls.tolist(), extra)]
    return json.dumps(rows)


def test_streamed_rows_are_the_bytes_of_the_whole_list(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    counts = [0, 3, 0, 0, 5, 1, 0]  # images without predictions first, between and last
    names = [f"images/val/{i:04d}.png" for i in range(len(counts))]
    boxes = [_image(rng, n) for n in counts]
    geometry = [[{"segmentation": [[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]], "area": float(j)} for j in range(n)]
                for n in counts]
    for extra in (None, geometry):
        path = tmp_path / "predictions.json"
        write_predictions(path, names, boxes, extra)
        text = path.read_text(encoding="utf-8")
        assert text == _expected(names, boxes, extra)
        assert len(json.loads(text)) == sum(counts)
    assert list(tmp_path.iterdir()) == [tmp_path / "predictions.json"]  # no temporary file left


def test_no_prediction_at_all_is_an_empty_list(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "predictions.json"
    write_predictions(path, ["a.png", "b.png"], [_image(rng, 0), _image(rng, 0)])
    assert path.read_text(encoding="utf-8") == "[]"
