"""Training and ONNX export in a worker process (imports torch and ultralytics).

``train`` fine-tunes a checkpoint or trains an architecture YAML (``yolov8n.yaml``
and the like, bundled with ultralytics: nothing is downloaded) on a dataset's
train split and returns the path of the best weights in its work folder;
progress is reported per batch, and after every epoch (validation included)
with the epoch's numbers (``epoch_report``). ``export_onnx`` writes
``<stem>.onnx`` next to a checkpoint: dynamic by default, so that it is
evaluated with the same rectangular batches as the ``.pt`` and the
export-parity gate compares like with like.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from evaluation.datasets import check_train_split, load_dataset

Progress = Callable[[float], None]


class TrainProgress(Protocol):
    """A progress sink that also takes a detail mapping (the epoch report)."""

    def __call__(self, value: float, detail: dict[str, Any] | None = None) -> None: ...


def epoch_report(trainer: Any) -> dict[str, Any]:
    """What a finished epoch tells: ``current_epoch``/``epoch`` (1-based), ``total_epochs``, ``loss``
    (the epoch's mean total training loss, the sum of its components) and ``metrics`` (the training
    loss components and the validation metrics, under ultralytics' names)."""
    tloss = trainer.tloss
    if tloss is None:
        parts: dict[str, float] = {}
    elif isinstance(tloss, dict):
        parts = trainer.label_loss_items(tloss)
    else:  # older ultralytics: a tensor of components
        parts = trainer.label_loss_items(tloss, prefix="train")
    metrics = {**parts, **{k: float(v) for k, v in (trainer.metrics or {}).items() if isinstance(v, (int, float))}}
    epoch = int(trainer.epoch) + 1
    return {"current_epoch": epoch, "epoch": epoch, "total_epochs": int(trainer.epochs),
            "loss": float(sum(parts.values())) if parts else None, "metrics": metrics}


def train(params: dict[str, Any], progress: TrainProgress) -> dict[str, Any]:
    """Train per ``params`` (base, dataset_path, epochs, batch, imgsz, lr0, patience, device, work_dir, and
    cache_root: where a COCO JSON dataset is converted, the same folder its evaluations use)."""
    from ultralytics import YOLO

    from evaluation.validator import resolve_device

    cache_root = params.get("cache_root")
    dataset = load_dataset(params["dataset_path"], cache_root=Path(cache_root) if cache_root else None)
    check_train_split(dataset)
    work = Path(params["work_dir"])
    data_yaml = dataset.write_sanitised(work)
    model = YOLO(params["base"], task="detect")
    epochs = int(params["epochs"])
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
    model.train(
        data=str(data_yaml), epochs=epochs, batch=int(params["batch"]), imgsz=int(params["imgsz"]),
        lr0=float(params["lr0"]), patience=int(params["patience"]), device=resolve_device(params["device"]),
        workers=0, plots=False, amp=False, save_dir=str(work / "train"), exist_ok=True, verbose=False,
    )
    trainer = model.trainer
    assert trainer is not None  # set by model.train()
    best = Path(trainer.best) if Path(trainer.best).is_file() else Path(trainer.last)
    metrics = {k: float(v) for k, v in (trainer.metrics or {}).items() if isinstance(v, (int, float))}
    progress(1.0)
    return {"checkpoint": str(best), "metrics": metrics, "epochs": epochs}


def export_onnx(checkpoint: Path, imgsz: int, dynamic: bool = True) -> dict[str, Any]:
    """Write ``<checkpoint stem>.onnx`` beside the checkpoint; returns its path and whether it is dynamic."""
    from ultralytics import YOLO

    out = YOLO(str(checkpoint), task="detect").export(format="onnx", imgsz=imgsz, simplify=False, device="cpu",
                                                      dynamic=dynamic)
    return {"onnx": str(out), "dynamic": dynamic}
