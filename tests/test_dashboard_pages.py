"""The daemon's paging of an evaluation's analysis, without a daemon (no torch, no browser).

``daemon.app.prediction_rows.image_rows`` (one image's rows, by bisecting the artifact's bytes) is checked
against the whole artifact parsed and grouped here, on artifacts written as the evaluation writes them
(``json.dumps`` of the row list): images without rows, rows longer than every read (large masks), names
that need escaping, an empty artifact. ``daemon.app.analysis_pages`` is checked on small hand-made
artifacts. tests/test_dashboard.py checks the same routes on real evaluations, through the daemon.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from daemon.app import analysis_pages as pages
from daemon.app.prediction_rows import image_rows
from vocab.errors import InvalidRequest


def _artifact(path: Path, names: list[str], rng: random.Random) -> list[dict[str, Any]]:
    rows = []
    for name in names:
        for _ in range(rng.choice([0, 0, 1, 3, 40])):
            row: dict[str, Any] = {"file_name": name, "category_id": rng.randrange(4),
                                   "bbox": [rng.random() * 100 for _ in range(4)], "score": rng.random()}
            if rng.random() < 0.1:  # a mask of 5,000 numbers (100 kB): longer than a single read
                row["segmentation"] = [[rng.random() for _ in range(rng.choice([6, 5_000]))]]
            rows.append(row)
    path.write_text(json.dumps(rows))
    return rows


def test_image_rows_equal_the_whole_artifact_grouped(tmp_path: Path) -> None:
    rng = random.Random(0)
    names = [f"d/{i:04d}.png" for i in range(80)] + ['odd "name" \\ é.png', "{\"file_name\": x}.png"]
    rows = _artifact(tmp_path / "predictions.json", names, rng)
    order = {n: i for i, n in enumerate(names)}
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in json.loads((tmp_path / "predictions.json").read_text()):
        grouped[r["file_name"]].append(r)
    assert sum(map(len, grouped.values())) == len(rows) and any(not grouped[n] for n in names)
    for name in names:
        assert image_rows(tmp_path / "predictions.json", name, order) == grouped[name], name
    (tmp_path / "empty.json").write_text("[]")
    assert image_rows(tmp_path / "empty.json", names[0], order) == []


def _detection_errors() -> dict[str, Any]:
    example = {"image": "a.png", "box": [1.0, 2.0, 3.0, 4.0], "class": "cat", "score": 0.9, "type": "background",
               "gt": None}
    return {
        "classes": ["cat", "dog"], "images": ["a.png", "b.png", "c.png"],
        "overall": {"background": 5, "missed": 0}, "per_class": {"cat": {"background": 4, "missed": 0},
                                                                 "dog": {"background": 1, "missed": 0}},
        "examples": {"background": [example, {**example, "class": "dog", "image": "b.png"}], "missed": []},
        "confusion_matrix": {"labels": ["cat", "dog", "background"], "matrix": [[1, 0, 4], [0, 0, 1], [0, 0, 0]]},
        "cells": [[[0], [], [0, 2]], [[], [], [1]], [[], [], []]],
        "prediction_types": "TG", "missed_boxes": [],
    }


def test_gallery_pages_count_every_failure_and_page_the_kept_ones() -> None:
    errors = _detection_errors()
    page = pages.gallery_page(errors, "background", None, 1, 5)
    assert (page["count"], page["stored"], [e["class"] for e in page["items"]]) == (5, 2, ["dog"])
    cat = pages.gallery_page(errors, "background", "cat", 0, 5)
    assert (cat["count"], cat["stored"], len(cat["items"])) == (4, 1, 1)
    with pytest.raises(InvalidRequest, match="kinds: background, missed"):
        pages.gallery_page(errors, "duplicate", None, 0, 5)
    with pytest.raises(InvalidRequest, match="no class named 'cow'"):
        pages.gallery_page(errors, "background", "cow", 0, 5)
    mistakes = {"task": "classification", "overall": {"wrong": 3},
                "per_class": {"cat": {"support": 4, "correct": 2}, "dog": {"support": 2, "correct": 1}},
                "mistakes": [{"true": "cat"}, {"true": "dog"}]}
    assert pages.gallery_page(mistakes, "mistakes", "cat", 0, 5)["count"] == 2
    assert pages.gallery_page(mistakes, "mistakes", None, 0, 5)["stored"] == 2


def test_cells_and_views_drop_what_grows_with_the_images() -> None:
    errors = _detection_errors()
    page = pages.cell_page(errors, 0, 2, 1, 5)
    assert (page["predicted"], page["true"], page["count"], page["items"]) == ("cat", "background", 2,
                                                                               [{"image": "c.png", "index": 2}])
    with pytest.raises(InvalidRequest):
        pages.cell_page(errors, 3, 0, 0, 5)
    view = pages.errors_view(errors, boxes=False, images=False)
    assert not {"images", "cells", "prediction_types", "missed_boxes"} & set(view) and view["examples"]
    assert set(pages.errors_view(errors, boxes=True, images=True)) == set(errors)


def test_an_example_finds_the_row_it_was_made_from() -> None:
    rows = [{"file_name": "a.png", "category_id": 0, "bbox": [1.004, 2.0, 3.0, 4.0], "score": 0.900001, "poly": [1]},
            {"file_name": "a.png", "category_id": 1, "bbox": [1.0, 2.0, 3.0, 4.0], "score": 0.9, "poly": [2]}]
    example = {"class": "cat", "score": 0.9, "box": [1.0, 2.0, 3.0, 4.0]}
    assert pages.matching_row(rows, ["cat", "dog"], example) == {"poly": [1]}
    assert pages.matching_row(rows, ["cat", "dog"], {**example, "score": 0.8}) is None
