"""The tasks a checkpoint can have: their names, their metrics, their weights and their image sizes.

Each task is declared once here (``TASKS``) and every layer reads it from
here: the request contract (task names and aliases, per-task ``imgsz``
bounds), scoring (weight keys and default weights), comparisons (the
metrics shown side by side), the store and the CLI.

Task names are LlamaFarm's (``detection``, ``classification``) and their
like for the other ultralytics tasks (``segmentation``, ``pose``, ``obb``);
ultralytics' own names (``detect``, ``classify``, ``segment``) are accepted
as aliases wherever a task is given (``canonical_task``).
"""

from __future__ import annotations

from dataclasses import dataclass

from vocab.errors import InvalidRequest

SIZE_RECALL_KEYS: tuple[str, ...] = ("small_object_recall", "medium_object_recall", "large_object_recall")
_BOX = ("mAP50", "mAP50_95", "precision", "recall", "f1")
_MASK = ("mask_mAP50_95", "mask_mAP50", "mask_precision", "mask_recall")
_POSE = ("pose_mAP50_95", "pose_mAP50", "pose_precision", "pose_recall")


@dataclass(frozen=True)
class Task:
    """One task: its names, the metrics its results carry and how they are scored.

    - ``metrics``: the result's top-level accuracy metrics (all in [0, 1], higher is better);
      ``primary`` is the one the task is judged by first.
    - ``weight_keys``: what a ``weights`` object may name (``speed`` is the speed score of
      ``inference_ms``); ``default_weights`` sum to 1.
    - ``imgsz_min``/``imgsz_max``/``imgsz_multiple``: the request bounds of ``imgsz``.
    - ``default_arch``: the bundled ultralytics architecture a training from scratch builds.
    - ``eval_imgsz``: the image size an evaluation runs at when nothing sets one;
      ``eval_at_trained_size``: a checkpoint's own training size comes first (classification, whose
      accuracy depends on the crop size it learned).
    """

    name: str
    ultralytics: str
    metrics: tuple[str, ...]
    primary: str
    default_weights: dict[str, float]
    default_arch: str
    imgsz_min: int = 320
    imgsz_max: int = 2560
    imgsz_multiple: int = 1
    eval_imgsz: int = 640
    eval_at_trained_size: bool = False
    size_recall: bool = True  # small/medium/large object recall by box area is defined

    @property
    def weight_keys(self) -> tuple[str, ...]:
        extra = SIZE_RECALL_KEYS if self.size_recall else ()
        return (*self.metrics, *extra, "speed")

    @property
    def compared_metrics(self) -> tuple[str, ...]:
        """What a comparison reports side by side (``diff`` = a - b)."""
        extra = SIZE_RECALL_KEYS if self.size_recall else ()
        return (*self.metrics, "inference_ms", *extra, "score")


# Detection keeps the spec's 320-2560 (LlamaFarm's API); the tasks it does not define train and evaluate at
# any stride multiple from 32, as ultralytics does (small crops, tiny models).
TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("detection", "detect", _BOX, "mAP50_95",
             {"mAP50_95": 0.35, "mAP50": 0.20, "small_object_recall": 0.20, "f1": 0.15, "speed": 0.10},
             "yolov8n.yaml"),
        Task("classification", "classify", ("top1", "top5", "macro_f1"), "top1",
             {"top1": 0.60, "macro_f1": 0.20, "top5": 0.10, "speed": 0.10},
             "yolov8n-cls.yaml", imgsz_min=32, imgsz_multiple=32, size_recall=False,
             eval_imgsz=224, eval_at_trained_size=True),  # 224: ultralytics' usual classification size
        Task("segmentation", "segment", (*_MASK, *_BOX), "mask_mAP50_95",
             {"mask_mAP50_95": 0.35, "mask_mAP50": 0.20, "small_object_recall": 0.20, "f1": 0.15, "speed": 0.10},
             "yolov8n-seg.yaml", imgsz_min=32, imgsz_multiple=32),
        Task("pose", "pose", (*_POSE, *_BOX), "pose_mAP50_95",
             {"pose_mAP50_95": 0.35, "pose_mAP50": 0.20, "small_object_recall": 0.20, "f1": 0.15, "speed": 0.10},
             "yolov8n-pose.yaml", imgsz_min=32, imgsz_multiple=32),
        Task("obb", "obb", _BOX, "mAP50_95",
             {"mAP50_95": 0.45, "mAP50": 0.25, "f1": 0.20, "speed": 0.10},
             "yolov8n-obb.yaml", imgsz_min=32, imgsz_multiple=32, size_recall=False),
    )
}
DEFAULT_TASK = "detection"
TASK_NAMES: tuple[str, ...] = tuple(TASKS)
# ultralytics' names, accepted wherever a task is given.
ALIASES: dict[str, str] = {t.ultralytics: t.name for t in TASKS.values() if t.ultralytics != t.name}
TASK_INPUTS: tuple[str, ...] = (*TASK_NAMES, *ALIASES)
BY_ULTRALYTICS: dict[str, Task] = {t.ultralytics: t for t in TASKS.values()}


