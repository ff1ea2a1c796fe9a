"""The body of a warm worker process: import torch and ultralytics once, then run tasks.

Protocol over a ``multiprocessing`` pipe (pickled dicts):

- child -> parent, once: ``{"type": "ready", "info": {...}}``;
- parent -> child: ``{"task_id", "kind", "params"}`` (an eval task's params are a
  ``vocab.contract.params.EvalTask``), or ``None`` to exit;
- child -> parent, per task: ``{"type": "started"}`` as soon as it has the task
  (a worker that dies before sending it never ran the task, so the daemon
  sends the task to another worker without charging the job), then any
  number of ``{"type": "progress", "value"}``
  (a train task adds ``"detail"``, its epoch report, after each epoch),
  then exactly one ``{"type": "result", "result"}`` or
  ``{"type": "error", "error_type", "detail"}``.

The worker dies with its parent (``PR_SET_PDEATHSIG``): the pool's fork
server, which exits when the daemon does (``daemon.jobs.workers``), so a
daemon killed with -9 leaves no orphan evaluating on.

A worker runs ``[workers] nice`` steps below the daemon's CPU priority: on
a machine whose cores an evaluation fills, the daemon's event loop (HTTP
answers, job polls, /healthz) is served first when it wants a core, and the
worker gets every cycle the loop leaves idle, which is nearly all of them.
"""

from __future__ import annotations

import logging
import os
import signal
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from daemon.children import die_with_parent, requests
from vocab.contract.params import EvalTask
from vocab.errors import VisionEvalError

Progress = Callable[[float], None]


def _task_eval(params: dict[str, Any], progress: Progress) -> dict[str, Any]:
    from evaluation.evaluate import evaluate

    task = EvalTask.model_validate(params)
    work = Path(task.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    predictions = Path(task.predictions_path)
    return evaluate(
        task.spec, work, device=task.device,
        cache_root=Path(task.cache_root) if task.cache_root else None,
        predictions_path=predictions,
        evidence_path=Path(task.evidence_path),
        analysis_dir=predictions.parent,  # errors.json, curves.json beside the predictions
        progress=progress,
    )


def _task_train(params: dict[str, Any], progress: Any) -> dict[str, Any]:
    from evaluation.training import train

    return train(params, progress)


def _task_export(params: dict[str, Any], progress: Progress) -> dict[str, Any]:
    from evaluation.training import export_onnx

    return export_onnx(Path(params["checkpoint"]), imgsz=int(params["imgsz"]),
                       dynamic=bool(params.get("dynamic", True)), task=params.get("task"))


def _task_compare(params: dict[str, Any], progress: Progress) -> dict[str, Any]:
    from evaluation.comparison import compare_evidence

    return compare_evidence(params)


def _task_analyse(params: dict[str, Any], progress: Progress) -> dict[str, Any]:
    from evaluation.analysis_store import analyse_stored

    return analyse_stored(params)


TASKS: dict[str, Callable[[dict[str, Any], Progress], dict[str, Any]]] = {
    "eval": _task_eval,
    "train": _task_train,
    "export": _task_export,
    "compare": _task_compare,
    "analyse": _task_analyse,
}


def _info(device: str) -> dict[str, Any]:
    import onnxruntime
    import torch
    import ultralytics

    from evaluation.validator import device_kind, resolve_device

    resolved = resolve_device(device)
    return {
        "onnxruntime_version": str(onnxruntime.__version__),
        "onnx_cuda": resolved.startswith("cuda") and "CUDAExecutionProvider" in onnxruntime.get_available_providers(),
        "pid": os.getpid(),
        "ultralytics_version": str(ultralytics.__version__),
        "torch_version": str(torch.__version__),  # a TorchVersion would import torch in the daemon on unpickling
        "device": resolved,
        "device_kind": device_kind(resolved),
    }


def prepare(state_dir: str, device: str, torch_threads: int) -> dict[str, Any]:
    """Set up this process as a worker (offline ultralytics, warm torch, ``torch_threads`` threads for every
    task when > 0); returns its info."""
    from evaluation.offline import apply_settings, configure_environment

    configure_environment(Path(state_dir))
    import torch  # noqa: F401 - the warm import this process exists for

    from evaluation import validator
    apply_settings(Path(state_dir))
    logging.getLogger("ultralytics").setLevel(logging.WARNING)
    if torch_threads > 0:
        validator.pin_threads(torch_threads)
    return {**_info(device), "torch_threads": torch.get_num_threads()}


def worker_main(conn: Any, state_dir: str, device: str, torch_threads: int, nice: int) -> None:
    """Entry point of a worker process; ``nice``: the steps below the daemon's CPU priority."""
    die_with_parent()
    os.nice(nice)  # before torch starts its threads: they inherit it
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the daemon decides when workers stop
    info = prepare(state_dir, device, torch_threads)
    conn.send({"type": "ready", "info": {**info, "nice": os.getpriority(os.PRIO_PROCESS, 0)}})
    for msg in requests(conn):
        task_id = msg["task_id"]
        conn.send({"type": "started", "task_id": task_id})  # a death before this never ran the task

        def progress(value: float, detail: dict[str, Any] | None = None, task_id: int = task_id) -> None:
            update = {"type": "progress", "task_id": task_id, "value": float(value)}
            if detail is not None:
                update["detail"] = detail
            conn.send(update)

        conn.send({"task_id": task_id, **run_task(msg["kind"], msg["params"], progress)})


def run_task(kind: str, params: dict[str, Any], progress: Progress) -> dict[str, Any]:
    """Run one task; ``{"type": "result", "result"}`` or ``{"type": "error", "error_type", "detail"}``."""
    try:
        result = TASKS[kind](params, progress)
    except VisionEvalError as exc:
        return {"type": "error", "error_type": type(exc).__name__, "detail": exc.detail}
    except Exception as exc:  # noqa: BLE001 - reported to the daemon, the worker lives on
        return {"type": "error", "error_type": "InternalError", "detail": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc()}
    return {"type": "result", "result": result}
