"""Training and ONNX export of every task in a worker process (imports torch and ultralytics).

``train`` trains a model of ``params["task"]`` (any name or alias of
``vocab.tasks``; detection when absent) from ``params["base"]``: an
architecture YAML bundled with ultralytics (``yolov8n-cls.yaml`` and the like:
nothing is downloaded), a checkpoint of that task, or the model's current
checkpoint; a base of another task is refused (``base_problem``) before
anything trains. Its data is the sanitised dataset YAML for detection,
segmentation, pose and obb, and the ImageFolder root (``train/<class>/``,
``val/<class>/`` or ``test/<class>/``) for classification. It returns the
path of the best weights in its work folder; progress is reported per batch,
and after every epoch (validation included) with the epoch's numbers
(``epoch_report``). A progress call that raises (a cancel) stops the training
at that batch. ``export_onnx`` writes ``<stem>.onnx`` next to a checkpoint:
dynamic by default, so that it is evaluated with the same rectangular batches
as the ``.pt`` and the export-parity gate compares like with like.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from evaluation.architectures import base_problem
from evaluation.checkpoint_meta import read_checkpoint_meta
from evaluation.datasets import check_train_split, load_dataset
from vocab.errors import CheckpointError, DatasetError, InvalidRequest
from vocab.tasks import DEFAULT_TASK, Task
from vocab.tasks import task as task_named

Progress = Callable[[float], None]


class TrainProgress(Protocol):
    """A progress sink that also takes a detail mapping (the epoch report)."""

    def __call__(self, value: float, detail: dict[str, Any] | None = None) -> None: ...


def epoch_report(trainer: Any) -> dict[str, Any]:
    """What a finished epoch tells: ``current_epoch``/``epoch`` (1-based), ``total_epochs``, ``loss``
    (the epoch's mean total training loss, the sum of its components: box/seg/pose/cls/dfl... as the
    task has them, the one ``loss`` of classification) and ``metrics`` (the training loss components and
    the validation metrics, under ultralytics' names, e.g. ``metrics/mAP50-95(B)``,
    ``metrics/accuracy_top1``)."""
    parts: dict[str, float] = {} if trainer.tloss is None else trainer.label_loss_items(trainer.tloss)
    metrics = {**parts, **{k: float(v) for k, v in (trainer.metrics or {}).items() if isinstance(v, (int, float))}}
    epoch = int(trainer.epoch) + 1
    return {"current_epoch": epoch, "epoch": epoch, "total_epochs": int(trainer.epochs),
            "loss": float(sum(parts.values())) if parts else None, "metrics": metrics}


def train(params: dict[str, Any], progress: TrainProgress) -> dict[str, Any]:
    """Train per ``params`` (task, base, dataset_path, epochs, batch, imgsz, lr0, patience, device,
    work_dir, and cache_root: where a COCO JSON dataset is converted, the same folder its evaluations use);
    see the module contract. InvalidRequest for a base of another task, DatasetError for data the task
    cannot train on."""
    task = task_named(params.get("task") or DEFAULT_TASK)
    problem = base_problem(params["base"], task.name)  # before torch is imported: a refusal costs nothing
    if problem:
        raise InvalidRequest(f"base_model: {problem}")
    from ultralytics import YOLO

    from evaluation.validator import resolve_device

    cache_root = Path(params["cache_root"]) if params.get("cache_root") else None
    work = Path(params["work_dir"])
    data = training_data(task, params["dataset_path"], work, cache_root)
    model = YOLO(params["base"], task=task.ultralytics)
    epochs = int(params["epochs"])
    _add_progress_callbacks(model, progress)
    model.train(
        data=data, epochs=epochs, batch=int(params["batch"]), imgsz=int(params["imgsz"]),
        lr0=float(params["lr0"]), patience=int(params["patience"]), device=resolve_device(params["device"]),
        workers=0, plots=False, amp=False, save_dir=str(work / "train"), exist_ok=True, verbose=False,
    )
    trainer = model.trainer
    assert trainer is not None  # set by model.train()
    best = Path(trainer.best) if Path(trainer.best).is_file() else Path(trainer.last)
    metrics = {k: float(v) for k, v in (trainer.metrics or {}).items() if isinstance(v, (int, float))}
    progress(1.0)
    return {"checkpoint": str(best), "metrics": metrics, "epochs": epochs, "task": task.name}


def _add_progress_callbacks(model: Any, progress: TrainProgress) -> None:
    """Report per batch, and once per epoch (after its validation) with ``epoch_report``."""
    state = {"batches": 0, "open": False}

    def on_epoch_start(trainer: Any) -> None:
        state["batches"] = 0
        state["open"] = True

    def on_batch_end(trainer: Any) -> None:
        state["batches"] += 1
        per_epoch = max(1, len(trainer.train_loader))
        progress(min(1.0, (trainer.epoch + state["batches"] / per_epoch) / max(1, trainer.epochs)))

    def on_fit_epoch_end(trainer: Any) -> None:
        if not state["open"]:  # ultralytics' final validation of best.pt calls this again, as "epoch + 1"
            return
        state["open"] = False
        progress(min(1.0, (trainer.epoch + 1) / max(1, trainer.epochs)), epoch_report(trainer))

    model.add_callback("on_train_epoch_start", on_epoch_start)
    model.add_callback("on_train_batch_end", on_batch_end)
    model.add_callback("on_fit_epoch_end", on_fit_epoch_end)


def training_data(task: Task, dataset_path: str, work: Path, cache_root: Path | None = None) -> str:
    """What ultralytics' ``data=`` gets for ``task``: the ImageFolder root for classification, else the
    sanitised dataset YAML written into ``work``, its labels read as the task's (``evaluation.labels``; with
    the pose keys; a COCO JSON dataset, for detection only, converted into ``cache_root``). DatasetError when
    unusable."""
    if task.ultralytics == "classify":
        return str(imagefolder_root(Path(dataset_path)))
    dataset = load_dataset(dataset_path, cache_root=cache_root, task=task.name)
    check_train_split(dataset)
    return str(dataset.write_sanitised(work))


def imagefolder_root(root: Path) -> Path:
    """A classification dataset folder: ``train/`` and ``val/`` (else ``test/``) holding the same class
    folders, each class with at least one file. DatasetError saying what is missing otherwise."""
    if not root.is_dir():
        raise DatasetError(f"a classification dataset is a folder with train/<class>/ and val/<class>/ "
                           f"image folders, got {root}")
    evaluated = next((root / s for s in ("val", "test") if (root / s).is_dir()), None)
    if not (root / "train").is_dir() or evaluated is None:
        raise DatasetError(f"classification dataset {root} needs a train/ and a val/ (or test/) folder, each "
                           "with one folder of images per class")
    classes: dict[str, list[str]] = {}
    for split in (root / "train", evaluated):
        classes[split.name] = sorted(d.name for d in split.iterdir() if d.is_dir())
        if not classes[split.name]:
            raise DatasetError(f"{split} has no class folders (one folder of images per class)")
        empty = [c for c in classes[split.name] if not any(p.is_file() for p in (split / c).iterdir())]
        if empty:
            raise DatasetError(f"class folder {split / empty[0]} holds no images")
    if classes["train"] != classes[evaluated.name]:
        raise DatasetError(f"the class folders of {root / 'train'} ({', '.join(classes['train'])}) and "
                           f"{evaluated} ({', '.join(classes[evaluated.name])}) differ: ultralytics numbers "
                           "classes by their sorted folder names, so both splits need the same ones")
    return root.resolve()


def export_onnx(checkpoint: Path, imgsz: int, dynamic: bool = True, task: str | None = None) -> dict[str, Any]:
    """Write ``<checkpoint stem>.onnx`` beside the checkpoint; returns its path, whether it is dynamic and
    its task. ``task`` (None: the checkpoint's own) must be the checkpoint's; CheckpointError otherwise."""
    from ultralytics import YOLO

    meta = read_checkpoint_meta(checkpoint)
    if task is not None and task_named(task).name != meta.task:
        raise CheckpointError(f"checkpoint {checkpoint} is a {meta.task} model, not {task_named(task).name}")
    out = YOLO(str(checkpoint), task=meta.ultralytics_task).export(
        format="onnx", imgsz=imgsz, simplify=False, device="cpu", dynamic=dynamic)
    return {"onnx": str(out), "dynamic": dynamic, "task": meta.task}
