"""Metric families: the kinds of match a task's validator scores, and the names their metrics take.

Pure Python (the daemon may read it). ultralytics scores each task's
predictions under one or two matchings, each with its own true-positive
matrix over the ten thresholds 0.50:0.05:0.95:

- ``box``: box IoU (detection, and the boxes of segmentation and pose), or
  rotated IoU (``probiou``) for obb; metrics under the detection names
  (``mAP50``, ``mAP50_95``, ``precision``, ``recall``, ``f1``);
- ``mask``: mask IoU (segmentation), metrics ``mask_mAP50`` ...;
- ``pose``: keypoint OKS (pose), metrics ``pose_mAP50`` ....

A task's last family is its primary one: the family of its primary metric
(``vocab.tasks``), of its per-class AP50 (``per_class``, the promotion gate's
per-class regression) and of its error analysis.
"""

from __future__ import annotations

from dataclasses import dataclass

from vocab.tasks import TASKS


@dataclass(frozen=True)
class Family:
    """One matching: ``attr`` its ``ultralytics.utils.metrics.Metric`` on the validator's metrics object,
    ``stats_key`` its true-positive list in the validator's ``metrics.stats``, ``evidence_key`` its
    matrix in the evidence file, ``prefix`` the prefix of its metric names."""

    name: str
    attr: str
    stats_key: str
    evidence_key: str
    prefix: str

    def metric(self, name: str) -> str:
        """The result key of one of this family's metrics (``mAP50``, ``mAP50_95``, ``precision``, ...)."""
        return f"{self.prefix}{name}"


BOX = Family("box", "box", "tp", "tp", "")
MASK = Family("mask", "seg", "tp_m", "tp_mask", "mask_")
POSE = Family("pose", "pose", "tp_p", "tp_pose", "pose_")
TASK_FAMILIES: dict[str, tuple[Family, ...]] = {
    "detection": (BOX,), "segmentation": (BOX, MASK), "pose": (BOX, POSE), "obb": (BOX,),
}
FAMILY_METRICS = ("mAP50", "mAP50_95", "precision", "recall")  # per family; f1 is the box family's only


def families(task: str) -> tuple[Family, ...]:
    """The families a task's validator scores, its primary one last."""
    return TASK_FAMILIES[task]


def primary(task: str) -> Family:
    return TASK_FAMILIES[task][-1]


# Each task's primary metric in vocab.tasks is its primary family's mAP50-95.
assert all(primary(t).metric("mAP50_95") == TASKS[t].primary for t in TASK_FAMILIES)