# Every metric any task's results carry, in one order (store columns, CSV columns, comparisons).
ALL_METRICS: tuple[str, ...] = tuple(dict.fromkeys(m for t in TASKS.values() for m in t.metrics))
# What any task's weights may name (``speed`` is the speed score of ``inference_ms``).
ALL_WEIGHT_KEYS: tuple[str, ...] = tuple(dict.fromkeys(k for t in TASKS.values() for k in t.weight_keys))


def canonical_task(name: str) -> str:
    """The task's name for a name or an ultralytics alias; InvalidRequest naming the valid ones."""
    name = ALIASES.get(name, name)
    if name not in TASKS:
        raise InvalidRequest(f"unknown task {name!r}; one of {', '.join(TASK_INPUTS)}")
    return name


def task(name: str) -> Task:
    """The ``Task`` of a name or alias (see ``canonical_task``)."""
    return TASKS[canonical_task(name)]


def task_of_ultralytics(name: str) -> Task:
    """The ``Task`` of an ultralytics task name (``detect``, ``classify``, ...); InvalidRequest otherwise."""
    found = BY_ULTRALYTICS.get(name)
    if found is None:
        raise InvalidRequest(f"unknown ultralytics task {name!r}; one of {', '.join(BY_ULTRALYTICS)}")
    return found


def fits_task(value: int, task_name: str) -> bool:
    """Whether ``value`` lies within the task's ``imgsz`` bounds."""
    t = task(task_name)
    return t.imgsz_min <= value <= t.imgsz_max and not value % t.imgsz_multiple


IMGSZ_BOUNDS = "; ".join(f"{t.name} {t.imgsz_min}-{t.imgsz_max}" + (f", a multiple of {t.imgsz_multiple}"
                                                                    if t.imgsz_multiple > 1 else "")
                         for t in TASKS.values())


def check_imgsz(value: int, task_name: str) -> int:
    """``value`` within the task's ``imgsz`` bounds; InvalidRequest saying the bounds otherwise."""
    t = task(task_name)
    if not fits_task(value, task_name):
        multiple = f", a multiple of {t.imgsz_multiple}" if t.imgsz_multiple > 1 else ""
        raise InvalidRequest(f"field 'imgsz' must be between {t.imgsz_min} and {t.imgsz_max}{multiple} for "
                             f"{t.name}, got {value}")
    return value


def task_default_imgsz(task_name: str, trained_imgsz: int | None = None) -> int:
    """The image size an evaluation of a ``task_name`` checkpoint runs at when nothing sets one: its
    training size ``trained_imgsz`` where the task evaluates at it (classification), else the task's
    ``eval_imgsz``."""
    t = task(task_name)
    return (trained_imgsz or t.eval_imgsz) if t.eval_at_trained_size else t.eval_imgsz


# How the default image size reads in help texts and field descriptions.
_TRAINED_DOC = "the checkpoint's training size, else "
EVAL_IMGSZ_DEFAULT_DOC = "; ".join(
    f"{t.name} {_TRAINED_DOC if t.eval_at_trained_size else ''}{t.eval_imgsz}"
    for t in TASKS.values())
