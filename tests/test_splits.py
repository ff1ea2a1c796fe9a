"""Dataset splits (issue 12, item 3): val by default, test and train on request, each kept apart.

The split's image and object counts are checked against the label files on
disk (counted here, independently of the loader); store queries run on a
real SQLite file; a missing split is refused at submission
(``Submissions.check_dataset``, the check behind the HTTP 400).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from daemon.jobs.submissions import Submissions
from evaluation.datasets import fingerprint, load_dataset
from evaluation.model_facts import Facts
from store import rankings, results
from store.database import Database
from tests.conftest import EvalFn
from tests.test_store import result_row
from vocab.config import Config, PathsConfig
from vocab.errors import DatasetError


@pytest.fixture(scope="module")
def split_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset with val (24 images), test (10) and train (6) splits."""
    from tests.fixtures.synth import make_dataset, make_split

    root = tmp_path_factory.mktemp("splits") / "data"
    y = make_dataset(root, n_val=24, n_train=6, seed=0)
    make_split(root, "test", 10, seed=77)
    data = yaml.safe_load(y.read_text())
    data["test"] = "images/test"
    y.write_text(yaml.safe_dump(data))
    return y


def _label_counts(root: Path, split: str) -> tuple[int, int]:
    """(images, labelled objects) of a split, counted from its folders and label files."""
    images = sorted((root / "images" / split).glob("*.png"))
    objects = sum(len([ln for ln in (root / "labels" / split / f"{p.stem}.txt").read_text().splitlines() if ln.strip()])
                  for p in images)
    return len(images), objects


def test_each_split_loads_its_own_images_and_a_missing_split_is_named(split_dataset: Path, tmp_path: Path) -> None:
    root = split_dataset.parent
    for split in ("val", "test", "train"):
        ds = load_dataset(split_dataset, split)
        assert ds.split == split
        assert len(ds.images) == _label_counts(root, split)[0]
        assert all(p.parent.name == split for p in ds.images)
        assert sum(len(v) for v in ds.labels.values()) == _label_counts(root, split)[1]
        assert ds.sanitised()["val"] == f"images/{split}"  # what ultralytics evaluates
    fps = {s: fingerprint(load_dataset(split_dataset, s)) for s in ("val", "test", "train")}
    assert len(set(fps.values())) == 3
    no_test = tmp_path / "no_test.yaml"
    data = yaml.safe_load(split_dataset.read_text())
    data.pop("test")
    data["path"] = str(root)
    no_test.write_text(yaml.safe_dump(data))
    with pytest.raises(DatasetError, match="no 'test' split"):
        load_dataset(no_test, "test")
    config = Config(paths=PathsConfig(allowed_roots=(str(tmp_path),)))
    detection = Facts("detection", None, None)
    with pytest.raises(DatasetError, match="no 'test' split"):
        asyncio.run(Submissions(config, None).check_dataset(str(no_test), "test", detection))  # type: ignore[arg-type]


def test_split_test_evaluates_the_test_images_only(run_eval: EvalFn, strong_pt: Path, split_dataset: Path,
                                                     tmp_path: Path) -> None:
    from evaluation.evaluate import evaluate
    from vocab.contract.params import EvalSpec

    n_images, n_objects = _label_counts(split_dataset.parent, "test")
    work = tmp_path / "work"
    result = evaluate(EvalSpec(model_path=str(strong_pt), dataset_path=str(split_dataset), model_name="strong",
                               imgsz=192, batch=8, split="test"), work, device="cpu")
    assert result["split"] == "test"
    assert result["images"] == n_images == 10
    support = sum(m["support"] for m in result["per_class_metrics"].values())
    assert support == n_objects  # ultralytics' own ground-truth count, per class, summed
    assert sum(result[f"{b}_object_count"] for b in ("small", "medium", "large")) == n_objects
    assert result["dataset_fingerprint"] == fingerprint(load_dataset(split_dataset, "test"))
    val = run_eval(strong_pt, split_dataset).result
    assert val["split"] == "val" and val["images"] == 24
    assert val["dataset_fingerprint"] != result["dataset_fingerprint"]


def _row(model: str, split: str, score: float, t: str, fmt: str = "pt") -> dict[str, Any]:
    row = result_row(model, "/d/one.yaml", score, t)
    # Metrics whose default-weights score is ``score`` (speed unknown: its term is dropped), the ranking's order.
    row.update(mAP50=score, mAP50_95=score, f1=score, small_object_recall=score, inference_ms=None)
    row.update(split=split, format=fmt, cache_key=f"key-{model}-{split}-{fmt}-{score}",
               result_json=json.dumps({"model_name": model, "score": score, "split": split}))
    return row


def test_leaderboard_and_history_filter_by_split(tmp_path: Path) -> None:
    db = Database(tmp_path / "eval.db")
    try:
        for row in (_row("alpha", "val", 0.5, "t1"), _row("alpha", "test", 0.3, "t2"), _row("alpha", "test", 0.4, "t3"),
                    _row("beta", "val", 0.6, "t4"), _row("beta", "test", 0.2, "t5"),
                    _row("beta", "test", 0.9, "t6", fmt="onnx")):
            db.write_sync(lambda c, r=row: results.insert(c, r))
        val = db.read_sync(lambda c: rankings.leaderboard(c, None, 10))
        assert [(r["model_name"], r["score"], r["split"]) for r in val] == [("beta", 0.6, "val"), ("alpha", 0.5, "val")]
        test = db.read_sync(lambda c: rankings.leaderboard(c, None, 10, split="test"))
        # the best .pt row of each model on test; the ONNX row is not a leaderboard entry
        assert [(r["model_name"], r["score"], r["split"]) for r in test] == [
            ("alpha", pytest.approx(0.4), "test"), ("beta", pytest.approx(0.2), "test")]
        assert [r["rank"] for r in test] == [1, 2]
        assert db.read_sync(lambda c: rankings.leaderboard(c, "/d/other.yaml", 10, split="test")) == []
        hist = db.read_sync(lambda c: rankings.history(c, "alpha", 10, split="test"))
        assert [h["score"] for h in hist] == [0.4, 0.3] and {h["split"] for h in hist} == {"test"}
        assert len(db.read_sync(lambda c: rankings.history(c, "alpha", 10))) == 3
    finally:
        db.close()
